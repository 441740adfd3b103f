"""ImageBind (huge): its audio and vision branches, and the roles `imagebind_audio` and
`imagebind_vision`.

Written here because the PyPI ImageBind packages do not import with current torchvision (they
need pytorchvideo). Module names reproduce the official state-dict keys
(`modality_{preprocessors,trunks,heads,postprocessors}.<modality>.*` of the authors'
`imagebind_model.py`), so each branch of `imagebind_huge.pth` loads as is and the other
modalities' keys are ignored. Both branches are built from the same official pieces (a patch
stem, a class token and a learned position embedding, pre-norm transformer blocks, a LayerNorm
+ class token + linear head into the 1024-d joint space) and differ where the authors' code
makes them differ:

- audio: Conv2d(1, 768, 16, stride 10) + LayerNorm stem on (128, 204) mel clips (229 tokens),
  12 blocks of width 768 with 12 heads and learned key/value biases, no norm before the trunk;
  the output is L2-normalised, then scaled by a fixed logit scale of 20.
- vision: the image repeated into two frames (`PadIm2Video`, "repeat", 2) and a Conv3d(3, 1280,
  (2, 14, 14), stride (2, 14, 14)) stem without norm on 224 px images (257 tokens), a LayerNorm
  before the trunk, 32 blocks of width 1280 with 16 heads and no key/value biases, drop path 0;
  the output is L2-normalised (no logit scale).

Audio preprocessing follows ImageBind's `load_and_transform_audio_data`: three 2 s clips
starting at k * (D - 2) / 3 s (k = 0, 1, 2), each with its mean subtracted in place on the
shared waveform (as the official code does, which matters where clips overlap), a Kaldi fbank
(htk_compat, Hanning window, 128 mel bins, 25/10 ms, dither 0), zero-padded or cropped to 204
frames and normalised with mean -4.268 and std 9.138: (B, 3, 1, 128, 204). The model embeds
each clip, L2-normalises and scales by 20, then averages the three clips.

Vision preprocessing follows `load_and_transform_vision_data`: the RGB image resized (bicubic)
so that its shorter side is 224 px, centre-cropped to 224 x 224, scaled to [0, 1] and
normalised with CLIP's mean and std.

Random weights (`tiny`, `paper-random`) use a truncated normal (std 0.02) for the class token
and position embedding and torch's defaults elsewhere, not the authors' training
initialisation: only `paper` weights carry meaning. `tiny` starts the class token and its
position embedding at zero, so that its embeddings follow the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from audiobench.concurrency import thread_map
from audiobench.data.index import SAMPLE_RATE
from audiobench.models.checkpoints import load_state_dict, load_strict
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    WeightLayout,
    download_file,
    register_role,
    silence_pooled_token,
    torch_hub_file,
    weight_file,
)

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

CHECKPOINT = "imagebind_huge.pth"
URL = f"https://dl.fbaipublicfiles.com/imagebind/{CHECKPOINT}"
EMBED_DIM = 1024  # the joint space
# Both branches at toy size; 32-d outputs, the width of the tiny unCLIP's image embeddings.
TINY_DIMS = {"embed_dim": 32, "num_blocks": 2, "num_heads": 2, "out_dim": 32}

CLIPS = 3
CLIP_SAMPLES = 2 * SAMPLE_RATE
MEL_BINS, TARGET_FRAMES = 128, 204
MEL_MEAN, MEL_STD = -4.268, 9.138
PATCH, STRIDE = 16, 10
LOGIT_SCALE = 20.0

IMAGE_SIZE = 224
VISION_KERNEL = (2, 14, 14)  # (frames, height, width), also the stride
VIDEO_FRAMES = 2  # an image is repeated into this many frames
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _prefixes(modality: str) -> tuple[str, ...]:
    parts = ("preprocessors", "trunks", "heads", "postprocessors")
    return tuple(f"modality_{part}.{modality}." for part in parts)


AUDIO_PREFIXES = _prefixes("audio")
VISION_PREFIXES = _prefixes("vision")


def clip_starts(length: int) -> list[int]:
    """First sample of each 2 s clip: floor(k * (D - 2) / 3 s), exactly as the Fractions do."""
    return [k * max(length - CLIP_SAMPLES, 0) // CLIPS for k in range(CLIPS)]


def _melspec(clip: torch.Tensor) -> torch.Tensor:
    import torchaudio

    clip -= clip.mean()  # in place, like the official code: overlapping clips see the change
    fbank = torchaudio.compliance.kaldi.fbank(
        clip[None],
        htk_compat=True,
        sample_frequency=SAMPLE_RATE,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=MEL_BINS,
        dither=0.0,
        frame_length=25,
        frame_shift=10,
    ).T
    padding = TARGET_FRAMES - fbank.shape[1]
    fbank = F.pad(fbank, (0, padding)) if padding > 0 else fbank[:, :TARGET_FRAMES]
    return ((fbank - MEL_MEAN) / MEL_STD)[None]


@cache
def _vision_transform():
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(IMAGE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(IMAGE_SIZE),
            transforms.ToTensor(),
            transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD),
        ]
    )


def preprocess_image(image: Image.Image) -> torch.Tensor:
    """One image as `load_and_transform_vision_data` gives it: (3, 224, 224)."""
    return _vision_transform()(image.convert("RGB"))


class _PadIm2Video(nn.Module):
    """`PadIm2Video(pad_type="repeat", ntimes=2)`: (B, C, H, W) -> (B, C, 2, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)
        return x.repeat(1, 1, VIDEO_FRAMES, 1, 1) if x.shape[2] == 1 else x


