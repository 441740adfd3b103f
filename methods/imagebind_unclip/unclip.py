"""The `unclip` role: Stable unCLIP 2.1 (image-embedding-conditioned SD), the ImageBind baseline's
generator. `paper` loads `stabilityai/stable-diffusion-2-1-unclip` (768 px); `tiny` builds the
same pipeline class with toy components and 32-d image embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from audiobench.models.clip_tokenizer import VOCAB_SIZE, clip_tokenizer
from audiobench.models.zoo import (
    LoadOptions,
    Role,
    huggingface_snapshot,
    register_role,
    role_folder,
)

UNCLIP_REPO = "stabilityai/stable-diffusion-2-1-unclip"
TINY_EMBED_DIM = 32
_MARKER = "model_index.json"


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return role_folder(search_dirs, "unclip", _MARKER) or huggingface_snapshot(UNCLIP_REPO, _MARKER)


def _load_paper(path: Path, options: LoadOptions):
    from diffusers import StableUnCLIPImg2ImgPipeline

    pipeline = StableUnCLIPImg2ImgPipeline.from_pretrained(
        path, torch_dtype=options.dtype, local_files_only=True
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(options.device)


def _build_tiny(options: LoadOptions):
    """The unCLIP pipeline with 32-d image embeddings, a 2-layer text encoder, 64 px images."""
    from diffusers import (
        AutoencoderKL,
        DDPMScheduler,
        PNDMScheduler,
        StableUnCLIPImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    width, dim = 32, TINY_EMBED_DIM
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=width,
            projection_dim=dim,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            intermediate_size=37,
            patch_size=4,
        )
    )
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
    scheduler = PNDMScheduler(  # the scheduler config of stable-diffusion-2-1-unclip
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    pipeline = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=image_encoder.eval(),
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=dim).eval(),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=clip_tokenizer(),
        text_encoder=text_encoder.eval(),
        unet=unet.eval(),
        scheduler=scheduler,
        vae=vae.eval(),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(options.device, options.dtype)


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
        build_tiny=_build_tiny,
        fetch=_fetch,
    )
)
