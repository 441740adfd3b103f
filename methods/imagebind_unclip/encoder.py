"""ImageBind's audio branch, written here because the PyPI ImageBind packages do not import with
current torchvision (they need pytorchvideo). Module names reproduce the official state-dict keys
(`modality_{preprocessors,trunks,heads,postprocessors}.audio.*`), so the audio part of
`imagebind_huge.pth` loads as is and the other modalities' keys are ignored.

Preprocessing follows ImageBind's `load_and_transform_audio_data`: three 2 s clips starting at
k * (D - 2) / 3 s (k = 0, 1, 2), each with its mean subtracted in place on the shared waveform
(as the official code does, which matters where clips overlap), a Kaldi fbank (htk_compat,
Hanning window, 128 mel bins, 25/10 ms, dither 0), zero-padded or cropped to 204 frames and
normalised with mean -4.268 and std 9.138: (B, 3, 1, 128, 204). The model embeds each clip
(patch stem, transformer with learned key/value biases, head on the class token), L2-normalises
and scales by 20, then averages the three clips.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiobench.data import SAMPLE_RATE
from audiobench.models.checkpoints import load_state_dict, load_strict

CLIPS = 3
CLIP_SAMPLES = 2 * SAMPLE_RATE
MEL_BINS, TARGET_FRAMES = 128, 204
MEL_MEAN, MEL_STD = -4.268, 9.138
PATCH, STRIDE = 16, 10
LOGIT_SCALE = 20.0
PREFIXES = tuple(
    f"modality_{part}.audio." for part in ("preprocessors", "trunks", "heads", "postprocessors")
)


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


class _Stem(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, width, kernel_size=PATCH, stride=STRIDE, bias=False)
        self.norm_layer = nn.LayerNorm(width)


class _PositionEmbedding(nn.Module):
    def __init__(self, tokens: int, width: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, width))


class _Preprocessor(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        patches = ((MEL_BINS - PATCH) // STRIDE + 1) * ((TARGET_FRAMES - PATCH) // STRIDE + 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.rgbt_stem = _Stem(width)
        self.pos_embedding_helper = _PositionEmbedding(patches + 1, width)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embedding_helper.pos_embed, std=0.02)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # (N, 1, 128, 204) -> (N, 229, D)
        tokens = self.rgbt_stem.proj(mel).flatten(2).transpose(1, 2)
        tokens = self.rgbt_stem.norm_layer(tokens)
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
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, bias=True, add_bias_kv=True)
        self.norm_2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = _Mlp(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (L, N, D)
        normed = self.norm_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class _Trunk(nn.Module):
    def __init__(self, width: int, blocks: int, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_Block(width, heads) for _ in range(blocks)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (N, L, D)
        x = tokens.transpose(0, 1)
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
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("log_logit_scale", torch.tensor(math.log(LOGIT_SCALE)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_logit_scale.exp().clamp(max=100)


class ImageBindAudioEncoder(nn.Module):
    """(B, 3, 1, 128, 204) mel clips -> (B, out_dim) audio embedding (mean over the clips)."""

    def __init__(
        self, embed_dim: int = 768, num_blocks: int = 12, num_heads: int = 12, out_dim: int = 1024
    ) -> None:
        super().__init__()
        self.modality_preprocessors = nn.ModuleDict({"audio": _Preprocessor(embed_dim)})
        self.modality_trunks = nn.ModuleDict({"audio": _Trunk(embed_dim, num_blocks, num_heads)})
        self.modality_heads = nn.ModuleDict(
            {
                "audio": nn.Sequential(
                    nn.LayerNorm(embed_dim, eps=1e-6),
                    _ClassToken(),
                    nn.Linear(embed_dim, out_dim, bias=False),
                )
            }
        )
        self.modality_postprocessors = nn.ModuleDict(
            {"audio": nn.Sequential(_Normalize(), _FixedLogitScale())}
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
        tokens = self.modality_preprocessors["audio"](mel.flatten(0, 1))
        embedded = self.modality_heads["audio"](self.modality_trunks["audio"](tokens))
        embedded = self.modality_postprocessors["audio"](embedded)
        return embedded.reshape(batch, clips, -1).mean(dim=1)

    @classmethod
    def from_official_checkpoint(cls, path: Path, **dims: int) -> ImageBindAudioEncoder:
        """The audio branch of a full ImageBind state dict (other modalities ignored)."""
        state = load_state_dict(path)
        model = cls(**dims)
        load_strict(model, {k: v for k, v in state.items() if k.startswith(PREFIXES)}, path)
        return model.eval()
