"""The `wav2clip` role: Wav2CLIP's audio encoder, which maps 16 kHz audio into CLIP ViT-B/32 space.

The network is the one of the lyrebird-wav2clip v0.1.0-alpha release: a power spectrogram
(n_fft 512, hop 353, periodic Hann), log(x + 1e-7), standardisation, a one-channel ResNet-18
without its classifier (512-d, average pooled) and a projection MLP (Linear 512-512, ReLU,
dropout, Linear 512-512) into the CLIP image space. `Wav2CLIP.pt` is a flat state dict whose
`audio_encoder.*` and `audio_transform.*` keys load here unchanged.

One deliberate difference: the official code standardises the log-spectrogram with the mean
and standard deviation of the whole batch, so a clip's embedding depends on the clips batched
with it. audiobench standardises each clip on its own, which equals the official output for a
batch of one (how published evaluation scripts call it) and makes embeddings batch-independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from audiobench.data.index import SAMPLE_RATE
from audiobench.models.checkpoints import load_state_dict, load_strict
from audiobench.models.zoo import (
    RANDOM_SEED,
    LoadOptions,
    Role,
    WeightLayout,
    download_file,
    register_role,
    torch_hub_file,
    variance_preserving_init,
    weight_file,
)

CHECKPOINT = "Wav2CLIP.pt"
URL = "https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt"
EMBED_DIM = 512
PREFIXES = ("audio_encoder.", "audio_transform.")  # the keys of Wav2CLIP.pt the encoder reads


PAPER_WIDTHS = (64, 128, 256, 512)
TINY_WIDTHS = (8, 16, 32, 64)


class _SpectrogramResNet(nn.Module):
    """ResNet-18 on a one-channel log power spectrogram (the official `ResNet` key layout)."""

    # the four stages, set by name in __init__
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, widths: Sequence[int] = PAPER_WIDTHS) -> None:
        import torchaudio

        super().__init__()
        self.spectrogram = torchaudio.transforms.Spectrogram(n_fft=512, hop_length=353)
        self.conv1 = nn.Conv2d(1, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inputs = [widths[0], *widths[:-1]]
        for index, (width_in, width) in enumerate(zip(inputs, widths, strict=True)):
            setattr(
                self, f"layer{index + 1}", _stage(width_in, width, stride=1 if index == 0 else 2)
            )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        variance_preserving_init(self)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spectrum = torch.log(self.spectrogram(audio.unsqueeze(1)) + 1e-7)
        mean = spectrum.mean(dim=(1, 2, 3), keepdim=True)
        std = spectrum.flatten(1).std(dim=1)[:, None, None, None]
        x = self.maxpool(self.relu(self.bn1(self.conv1((spectrum - mean) / (std + 1e-9)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _stage(width_in: int, width: int, stride: int) -> nn.Sequential:
    """Two torchvision BasicBlocks, the first with a strided 1x1 shortcut when the shape changes."""
    from torchvision.models.resnet import BasicBlock

    shortcut = None
    if stride != 1 or width_in != width:
        shortcut = nn.Sequential(
            nn.Conv2d(width_in, width, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(width),
        )
    return nn.Sequential(BasicBlock(width_in, width, stride, shortcut), BasicBlock(width, width))


class _Projection(nn.Module):
    def __init__(self, width_in: int, width: int = EMBED_DIM, dropout: float = 0.1) -> None:
        super().__init__()
        self.sequential = nn.Sequential(
            nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


class Wav2CLIP(nn.Module):
    """(B, S) 16 kHz float waveforms -> (B, 512) embeddings in CLIP ViT-B/32 image space."""

    def __init__(self, widths: Sequence[int] = PAPER_WIDTHS) -> None:
        super().__init__()
        self.audio_encoder = _SpectrogramResNet(widths)
        self.audio_transform = _Projection(widths[-1])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.audio_transform(self.audio_encoder(audio))

    @torch.no_grad()
    def embed(self, audio: Sequence[torch.Tensor]) -> torch.Tensor:
        """L2-normalised embeddings of equal-length clips, on the CPU."""
        device = next(self.parameters()).device
        batch = torch.stack([torch.as_tensor(clip) for clip in audio]).to(device)
        return nn.functional.normalize(self(batch).float(), dim=-1).cpu()

    @classmethod
    def from_checkpoint(cls, path: Path) -> Wav2CLIP:
        """Load the official `Wav2CLIP.pt` (other keys, such as image_transform, are ignored)."""
        state = load_state_dict(path)
        model = cls()
        load_strict(model, {k: v for k, v in state.items() if k.startswith(PREFIXES)}, path)
        return model.eval()


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, "wav2clip", [CHECKPOINT]) or torch_hub_file(CHECKPOINT)


def _load_paper(path: Path, options: LoadOptions) -> Wav2CLIP:
    return Wav2CLIP.from_checkpoint(path).to(options.device, options.dtype)


def _build_tiny(options: LoadOptions) -> Wav2CLIP:
    """The same network with stage widths 8-64 instead of 64-512, seeded random weights, its
    projection centred (`centre_projection`)."""
    model = Wav2CLIP(TINY_WIDTHS).eval()
    centre_projection(model)
    return model.to(options.device, options.dtype)


def centre_projection(model: Wav2CLIP, clips: int = 8, seconds: float = 5.0) -> None:
    """Set the projection's first bias to minus its image of the mean pooled feature of seeded
    white noise (a data-dependent initialisation, as Kraehenbuehl et al., ICLR 2016).

    Average pooling of a random ResNet's post-ReLU features gives nearly the same positive
    vector for every input (pairwise cosine 0.98 between the demo's clips): the channels of a
    random network respond everywhere, those of a trained one selectively. Removing that shared
    vector leaves the projection what differs between clips (cosine 0.50 on the same clips).
    """
    generator = torch.Generator().manual_seed(RANDOM_SEED)
    noise = torch.randn(clips, round(seconds * SAMPLE_RATE), generator=generator)
    first = model.audio_transform.sequential[0]
    assert isinstance(first, nn.Linear)
    with torch.no_grad():
        shared = model.audio_encoder(noise).mean(dim=0)
        first.bias.copy_(-first.weight @ shared)


WAV2CLIP = register_role(
    Role(
        name="wav2clip",
        description="Wav2CLIP audio encoder (512-d, CLIP ViT-B/32 space): audio side of AIS",
        paper_source=f"lyrebird-wav2clip v0.1.0-alpha {CHECKPOINT}",
        how_to_obtain=f"{CHECKPOINT} from {URL} at WEIGHTS/wav2clip/{CHECKPOINT}",
        locate=_locate,
        load_paper=_load_paper,
        build_paper_random=lambda options: Wav2CLIP().eval().to(options.device, options.dtype),
        build_tiny=_build_tiny,
        layout=WeightLayout({"": ("",)}, prefixes=PREFIXES),
        fetch=lambda weights_dir: download_file(URL, Path(weights_dir) / "wav2clip" / CHECKPOINT),
    )
)
