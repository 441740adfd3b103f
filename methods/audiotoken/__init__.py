"""The AudioToken methods, declared here and implemented in `method.py`.

The cards are what `audiobench methods` lists; the code (and torch) is imported only when one of
the methods is used.
"""

from audiobench.registry import MethodCard

AUDIOTOKEN = MethodCard(
    description='AudioToken: a BEATs audio token in SD v1.4\'s "A photo of a <*>"',
    implementation="audiobench.methods.audiotoken.method:AudioToken",
    roles=("sd", "beats"),
    trainable=True,
)
AUDIOTOKEN_CL = MethodCard(
    description="AudioToken trained with the classification loss (Table 1's 'with CL')",
    implementation="audiobench.methods.audiotoken.method:AudioTokenCL",
    roles=("sd", "beats"),
    trainable=True,
)
AUDIOTOKEN_SPEAKER = MethodCard(
    description="AudioToken on X-vector speaker embeddings (the paper's speaker study)",
    implementation="audiobench.methods.audiotoken.method:AudioTokenSpeaker",
    roles=("sd", "xvector"),
    trainable=True,
)
