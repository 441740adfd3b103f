"""The `clip_b32` and `clip_l14` roles: OpenAI CLIP through open_clip.

ViT-B/32 is the image side of AIS (Wav2CLIP was trained into its space) and guides VQGAN-CLIP;
ViT-L/14 scores IIS and the text match of AIC. Both return L2-normalised float32 embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from audiobench.concurrency import thread_map
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    WeightLayout,
    huggingface_file,
    register_role,
    weight_file,
)

_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class ClipSpec:
    role: str
    architecture: str  # open_clip model name
    hub_repo: str  # where open_clip's `openai` tag lives on the Hugging Face hub
    embed_dim: int
    patch_size: int


class ClipEncoder:
    """An open_clip model with its preprocessing and tokenizer: images and texts to unit vectors."""

    image_size = 224

    def __init__(self, model: Any, tokenizer: Any, options: LoadOptions) -> None:
        """The image preprocessing is the one open_clip pairs with `model` (what
        `create_model_and_transforms` returns for inference), built from its configuration."""
        from open_clip import get_model_preprocess_cfg
        from open_clip.transform import PreprocessCfg, image_transform_v2

        config = PreprocessCfg(**get_model_preprocess_cfg(model))
        self.model = model.to(options.device).eval()
        self.preprocess = image_transform_v2(config, is_train=False)
        # Equal configurations give equal transforms: encoders with the same key (ViT-B/32 and
        # ViT-L/14 at 224 px) can share one preprocessed batch.
        self.preprocess_key = ("open_clip", *astuple(config))
        self.tokenizer = tokenizer
        self.options = options

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.embed_pixels(self.pixels(images))

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """CLIP's preprocessing of a batch, on all cores (the CPU half of `embed_images`)."""
        return torch.stack(thread_map(self.preprocess, [image.convert("RGB") for image in images]))

    @torch.no_grad()
    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.options.device, self.options.dtype)
        return _unit(self.model.encode_image(pixels))

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts)).to(self.options.device)
        return _unit(self.model.encode_text(tokens))


def _unit(embeddings: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(embeddings.float(), dim=-1).cpu()


def _locate(spec: ClipSpec, search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, spec.role, _FILES) or huggingface_file(spec.hub_repo, _FILES)


def _load_paper(spec: ClipSpec, path: Path | None, options: LoadOptions) -> ClipEncoder:
    """open_clip's published architecture with the weights at `path` (None: its own random
    initialisation, the `paper-random` profile)."""
    import open_clip

    model = open_clip.create_model(
        spec.architecture,
        pretrained=str(path) if path is not None else None,
        force_quick_gelu=True,  # OpenAI weights use QuickGELU
        device=options.device,
    )
    return ClipEncoder(model, open_clip.get_tokenizer(spec.architecture), options)


def _build_tiny(spec: ClipSpec, options: LoadOptions) -> ClipEncoder:
    """The CLIP architecture (ViT image tower, text transformer) 64 wide and 2 layers deep."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    vision = CLIPVisionCfg(
        layers=2,
        width=64,
        head_width=32,
        patch_size=spec.patch_size,
        image_size=ClipEncoder.image_size,
    )
    text = CLIPTextCfg(context_length=77, vocab_size=49_408, width=64, heads=2, layers=2)
    model = CLIP(spec.embed_dim, vision, text, quick_gelu=True)
    return ClipEncoder(model, open_clip.get_tokenizer(spec.architecture), options)


def _fetch(spec: ClipSpec, weights_dir: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(spec.hub_repo, _FILES[0], local_dir=Path(weights_dir) / spec.role))


def _register(spec: ClipSpec, description: str) -> Role:
    return register_role(
        Role(
            name=spec.role,
            description=description,
            paper_source=f"open_clip {spec.architecture} 'openai' ({spec.hub_repo})",
            how_to_obtain=f"{_FILES[0]} from {spec.hub_repo} at WEIGHTS/{spec.role}/ or in the "
            "Hugging Face cache",
            locate=partial(_locate, spec),
            load_paper=partial(_load_paper, spec),
            build_paper_random=partial(_load_paper, spec, None),
            build_tiny=partial(_build_tiny, spec),
            layout=WeightLayout({"model": ("",)}),
            fetch=partial(_fetch, spec),
        )
    )


CLIP_B32 = _register(
    ClipSpec("clip_b32", "ViT-B-32", "timm/vit_base_patch32_clip_224.openai", 512, 32),
    "OpenAI CLIP ViT-B/32: image side of AIS, VQGAN-CLIP guidance",
)
CLIP_L14 = _register(
    ClipSpec("clip_l14", "ViT-L-14", "timm/vit_large_patch14_clip_224.openai", 768, 14),
    "OpenAI CLIP ViT-L/14: IIS, the text match of AIC, frame selection",
)
