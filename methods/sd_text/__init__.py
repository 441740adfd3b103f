"""The sd-text method, declared here and implemented in `method.py` (imported only when the
method is used)."""

from audiobench.registry import MethodCard

SD_TEXT = MethodCard(
    description='Stable Diffusion v1.4 on the text label, "A photo of a {label}" (topline)',
    implementation="audiobench.methods.sd_text.method:StableDiffusionText",
    roles=("sd",),
)
