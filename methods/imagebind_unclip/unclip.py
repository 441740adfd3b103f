"""The `unclip` role: Stable unCLIP 2.1 (image-embedding-conditioned SD), the ImageBind baseline's
generator. `paper` loads `stabilityai/stable-diffusion-2-1-unclip` (768 px) and `paper-random`
builds it from the repo's configs; `tiny` builds the same pipeline class with toy components
and 32-d image embeddings. The baseline always passes `image_embeds`, so no profile builds or
loads the pipeline's CLIP image encoder."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch

from audiobench.models.clip_tokenizer import VOCAB_SIZE, clip_tokenizer
from audiobench.models.sd import published_scheduler, untrained_components
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    diffusers_layout,
    huggingface_snapshot,
    published_config,
    register_role,
    role_folder,
)

UNCLIP_REPO = "stabilityai/stable-diffusion-2-1-unclip"
PAPER_CONFIGS = "stable-diffusion-2-1-unclip"  # the repo's component configs, embedded
PAD_TOKEN = "!"  # SD 2's tokenizer pads with "!", not with the end-of-text token
TINY_EMBED_DIM = 32
_MARKER = "model_index.json"


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return role_folder(search_dirs, "unclip", _MARKER) or huggingface_snapshot(UNCLIP_REPO, _MARKER)


@cache
def _embeddings_pipeline_class():
    """`StableUnCLIPImg2ImgPipeline` driven by `image_embeds` alone, so that its CLIP ViT-H image
    encoder (632M parameters) need not be loaded: the parent asks that encoder for its dtype
    even when it is handed the embeddings."""
    from diffusers import StableUnCLIPImg2ImgPipeline

    class ImageEmbedsUnCLIPPipeline(StableUnCLIPImg2ImgPipeline):
        def _encode_image(
            self,
            image,
            device,
            batch_size,
            num_images_per_prompt,
            do_classifier_free_guidance,
            noise_level,
            generator,
            image_embeds,
        ):
            """The parent's steps for given embeddings: noise augmentation at `noise_level`,
            one copy per image per prompt, zeros as the unconditional half."""
            if image_embeds is None:
                raise ValueError("this unCLIP pipeline takes image_embeds, not images")
            embeds = self.noise_image_embeddings(
                image_embeds=image_embeds, noise_level=noise_level, generator=generator
            )
            embeds = embeds.repeat_interleave(num_images_per_prompt, dim=0)
            if do_classifier_free_guidance:
                embeds = torch.cat([torch.zeros_like(embeds), embeds])
            return embeds

    return ImageEmbedsUnCLIPPipeline


def _load_paper(path: Path, options: LoadOptions):
    """The published pipeline without its CLIP ViT-H image encoder (632M parameters): the
    baseline always passes `image_embeds`, so the encoder would never run."""
    pipeline = _embeddings_pipeline_class().from_pretrained(
        path,
        torch_dtype=options.dtype,
        local_files_only=True,
        image_encoder=None,
        feature_extractor=None,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(options.device)


def _assemble(
    unet,
    vae,
    text_encoder,
    image_normalizer,
    image_noising_scheduler,
    scheduler,
    tokenizer,
    options: LoadOptions,
):
    """An unCLIP pipeline of untrained components (the random profiles), as `paper` has it."""
    pipeline = _embeddings_pipeline_class()(
        feature_extractor=None,
        image_encoder=None,
        image_normalizer=image_normalizer.eval(),
        image_noising_scheduler=image_noising_scheduler,
        tokenizer=tokenizer,
        text_encoder=text_encoder.eval(),
        unet=unet.eval(),
        scheduler=scheduler,
        vae=vae.eval(),
    )
    pipeline.set_progress_bar_config(disable=True)
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            # torch's cast, not diffusers' `ModelMixin.to`: that one warns of "modules that should
            # be kept in float32: []" on any dtype, though these models keep none in float32.
            torch.nn.Module.to(component, options.device, options.dtype)
    return pipeline


def _build_paper_random(options: LoadOptions):
    """Stable unCLIP 2.1 at full size (768 px, ViT-H text encoder) from its published configs."""
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )

    parts = untrained_components(PAPER_CONFIGS)
    normalizer = published_config(f"{PAPER_CONFIGS}/image_normalizer.json")
    return _assemble(
        parts["unet"],
        parts["vae"],
        parts["text_encoder"],
        StableUnCLIPImageNormalizer.from_config(normalizer),
        published_scheduler(PAPER_CONFIGS, "image_noising_scheduler"),
        published_scheduler(PAPER_CONFIGS),
        clip_tokenizer(pad_token=PAD_TOKEN),
        options,
    )


def _build_tiny(options: LoadOptions):
    """The unCLIP pipeline with 32-d image embeddings, a 2-layer text encoder, 64 px images."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    width, dim = 32, TINY_EMBED_DIM
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=VOCAB_SIZE,
            max_position_embeddings=77,
            hidden_size=width,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=width,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=(2, 4),
        layers_per_block=1,
        cross_attention_dim=width,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * dim,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        sample_size=64,
    )

    return _assemble(
        unet,
        vae,
        text_encoder,
        StableUnCLIPImageNormalizer(embedding_dim=dim),
        published_scheduler(PAPER_CONFIGS, "image_noising_scheduler"),
        published_scheduler(PAPER_CONFIGS),
        clip_tokenizer(pad_token=PAD_TOKEN),
        options,
    )


def _fetch(weights_dir: Path) -> Path:
    from huggingface_hub import snapshot_download

    target = Path(weights_dir) / "unclip"
    snapshot_download(
        UNCLIP_REPO,
        local_dir=target,
        allow_patterns=["*.json", "*.txt", "*.safetensors"],
        ignore_patterns=["*fp16*", "*.ckpt"],
    )
    return target


UNCLIP = register_role(
    Role(
        name="unclip",
        description="Stable unCLIP 2.1 (768 px, image_embeds conditioning): ImageBind baseline",
        paper_source=UNCLIP_REPO,
        how_to_obtain=f"a diffusers folder of {UNCLIP_REPO} at WEIGHTS/unclip or in the Hugging "
        "Face cache (`audiobench models fetch --role unclip`)",
        locate=_locate,
        load_paper=_load_paper,
        build_paper_random=_build_paper_random,
        build_tiny=_build_tiny,
        layout=diffusers_layout(("unet", "vae", "image_normalizer"), ("text_encoder",)),
        fetch=_fetch,
    )
)
