"""The AudioToken embedder: BEATs features (B, T, 2304) -> one token (B, 768) for the prompt.

Linear(2304, 2304) -> GELU -> Linear(2304, 768) -> attentive pooling over the T patches with the
factor-graph attention of Schwartz et al. (CVPR 2019) on one utility: a unary potential
(Conv1d 768->768, ReLU, dropout, Conv1d 768->1) and a self pairwise potential (two Conv1d
768->768 embeddings, L2-normalised over channels, their cosine matrix averaged over its second
axis), mixed by Conv1d(2, 1, 1, bias=False), softmax over the patches, weighted sum of the
projected features. 8,853,507 parameters for SD v1.4 (768-d tokens), the paper's figure.

The module names reproduce the authors' state-dict keys (`fc1.*`, `fc2.*`,
`fga.un_models.0.{embed,feature_reduce}.*`, `fga.pp_models.0.{embed_X,embed_Y}.*`,
`fga.reduce_potentials.0.weight`), so their `embedder_learned_embeds.bin` loads as is.

One deliberate difference: the official code calls `F.dropout` (p 0.5) on the unary potential
with its default `training=True`, so its tokens are random even in eval mode; here the dropout
acts only in training, so inference is deterministic. A trainer may pass the dropout masks
itself (`dropout_masks`), drawn for a whole batch, so that a batch split across processes is
trained exactly as in one process.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiobench.errors import AudiobenchError
from audiobench.models.checkpoints import load_state_dict, load_strict

UNARY_DROPOUT = 0.5


class _Unary(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Conv1d(width, width, 1)
        self.feature_reduce = nn.Conv1d(width, 1, 1)

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """(B, C, T) -> (B, T); `masks` (B, C, T) replace the dropout drawn here."""
        hidden = F.relu(self.embed(x))
        if masks is None:
            hidden = F.dropout(hidden, UNARY_DROPOUT, training=self.training)
        else:
            hidden = hidden * masks
        return self.feature_reduce(hidden).squeeze(1)


class _SelfPairwise(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed_X = nn.Conv1d(width, width, 1)
        self.embed_Y = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, T)
        left = F.normalize(self.embed_X(x), dim=1)
        right = F.normalize(self.embed_Y(x), dim=1)
        return left.transpose(1, 2).bmm(right).mean(dim=2)


class _AttentivePooling(nn.Module):
    """Factor-graph attention with one utility: potentials -> softmax weights over T."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.un_models = nn.ModuleList([_Unary(width)])
        self.pp_models = nn.ModuleDict({"0": _SelfPairwise(width)})
        self.reduce_potentials = nn.ModuleList([nn.Conv1d(2, 1, 1, bias=False)])

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """(B, T, C) -> (B, C)."""
        channels_first = x.transpose(1, 2)
        potentials = torch.stack(
            [self.un_models[0](channels_first, masks), self.pp_models["0"](channels_first)],
            dim=1,
        )
        weights = F.softmax(self.reduce_potentials[0](potentials).squeeze(1), dim=1)
        return channels_first.bmm(weights.unsqueeze(2)).squeeze(2)


class AudioTokenEmbedder(nn.Module):
    """(B, T, in_dim) audio features -> (B, out_dim) token in the text encoder's input space."""

    def __init__(self, in_dim: int = 2304, out_dim: int = 768) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, in_dim)
        self.gelu = nn.GELU()
        self.fc2 = nn.Linear(in_dim, out_dim)
        self.fga = _AttentivePooling(out_dim)

    def forward(
        self, features: torch.Tensor, dropout_masks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`dropout_masks` (from `draw_dropout_masks`) replace the unary potential's dropout."""
        return self.fga(self.fc2(self.gelu(self.fc1(features))), dropout_masks)

    def draw_dropout_masks(
        self, batch: int, frames: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Scaled keep masks (batch, token width, frames) for the unary potential's dropout:
        0 with probability p, else 1 / (1 - p), as `F.dropout` draws them, on the
        generator's device."""
        shape = (batch, self.fc2.out_features, frames)
        keep = torch.rand(shape, generator=generator, device=generator.device) >= UNARY_DROPOUT
        return keep.float() / (1 - UNARY_DROPOUT)

    @classmethod
    def from_official_checkpoint(cls, path: Path) -> AudioTokenEmbedder:
        """Load an `embedder_learned_embeds.bin` (or a file audiobench saved), dimensions
        read from the weights, tensors only (`weights_only=True`)."""
        state = load_state_dict(path)
        if "fc1.weight" not in state or "fc2.weight" not in state:
            raise AudiobenchError(f"checkpoint {path} is not an AudioToken embedder (no fc1/fc2)")
        out_dim, in_dim = state["fc2.weight"].shape
        model = cls(in_dim, out_dim)
        load_strict(model, state, path)
        return model.eval()
