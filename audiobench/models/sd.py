"""The `sd` role: Stable Diffusion v1.4 (the backbone of AudioToken and the text topline)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from audiobench.models.clip_tokenizer import VOCAB_SIZE, clip_tokenizer
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    diffusers_layout,
    huggingface_snapshot,
    published_config,
    register_role,
    role_folder,
)

SD_REPO = "CompVis/stable-diffusion-v1-4"
PAPER_CONFIGS = "stable-diffusion-v1-4"  # the repo's component configs, embedded
_MARKER = "model_index.json"
_FILES = [
    "model_index.json",
    "scheduler/*",
    "tokenizer/*",
    "feature_extractor/*",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
]


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return role_folder(search_dirs, "sd", _MARKER) or huggingface_snapshot(SD_REPO, _MARKER)


def _finish(pipeline, options: LoadOptions):
    """PNDM as the official inference, SDPA attention, no progress bar of its own."""
    from diffusers import PNDMScheduler

    pipeline.scheduler = PNDMScheduler.from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(options.device)


def _load_paper(path: Path, options: LoadOptions):
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(
        path,
        torch_dtype=options.dtype,
        safety_checker=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    return _finish(pipeline, options)


def _assemble(unet, vae, text_encoder, scheduler, options: LoadOptions):
    """An SD v1 pipeline of untrained components (the random profiles), as `paper` has it."""
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if options.dtype != torch.float32:
        # diffusers' `__init__` imports a dummy StableDiffusionPipeline first, which mypy takes
        pipeline.to(dtype=options.dtype)  # type: ignore[attr-defined]
    return _finish(pipeline, options)


def untrained_components(configs: str) -> dict:
    """The UNet, VAE and CLIP text encoder of a published diffusers repo, built from its
    embedded configs (`configs/<configs>/`) with random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    def config(part: str) -> dict:
        return published_config(f"{configs}/{part}.json")

    return {
        "unet": UNet2DConditionModel.from_config(config("unet")),
        "vae": AutoencoderKL.from_config(config("vae")),
        "text_encoder": CLIPTextModel(CLIPTextConfig.from_dict(config("text_encoder"))),
    }


def published_scheduler(configs: str, part: str = "scheduler"):
    """A diffusers scheduler of the class and configuration a published repo names."""
    import diffusers

    config = published_config(f"{configs}/{part}.json")
    return getattr(diffusers, config["_class_name"]).from_config(config)


def _build_paper_random(options: LoadOptions):
    """SD v1.4 at full size (860M-parameter UNet, 512 px) from its published configs."""
    parts = untrained_components(PAPER_CONFIGS)
    scheduler = published_scheduler(PAPER_CONFIGS)
    return _assemble(parts["unet"], parts["vae"], parts["text_encoder"], scheduler, options)


def _build_tiny(options: LoadOptions):
    """SD v1 architecture at toy width: 64 px images, 16x16 latents, 32-wide text encoder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text_width = 32
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_width,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=text_width,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    return _assemble(unet, vae, text_encoder, published_scheduler(PAPER_CONFIGS), options)


def _fetch(weights_dir: Path) -> Path:
    from huggingface_hub import snapshot_download

    target = Path(weights_dir) / "sd"
    snapshot_download(SD_REPO, local_dir=target, allow_patterns=_FILES)
    return target


SD = register_role(
    Role(
        name="sd",
        description="Stable Diffusion v1.4 text-to-image pipeline (512 px, PNDM)",
        paper_source=SD_REPO,
        how_to_obtain=(
            f"a diffusers folder of {SD_REPO} at WEIGHTS/sd or in the Hugging Face cache "
            "(accept the licence on the Hub, then `audiobench models fetch --role sd`)"
        ),
        locate=_locate,
        load_paper=_load_paper,
        build_paper_random=_build_paper_random,
        build_tiny=_build_tiny,
        layout=diffusers_layout(("unet", "vae"), ("text_encoder",)),
        fetch=_fetch,
    )
)
