"""The `classifier` role: the ImageNet-1k classifier whose top-1 class AIC compares with the label.

The paper does not name its classifier. audiobench uses timm's
`vit_base_patch16_224.augreg2_in21k_ft_in1k` (ViT-B/16, ImageNet-21k pre-trained, fine-tuned on
ImageNet-1k, 85.1% top-1), a strong, widely used checkpoint, with timm's own evaluation
transform (bicubic resize, 0.9 centre crop, mean/std 0.5). The class name compared with the
label is the first synonym of timm's bundled ImageNet description ("police van" for "police
van, police wagon, paddy wagon, ...").
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

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
    variance_preserving_init,
    weight_file,
)

ARCHITECTURE = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
HUB_REPO = f"timm/{ARCHITECTURE}"
_FILES = ("model.safetensors", "pytorch_model.bin")
# ViT-B/16 32 wide and 2 blocks deep: the `tiny` profile's size (timm `create_model` kwargs)
TINY_SIZE: dict[str, Any] = {"embed_dim": 32, "depth": 2, "num_heads": 2}


@cache
def class_names() -> list[str]:
    """The 1000 ImageNet class names: the first synonym of each of timm's descriptions."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(index).split(",")[0].strip() for index in range(1000)]


class ImageClassifier:
    """A timm ImageNet-1k model with its evaluation transform and class names."""

    def __init__(self, model: Any, options: LoadOptions) -> None:
        import timm

        self.model = model.to(options.device, options.dtype).eval()
        self.options = options
        config = timm.data.resolve_data_config({}, model=model)
        self.transform = timm.data.create_transform(**config)

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def top1(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Index of the most likely ImageNet class of each image."""
        return self.top1_of_pixels(self.pixels(images))

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The evaluation transform of a batch, on all cores (the CPU half of `top1`)."""
        return torch.stack(thread_map(self.transform, [image.convert("RGB") for image in images]))

    @torch.no_grad()
    def top1_of_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = self.model(pixels.to(self.options.device, self.options.dtype))
        return logits.argmax(dim=-1).cpu()


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, "classifier", _FILES) or huggingface_file(HUB_REPO, _FILES)


def _load_paper(path: Path | None, options: LoadOptions) -> ImageClassifier:
    """timm's published architecture with the weights at `path` (None: timm's own random
    initialisation, the `paper-random` profile)."""
    import timm

    if path is None:
        return ImageClassifier(timm.create_model(ARCHITECTURE, pretrained=False), options)
    check_checkpoint(path)  # one line for a refused or damaged file, not timm's traceback
    model = timm.create_model(
        ARCHITECTURE, pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    )
    return ImageClassifier(model, options)


def _build_tiny(options: LoadOptions) -> ImageClassifier:
    """ViT-B/16's architecture at `TINY_SIZE`, with the same transform and classes. The class
    token that the head reads starts at zero (`silence_pooled_token`): as a random constant it
    made the top-1 class the same for all six frames taken from the two real VGGSound clips."""
    import timm

    model = timm.create_model(ARCHITECTURE, pretrained=False, **TINY_SIZE)
    variance_preserving_init(model, nonlinearity="linear")
    silence_pooled_token(model.get_parameter("cls_token"), model.get_parameter("pos_embed")[:, 0])
    return ImageClassifier(model, options)


def _fetch(weights_dir: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(HUB_REPO, _FILES[0], local_dir=Path(weights_dir) / "classifier"))


CLASSIFIER = register_role(
    Role(
        name="classifier",
        description="ImageNet-1k classifier (timm ViT-B/16 augreg2): top-1 class for AIC",
        paper_source=HUB_REPO,
        how_to_obtain=f"{_FILES[0]} from {HUB_REPO} at WEIGHTS/classifier/ or in the Hugging "
        "Face cache",
        locate=_locate,
        load_paper=_load_paper,
        build_paper_random=lambda options: _load_paper(None, options),
        build_tiny=_build_tiny,
        layout=WeightLayout({"model": ("",)}),
        fetch=_fetch,
    )
)
