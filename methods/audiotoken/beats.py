"""The `beats` role: BEATs (speechbrain's implementation), frozen, as AudioToken's audio encoder.

`layer_features` returns the outputs of transformer layers 4, 8 and 12 concatenated: (B, T,
3 x 768) = (B, 248, 2304) for 5 s of 16 kHz audio, where the T = 31 x 8 patches are time x
frequency patches of the 128-bin fbank. BEATs always runs in float32: its fbank overflows in
half precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from audiobench.methods.audiotoken.speechbrain_import import speechbrain_module

from audiobench.models.checkpoints import load_state_dict
from audiobench.models.zoo import (
    RANDOM_SEED,
    LoadOptions,
    Role,
    WeightLayout,
    build_unloaded,
    download_file,
    published_config,
    register_role,
    tiny_checkpoint,
    weight_file,
)

CHECKPOINT = "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
# The link of the BEATs README (microsoft/unilm) and of AudioToken's README; its signature is
# valid until 2033.
URL = (
    f"https://valle.blob.core.windows.net/share/BEATs/{CHECKPOINT}?sv=2020-08-04"
    "&st=2023-03-01T07%3A51%3A05Z&se=2033-03-02T07%3A51%3A00Z&sr=c&sp=rl"
    "&sig=QJXmSJG9DbMKf48UDIU1MfzIro8HQOf3sqlNXiflY1I%3D"
)
LAYERS = (4, 8, 12)
PAPER_CONFIG = "beats-iter3-plus-as2m-finetuned.json"  # the `cfg` stored in CHECKPOINT
# The base architecture at toy width; 12 layers so that layers 4, 8 and 12 exist.
TINY_CONFIG = {
    "encoder_layers": 12,
    "encoder_embed_dim": 16,
    "encoder_ffn_embed_dim": 32,
    "encoder_attention_heads": 2,
    "embed_dim": 16,
    "input_patch_size": 16,
    "conv_pos": 16,
    "conv_pos_groups": 4,
    "relative_position_embedding": True,
    "num_buckets": 32,
    "max_distance": 64,
    "gru_rel_pos": True,
    "deep_norm": True,
    "layer_norm_first": False,
    "encoder_layerdrop": 0.0,
    "finetuned_model": False,
}


class BeatsFeatures:
    """A frozen BEATs that maps (B, S) 16 kHz waveforms to its layer 4/8/12 features."""

    def __init__(self, beats: torch.nn.Module, options: LoadOptions) -> None:
        self.beats = beats.to(options.device, torch.float32).eval().requires_grad_(False)
        self.device = options.device

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        return {"beats": self.beats}

    @property
    def feature_dim(self) -> int:
        return len(LAYERS) * self.beats.cfg.encoder_embed_dim

    @torch.no_grad()
    def layer_features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, S) float waveforms of equal length -> (B, T, 3C) float32 features."""
        self.beats.eval()  # a parent's .train() would turn layer drop back on
        audio = audio.to(self.device, torch.float32)
        lengths = torch.ones(audio.shape[0], device=self.device)
        hidden = self.beats(audio, wav_lens=lengths)[0]  # (layers + 1, T, B, C)
        return torch.cat([hidden[layer] for layer in LAYERS], dim=-1).transpose(0, 1)


def load_beats(path: Path, options: LoadOptions | None = None) -> BeatsFeatures:
    """The official `{'cfg', 'model'}` checkpoint as a frozen `BeatsFeatures`."""
    BEATs = speechbrain_module("speechbrain.lobes.models.beats").BEATs

    load_state_dict(path, key="model")  # tensors only: refuses pickled code before BEATs loads
    options = options or LoadOptions(torch.device("cpu"), torch.float32)
    return BeatsFeatures(BEATs(ckp_path=str(path), freeze=True, output_all_hiddens=True), options)


def _tiny_checkpoint() -> Path:
    """A seeded random BEATs of the tiny configuration in the official {'cfg', 'model'} format,
    written once: the tiny profile then loads it exactly as `paper` loads the published file."""
    return tiny_checkpoint(
        f"beats-tiny-seed{RANDOM_SEED}.pt",
        _beats_class(),
        {"cfg": TINY_CONFIG, "model": {}},
        lambda cls, placeholder: cls(ckp_path=placeholder),
        lambda model: {"cfg": TINY_CONFIG, "model": model.state_dict()},
    )


def _build_paper_random(options: LoadOptions) -> BeatsFeatures:
    """BEATs of the published configuration, random weights, built through speechbrain's
    constructor as `paper` is (without writing the 360 MB of weights to a file)."""
    beats = build_unloaded(
        _beats_class(),
        {"cfg": published_config(PAPER_CONFIG), "model": {}},
        lambda cls, placeholder: cls(ckp_path=placeholder, freeze=True, output_all_hiddens=True),
    )
    return BeatsFeatures(beats, options)


def _beats_class() -> type[torch.nn.Module]:
    return speechbrain_module("speechbrain.lobes.models.beats").BEATs


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, "beats", [CHECKPOINT])


BEATS = register_role(
    Role(
        name="beats",
        description="BEATs iter3+ AS2M (fine-tuned): AudioToken's audio encoder, layers 4/8/12",
        paper_source=CHECKPOINT,
        how_to_obtain=f"{CHECKPOINT} from the microsoft/unilm BEATs release (README link), at "
        f"WEIGHTS/beats/{CHECKPOINT}",
        locate=_locate,
        load_paper=load_beats,
        build_paper_random=_build_paper_random,
        build_tiny=lambda options: load_beats(_tiny_checkpoint(), options),
        layout=WeightLayout({"beats": ("",)}, entry="model", optional=("predictor.",)),
        fetch=lambda weights_dir: download_file(URL, Path(weights_dir) / "beats" / CHECKPOINT),
    )
)