class _Stem(nn.Module):
    """`PatchEmbedGeneric`: a projection to (B, tokens, D), optionally followed by a norm."""

    def __init__(self, proj: nn.Module, norm_layer: nn.Module | None = None) -> None:
        super().__init__()
        self.proj = proj
        self.norm_layer = norm_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return tokens if self.norm_layer is None else self.norm_layer(tokens)


class _PositionEmbedding(nn.Module):
    def __init__(self, tokens: int, width: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))


class _Preprocessor(nn.Module):
    """`RGBDTPreprocessor` with one class token and a learned position embedding."""

    def __init__(self, stem: _Stem, patches: int, width: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.rgbt_stem = stem
        self.pos_embedding_helper = _PositionEmbedding(patches + 1, width)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embedding_helper.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # -> (N, patches + 1, D)
        tokens = self.rgbt_stem(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class _Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """`BlockWithMasking` without mask, drop path or layer scale (as ImageBind runs them)."""

    def __init__(self, width: int, heads: int, kv_bias: bool) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, bias=True, add_bias_kv=kv_bias)
        self.norm_2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = _Mlp(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (L, N, D)
        normed = self.norm_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class _Trunk(nn.Module):
    """`SimpleTransformer`: an optional LayerNorm before the blocks (`pre_transformer_layer.0`;
    the authors' rearrange after it has no weights), then the blocks."""

    def __init__(
        self, width: int, blocks: int, heads: int, *, kv_bias: bool, pre_norm: bool = False
    ) -> None:
        super().__init__()
        norms = [nn.LayerNorm(width, eps=1e-6)] if pre_norm else []
        self.pre_transformer_layer = nn.Sequential(*norms)  # empty: the identity, no keys
        self.blocks = nn.ModuleList([_Block(width, heads, kv_bias) for _ in range(blocks)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (N, L, D)
        x = self.pre_transformer_layer(tokens).transpose(0, 1)
        for block in self.blocks:
            x = block(x)
        return x.transpose(0, 1)


class _ClassToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class _Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


class _FixedLogitScale(nn.Module):
    log_logit_scale: torch.Tensor  # a buffer

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("log_logit_scale", torch.tensor(math.log(LOGIT_SCALE)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_logit_scale.exp().clamp(max=100)


class _Branch(nn.Module):
    """One modality of the authors' `ImageBindModel`, under its `modality_*.<modality>` names:
    preprocessor (tokens), trunk, head (LayerNorm, class token, projection) and postprocessor."""

    modality: ClassVar[str]
    prefixes: ClassVar[tuple[str, ...]]  # the keys of a full checkpoint that this branch reads

    def __init__(
        self,
        preprocessor: _Preprocessor,
        trunk: _Trunk,
        width: int,
        out_dim: int,
        postprocessor: nn.Module,
    ) -> None:
        super().__init__()
        head = nn.Sequential(
            nn.LayerNorm(width, eps=1e-6), _ClassToken(), nn.Linear(width, out_dim, bias=False)
        )
        self.modality_preprocessors = nn.ModuleDict({self.modality: preprocessor})
        self.modality_trunks = nn.ModuleDict({self.modality: trunk})
        self.modality_heads = nn.ModuleDict({self.modality: head})
        self.modality_postprocessors = nn.ModuleDict({self.modality: postprocessor})

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.modality_preprocessors[self.modality](x)
        embedded = self.modality_heads[self.modality](self.modality_trunks[self.modality](tokens))
        return self.modality_postprocessors[self.modality](embedded)

    def _parameter(self) -> torch.Tensor:
        return next(self.parameters())

    @classmethod
    def from_official_checkpoint(cls, path: Path, **dims: int) -> Self:
        """This branch of a full ImageBind state dict (other modalities ignored), strictly."""
        state = load_state_dict(path)
        build: Callable[..., Self] = cls  # concrete branches are built from their dimensions
        model = build(**dims)
        load_strict(model, {k: v for k, v in state.items() if k.startswith(cls.prefixes)}, path)
        return model.eval()


class ImageBindAudioEncoder(_Branch):
    """(B, 3, 1, 128, 204) mel clips -> (B, out_dim) audio embedding (mean over the clips)."""

    modality = "audio"
    prefixes = AUDIO_PREFIXES

    def __init__(
        self, embed_dim: int = 768, num_blocks: int = 12, num_heads: int = 12, out_dim: int = 1024
    ) -> None:
        stem = _Stem(
            nn.Conv2d(1, embed_dim, kernel_size=PATCH, stride=STRIDE, bias=False),
            nn.LayerNorm(embed_dim),
        )
        patches = ((MEL_BINS - PATCH) // STRIDE + 1) * ((TARGET_FRAMES - PATCH) // STRIDE + 1)
        super().__init__(
            _Preprocessor(stem, patches, embed_dim),
            _Trunk(embed_dim, num_blocks, num_heads, kv_bias=True),
            embed_dim,
            out_dim,
            nn.Sequential(_Normalize(), _FixedLogitScale()),
        )

    @staticmethod
    def preprocess(audio: torch.Tensor) -> torch.Tensor:
        """(B, S) 16 kHz waveforms -> (B, 3, 1, 128, 204) normalised mel clips."""
        batch = []
        for waveform in audio.float():
            waveform = waveform.clone()
            starts = clip_starts(waveform.numel())
            batch.append(torch.stack([_melspec(waveform[s : s + CLIP_SAMPLES]) for s in starts]))
        return torch.stack(batch)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        batch, clips = mel.shape[:2]
        embedded = self._embed(mel.flatten(0, 1))
        return embedded.reshape(batch, clips, -1).mean(dim=1)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, S) 16 kHz waveforms -> (B, out_dim) embeddings, on the model's device and in its
        dtype: the mean of the three clips' embeddings, each L2-normalised and scaled by 20
        (ImageBind's audio output), so NOT unit vectors (norm <= 20)."""
        parameter = self._parameter()
        return self(self.preprocess(audio).to(parameter.device, parameter.dtype))

    @torch.no_grad()
    def embed(self, audio: Sequence[torch.Tensor]) -> torch.Tensor:
        """Equal-length 1-D 16 kHz clips -> (N, out_dim) float32 on the CPU: `encode`'s
        embedding, the one the imagebind-unclip method uses, x 20 scale and NOT unit-normalised
        (cosine similarities are unaffected; divide by the norm for unit vectors)."""
        return self.encode(torch.stack([torch.as_tensor(clip) for clip in audio])).float().cpu()


class ImageBindVisionEncoder(_Branch):
    """(B, 3, 224, 224) pixels -> (B, out_dim) unit-norm image embedding in the joint space."""

    modality = "vision"
    prefixes = VISION_PREFIXES
    image_size = IMAGE_SIZE
    # Equal keys mean identical preprocessing (a shared batch); CLIP's keys start "open_clip".
    preprocess_key = ("imagebind_vision", IMAGE_SIZE, "bicubic", CLIP_MEAN, CLIP_STD)

    def __init__(
        self, embed_dim: int = 1280, num_blocks: int = 32, num_heads: int = 16, out_dim: int = 1024
    ) -> None:
        conv = nn.Conv3d(3, embed_dim, kernel_size=VISION_KERNEL, stride=VISION_KERNEL, bias=False)
        patches = (VIDEO_FRAMES // VISION_KERNEL[0]) * (IMAGE_SIZE // VISION_KERNEL[1]) ** 2
        super().__init__(
            _Preprocessor(_Stem(nn.Sequential(_PadIm2Video(), conv)), patches, embed_dim),
            _Trunk(embed_dim, num_blocks, num_heads, kv_bias=False, pre_norm=True),
            embed_dim,
            out_dim,
            _Normalize(),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._embed(pixels)

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """ImageBind's preprocessing of a batch, on all cores: (B, 3, 224, 224) float32."""
        return torch.stack(thread_map(preprocess_image, images))

    @torch.no_grad()
    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, out_dim) L2-normalised float32 embeddings, on the CPU."""
        parameter = self._parameter()
        embedded = self(pixels.to(parameter.device, parameter.dtype))
        return F.normalize(embedded.float(), dim=-1).cpu()

    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.embed_pixels(self.pixels(images))


# ------------------------------------------------------------------------------------- roles


def _locate(folders: Sequence[str], search_dirs: Sequence[Path]) -> Path | None:
    for folder in folders:
        found = weight_file(search_dirs, folder, [CHECKPOINT])
        if found is not None:
            return found
    return torch_hub_file(CHECKPOINT)


def _load_paper(encoder: type[_Branch], path: Path, options: LoadOptions) -> _Branch:
    return encoder.from_official_checkpoint(path).to(options.device, options.dtype)


def _build(encoder: Callable[..., _Branch], dims: dict[str, int], options: LoadOptions) -> _Branch:
    return encoder(**dims).eval().to(options.device, options.dtype)


def _build_tiny(encoder: Callable[..., _Branch], options: LoadOptions) -> _Branch:
    """A branch at `TINY_DIMS` whose class token, which the head reads, starts at zero
    (`silence_pooled_token`): with a random one, the tiny vision branch gave a pairwise cosine
    of 0.99 between different real frames."""
    model = encoder(**TINY_DIMS)
    tokens = f"modality_preprocessors.{model.modality}"
    silence_pooled_token(
        model.get_parameter(f"{tokens}.cls_token"),
        model.get_parameter(f"{tokens}.pos_embedding_helper.pos_embed")[:, 0],
    )
    return model.eval().to(options.device, options.dtype)


def _fetch(role_name: str, weights_dir: Path) -> Path:
    return download_file(URL, Path(weights_dir) / role_name / CHECKPOINT)


def _register(encoder: type[_Branch], description: str, folders: Sequence[str]) -> Role:
    """A role for one branch of `imagebind_huge.pth`; its file is looked for at
    WEIGHTS/<folder>/imagebind_huge.pth for each of `folders` in turn (the first is the role's
    own), then in torch hub's cache, and downloaded into the role's own folder."""
    name = folders[0]
    where = " or ".join(f"WEIGHTS/{folder}/{CHECKPOINT}" for folder in folders)
    return register_role(
        Role(
            name=name,
            description=description,
            paper_source=f"{CHECKPOINT} ({encoder.modality} keys)",
            how_to_obtain=f"{CHECKPOINT} from {URL} at {where}",
            locate=partial(_locate, tuple(folders)),
            load_paper=partial(_load_paper, encoder),
            build_paper_random=partial(_build, encoder, {}),
            build_tiny=partial(_build_tiny, encoder),
            layout=WeightLayout({"": ("",)}, prefixes=encoder.prefixes),
            fetch=partial(_fetch, name),
        )
    )


IMAGEBIND_AUDIO = _register(
    ImageBindAudioEncoder,
    "ImageBind (huge) audio branch: 1024-d embedding for the unCLIP baseline",
    ["imagebind_audio"],
)
# One file holds every branch: the vision role also takes the audio role's copy.
IMAGEBIND_VISION = _register(
    ImageBindVisionEncoder,
    "ImageBind (huge) vision branch: 1024-d image embedding in ImageBind's joint space",
    ["imagebind_vision", "imagebind_audio"],
)
