"""The `xvector` role: speechbrain's X-vector speaker encoder, the audio side of the speaker study.

`paper` loads `embedding_model.ckpt` of speechbrain/spkrec-xvect-voxceleb, and the features
reproduce that model's `hyperparams.yaml`: 24-bin Fbank, per-utterance mean subtraction
(`InputNormalization`, sentence, no variance normalisation) and the 5-block TDNN with
statistics pooling into a 512-d embedding. The optional embedding normalisation of
`EncoderClassifier.encode_batch` is off by default there and is not applied here either.

speechbrain's statistics pooling adds random noise in [1e-5, 9e-5] to the pooled mean, drawn
from the global generator and scaled by the min and max over the whole batch, so an embedding
would depend on the call and on its batch-mates. audiobench adds the noise's expected value,
5e-5, instead: embeddings are deterministic and batch-independent, and differ from one official
call by less than 4e-5 per pooled mean.

`layer_features` returns the embedding as a sequence of one step, (B, 1, 512), so the AudioToken
embedder and trainer take it exactly as they take BEATs' (B, T, C) layers: with one step the
attentive pooling is the identity and the embedder is its two-layer MLP.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from audiobench.methods.audiotoken.speechbrain_import import speechbrain_module

from audiobench.errors import AudiobenchError
from audiobench.models.checkpoints import load_state_dict, load_strict
from audiobench.models.zoo import (
    RANDOM_SEED,
    LoadOptions,
    Role,
    WeightLayout,
    huggingface_file,
    register_role,
    variance_preserving_init,
    weight_file,
)

REPO = "speechbrain/spkrec-xvect-voxceleb"
CHECKPOINT = "embedding_model.ckpt"
N_MELS = 24
PAPER_ARCHITECTURE = {"tdnn_channels": [512, 512, 512, 512, 1500], "lin_neurons": 512}
POOLING_NOISE = 5e-5  # the mean of speechbrain's 1e-5 * (9 - 8 u), u uniform-ish in [0, 1]
TINY_ARCHITECTURE = {"tdnn_channels": [16, 16, 16, 16, 48], "lin_neurons": 32}


class XvectorFeatures:
    """A frozen X-vector network with its feature pipeline: (B, S) 16 kHz audio -> (B, 1, D)."""

    def __init__(self, network: torch.nn.Module, lin_neurons: int, options: LoadOptions) -> None:
        features = speechbrain_module("speechbrain.lobes.features")
        self.fbank = features.Fbank(n_mels=N_MELS).to(options.device)
        self.network = network.to(options.device, torch.float32).eval().requires_grad_(False)
        self.lin_neurons = lin_neurons
        self.device = options.device

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        return {"xvector": self.network}

    @property
    def feature_dim(self) -> int:
        return self.lin_neurons

    @torch.no_grad()
    def layer_features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, S) float waveforms of equal length -> (B, 1, D) float32 X-vectors."""
        self.network.eval()
        features = self.fbank(audio.to(self.device, torch.float32))
        features = features - features.mean(dim=1, keepdim=True)
        return self.network(features)


def build_xvector(tdnn_channels: Sequence[int], lin_neurons: int) -> torch.nn.Module:
    xvector = speechbrain_module("speechbrain.lobes.models.Xvector")
    pooling = speechbrain_module("speechbrain.nnet.pooling")
    network = xvector.Xvector(
        in_channels=N_MELS,
        activation=torch.nn.LeakyReLU,
        tdnn_blocks=5,
        tdnn_channels=list(tdnn_channels),
        tdnn_kernel_sizes=[5, 3, 3, 1, 1],
        tdnn_dilations=[1, 2, 3, 1, 1],
        lin_neurons=lin_neurons,
    )
    for module in network.modules():
        if isinstance(module, pooling.StatisticsPooling):
            module._get_gauss_noise = _expected_pooling_noise
    return network


def _expected_pooling_noise(shape: torch.Size, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.full(shape, POOLING_NOISE, device=device)


def load_xvector(path: Path, options: LoadOptions | None = None) -> XvectorFeatures:
    """`embedding_model.ckpt` (a flat state dict) as frozen `XvectorFeatures`, sizes inferred."""
    options = options or LoadOptions(torch.device("cpu"), torch.float32)
    state = load_state_dict(path)
    channels, lin_neurons = _sizes(state, path)
    network = build_xvector(channels, lin_neurons)
    load_strict(network, state, path)
    return XvectorFeatures(network, lin_neurons, options)


def _sizes(state: dict[str, torch.Tensor], path: Path) -> tuple[list[int], int]:
    """The TDNN widths and the embedding size, read off the weights."""
    try:
        channels = [state[f"blocks.{3 * i}.conv.weight"].shape[0] for i in range(5)]
        return channels, state["blocks.16.w.weight"].shape[0]
    except KeyError as error:
        raise AudiobenchError(
            f"{path} is not a speechbrain X-vector embedding model: no tensor {error.args[0]}"
        ) from error


def _build_random(architecture: dict, options: LoadOptions) -> XvectorFeatures:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        network = build_xvector(**architecture)
        variance_preserving_init(network, "leaky_relu")
    return XvectorFeatures(network, architecture["lin_neurons"], options)


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, "xvector", [CHECKPOINT]) or huggingface_file(REPO, [CHECKPOINT])


def _fetch(weights_dir: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(REPO, CHECKPOINT, local_dir=Path(weights_dir) / "xvector"))


XVECTOR = register_role(
    Role(
        name="xvector",
        description="speechbrain X-vector (VoxCeleb, 512-d): the speaker study's audio encoder",
        paper_source=f"{REPO} {CHECKPOINT}",
        how_to_obtain=f"{CHECKPOINT} of the Hugging Face repo {REPO}, at "
        f"WEIGHTS/xvector/{CHECKPOINT}",
        locate=_locate,
        load_paper=load_xvector,
        build_paper_random=partial(_build_random, PAPER_ARCHITECTURE),
        build_tiny=partial(_build_random, TINY_ARCHITECTURE),
        layout=WeightLayout({"xvector": ("",)}),
        fetch=_fetch,
    )
)
