"""The `clip_b32`, `clip_l14` and `clip_l14_336` roles: OpenAI CLIP through open_clip.

ViT-B/32 is the image side of AIS (Wav2CLIP was trained into its space) and guides VQGAN-CLIP;
ViT-L/14 scores IIS and the text match of AIC; ViT-L/14@336px is the image encoder of CMMD
(Jayasumana et al., CVPR 2024), with CMMD's own image preprocessing. All return L2-normalised
float32 embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from audiobench.concurrency import thread_map
from audiobench.models.checkpoints import check_checkpoint
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    WeightLayout,
    huggingface_file,
    register_role,
    silence_pooled_token,
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
    image_size: int = 224
    cmmd: bool = False  # CMMD's image preprocessing (`cmmd_pixels`) instead of open_clip's


class ClipEncoder:
    """An open_clip model with its preprocessing and tokenizer: images and texts to unit vectors."""

    def __init__(self, spec: ClipSpec, model: Any, tokenizer: Any, options: LoadOptions) -> None:
        """The image preprocessing is CMMD's for a `cmmd` spec, else the one open_clip pairs
        with `model` (what `create_model_and_transforms` returns for inference), built from its
        configuration."""
        from open_clip import get_model_preprocess_cfg
        from open_clip.transform import PreprocessCfg, image_transform_v2

        self.model = model.to(options.device).eval()
        self.spec = spec
        self.image_size = spec.image_size
        if spec.cmmd:
            self.preprocess = partial(cmmd_pixels, size=spec.image_size)
            self.preprocess_key: tuple = ("cmmd", spec.image_size)
        else:
            config = PreprocessCfg(**get_model_preprocess_cfg(model))
            self.preprocess = image_transform_v2(config, is_train=False)
            # Equal configurations give equal transforms: encoders with the same key (ViT-B/32
            # and ViT-L/14 at 224 px) can share one preprocessed batch.
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


def cmmd_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """CMMD's preprocessing of one image, as google-research's `cmmd/io_util.py` and
    `cmmd/embedding.py` do it: the largest centred square (offsets rounded down), PIL bicubic
    (antialiased, 8-bit) to `size` x `size`, float32 / 255, CLIP mean/std. The reference then
    resizes bicubically to `size` again (`jax.image.resize`; the PyTorch port's `interpolate`),
    which at equal size is the identity and is left out. Greyscale is repeated over RGB, as the
    reference does; other modes (RGBA, palette), which it rejects or misreads, are converted."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    square = square.resize((size, size), resample=Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(square).astype(np.float32) / 255.0).permute(2, 0, 1)
    mean, std = (
        torch.tensor(values)[:, None, None] for values in (OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    )
    return (pixels - mean) / std


def _locate(spec: ClipSpec, search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, spec.role, _FILES) or huggingface_file(spec.hub_repo, _FILES)


def _load_paper(spec: ClipSpec, path: Path | None, options: LoadOptions) -> ClipEncoder:
    """open_clip's published architecture with the weights at `path` (None: its own random
    initialisation, the `paper-random` profile)."""
    import open_clip

    if path is not None:
        check_checkpoint(path)  # one line for a refused or damaged file, not open_clip's traceback
    model = open_clip.create_model(
        spec.architecture,
        pretrained=str(path) if path is not None else None,
        force_quick_gelu=True,  # OpenAI weights use QuickGELU
        device=options.device,
    )
    return ClipEncoder(spec, model, open_clip.get_tokenizer(spec.architecture), options)


def tiny_towers(spec: ClipSpec) -> dict[str, Any]:
    """The tiny profile's image and text towers, 64 wide and 2 layers deep, with the spec's
    patch and image sizes: `vision_cfg` and `text_cfg` as open_clip's `CLIP` and
    `create_model` take them."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    return {
        "vision_cfg": CLIPVisionCfg(
            layers=2,
            width=64,
            head_width=32,
            patch_size=spec.patch_size,
            image_size=spec.image_size,
        ),
        "text_cfg": CLIPTextCfg(context_length=77, vocab_size=49_408, width=64, heads=2, layers=2),
    }


def _build_tiny(spec: ClipSpec, options: LoadOptions) -> ClipEncoder:
    """The CLIP architecture (ViT image tower, text transformer) at `tiny_towers`' size, with
    the tokens that both towers pool (the class token, the end-of-text token) started at zero
    so that the embeddings follow the input (`silence_pooled_token`)."""
    import open_clip
    from open_clip.model import CLIP

    model = CLIP(spec.embed_dim, **tiny_towers(spec), quick_gelu=True)
    tokenizer = open_clip.get_tokenizer(spec.architecture)
    silence_pooled_token(
        model.visual.class_embedding,
        model.visual.positional_embedding[0],
        model.token_embedding.weight[tokenizer.eot_token_id],
    )
    return ClipEncoder(spec, model, tokenizer, options)


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
            preprocessing={
                "image_size": spec.image_size,
                "resize": "cmmd: centred square, PIL bicubic"
                if spec.cmmd
                else "open_clip: shortest side, bicubic, centre crop",
                "normalise": "OpenAI CLIP mean and std",
            },
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
CLIP_L14_336 = _register(
    ClipSpec(
        "clip_l14_336",
        "ViT-L-14-336",
        "timm/vit_large_patch14_clip_336.openai",
        768,
        14,
        image_size=336,
        cmmd=True,
    ),
    "OpenAI CLIP ViT-L/14@336px with CMMD's preprocessing: the image encoder of CMMD",
)
