"""The reference method, declared here and implemented in `method.py` (imported only when the
method is used)."""

from audiobench.registry import MethodCard

REFERENCE = MethodCard(
    description="The dataset's reference video frames (Table 1's Reference row)",
    implementation="audiobench.methods.reference.method:ReferenceFrames",
)
