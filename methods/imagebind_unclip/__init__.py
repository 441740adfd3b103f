"""The imagebind-unclip method, declared here and implemented in `method.py` (imported only when
the method is used)."""

from audiobench.registry import MethodCard

IMAGEBIND_UNCLIP = MethodCard(
    description="ImageBind audio embedding as unCLIP 2.1's image embedding (Anything2Image)",
    implementation="audiobench.methods.imagebind_unclip.method:ImageBindUnCLIP",
    roles=("unclip", "imagebind_audio"),
)
