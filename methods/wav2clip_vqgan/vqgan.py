"""A taming-transformers VQGAN (VQModel) without the taming package, which no longer imports.

The modules reproduce taming's names (`encoder.*`, `decoder.*`, `quant_conv.*`,
`post_quant_conv.*`, `quantize.embedding.weight`), so an official `last.ckpt` loads from its
`state_dict` (training-loss keys such as `loss.*` are ignored) with its `model.yaml`
(`model.params.{embed_dim, n_embed, ddconfig}`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiobench.errors import AudiobenchError
from audiobench.models.checkpoints import load_state_dict, load_strict

PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "quantize.")


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(channels_in), nn.Conv2d(channels_in, channels_out, 3, 1, 1)
        self.norm2, self.conv2 = _norm(channels_out), nn.Conv2d(channels_out, channels_out, 3, 1, 1)
        if channels_in != channels_out:
            self.nin_shortcut = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


class AttnBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        batch, channels, height, width = h.shape
        q, k, v = (
            conv(h).reshape(batch, channels, -1).transpose(1, 2)
            for conv in (self.q, self.k, self.v)
        )
        attended = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(attended.transpose(1, 2).reshape(batch, channels, height, width))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    def __init__(self, blocks: list[nn.Module], attention: list[nn.Module]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attention)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate(self.block):
            x = block(x)
            if self.attn:
                x = self.attn[index](x)
        return x


class _Middle(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(
        self,
        *,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        attn_resolutions: list[int],
        in_channels: int,
        resolution: int,
        z_channels: int,
        double_z: bool = False,
        **unused,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        self.down = nn.ModuleList()
        size, multipliers = resolution, [1, *ch_mult]
        for level, multiplier in enumerate(ch_mult):
            channels_in, channels = ch * multipliers[level], ch * multiplier
            blocks = [
                ResnetBlock(channels_in if i == 0 else channels, channels)
                for i in range(num_res_blocks)
            ]
            attention = [AttnBlock(channels) for _ in blocks] if size in attn_resolutions else []
            stage = _Level(blocks, attention)
            if level != len(ch_mult) - 1:
                stage.downsample = Downsample(channels)
                size //= 2
            self.down.append(stage)
        self.mid = _Middle(channels)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = stage(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(
        self,
        *,
        ch: int,
        out_ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        attn_resolutions: list[int],
        resolution: int,
        z_channels: int,
        **unused,
    ) -> None:
        super().__init__()
        channels = ch * ch_mult[-1]
        size = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, channels, 3, 1, 1)
        self.mid = _Middle(channels)
        levels: list[_Level] = []
        for level in reversed(range(len(ch_mult))):
            out = ch * ch_mult[level]
            blocks = [
                ResnetBlock(channels if i == 0 else out, out) for i in range(num_res_blocks + 1)
            ]
            attention = [AttnBlock(out) for _ in blocks] if size in attn_resolutions else []
            stage = _Level(blocks, attention)
            if level != 0:
                stage.upsample = Upsample(out)
                size *= 2
            levels.insert(0, stage)
            channels = out
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, out_ch, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            h = stage(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, h, w) index of the nearest codebook entry."""
        flat = z.permute(0, 2, 3, 1)
        codebook = self.embedding.weight
        distance = (flat**2).sum(-1, keepdim=True) + (codebook**2).sum(-1) - 2 * flat @ codebook.T
        return distance.argmin(dim=-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, C, h, w) codebook vectors."""
        return self.embedding(indices).permute(0, 3, 1, 2)

    def straight_through(self, z: torch.Tensor) -> torch.Tensor:
        """Quantised z whose gradient passes to z unchanged (VQGAN-CLIP's trick)."""
        return z + (self.lookup(self.indices(z)) - z).detach()


class VQGAN(nn.Module):
    """taming's VQModel: images in [-1, 1] <-> grids of codebook indices."""

    def __init__(self, embed_dim: int, n_embed: int, ddconfig: dict) -> None:
        super().__init__()
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quantize = VectorQuantizer(n_embed, embed_dim)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)
        self.factor = 2 ** (len(ddconfig["ch_mult"]) - 1)

    def encode_code(self, images: torch.Tensor) -> torch.Tensor:
        return self.quantize.indices(self.quant_conv(self.encoder(images)))

    def decode_latent(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def decode_code(self, indices: torch.Tensor) -> torch.Tensor:
        return self.decode_latent(self.quantize.lookup(indices))


def vqgan_from_config(config: object, source: Path | str) -> VQGAN:
    """An untrained VQGAN of a taming `model.yaml` (`model.params.{embed_dim, n_embed,
    ddconfig}`), read from `source` (named in errors)."""
    try:
        params = config["model"]["params"]  # type: ignore[index]
        return VQGAN(params["embed_dim"], params["n_embed"], params["ddconfig"])
    except (KeyError, TypeError) as error:
        raise AudiobenchError(
            f"{source} is not a taming model.yaml with model.params.{{embed_dim, n_embed, "
            f"ddconfig}}: {error}"
        ) from error


def load_taming_vqgan(ckpt_path: Path, config_path: Path) -> VQGAN:
    """An official taming checkpoint (`{'state_dict': ...}`, as Lightning 1.x saved it) and its
    `model.yaml`."""
    import yaml

    try:
        config = yaml.safe_load(Path(config_path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise AudiobenchError(f"{config_path} is not a readable YAML file: {error}") from error
    model = vqgan_from_config(config, config_path)
    state = load_state_dict(ckpt_path, key="state_dict")
    load_strict(model, {k: v for k, v in state.items() if k.startswith(PARTS)}, ckpt_path)
    return model.eval()
