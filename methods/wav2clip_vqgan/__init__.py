"""The wav2clip-vqgan method, declared here and implemented in `method.py` (imported only when
the method is used)."""

from audiobench.registry import MethodCard

WAV2CLIP_VQGAN = MethodCard(
    description="VQGAN-CLIP steered by the Wav2CLIP audio embedding (CLIP ViT-B/32 space)",
    implementation="audiobench.methods.wav2clip_vqgan.method:Wav2CLIPVQGAN",
    roles=("vqgan", "wav2clip", "clip_b32"),
)
