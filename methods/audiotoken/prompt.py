"""Putting an audio token into a prompt such as "A photo of a <*>" inside the frozen CLIP text
encoder.

Current transformers' CLIPTextModel.forward takes token ids, not input embeddings, so the token
goes in through two hooks on the token-embedding module, present only while `encode` runs: a
pre-hook swaps the placeholder's id (unknown to the published vocabulary) for a valid one and
remembers where it was, and a hook replaces the embeddings at those positions with each
sample's audio token. The text encoder's weights stay exactly the published ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from audiobench.errors import AudiobenchError

PLACEHOLDER = "<*>"
PROMPT = "A photo of a <*>"  # the paper's prompt, for training and generation


class AudioTokenPrompt:
    """Encodes the prompt with one audio token per sample in place of the placeholder."""

    def __init__(self, tokenizer, text_encoder, prompt: str = PROMPT) -> None:
        if prompt.count(PLACEHOLDER) != 1:
            raise AudiobenchError(
                f"the AudioToken prompt must contain {PLACEHOLDER} exactly once, not {prompt!r}"
            )
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        tokenizer.add_tokens([PLACEHOLDER])
        self.placeholder_id = tokenizer.convert_tokens_to_ids(PLACEHOLDER)
        self.prompt = prompt
        self._tokens: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None

    def input_ids(self, batch_size: int) -> torch.Tensor:
        ids = self.tokenizer(
            self.prompt,
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        )
        return ids.input_ids.repeat(batch_size, 1)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, D) audio tokens -> (B, 77, D) prompt embeddings (gradients flow to `tokens`)."""
        ids = self.input_ids(tokens.shape[0]).to(self.text_encoder.device)
        with self._using(tokens):
            return self.text_encoder(ids)[0]

    @contextmanager
    def _using(self, tokens: torch.Tensor) -> Iterator[None]:
        embeddings = self.text_encoder.get_input_embeddings()
        hooks = [
            embeddings.register_forward_pre_hook(self._swap_placeholder),
            embeddings.register_forward_hook(self._insert_tokens),
        ]
        self._tokens = tokens
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()
            self._tokens = self._mask = None

    def _swap_placeholder(self, module, arguments):
        (ids,) = arguments
        self._mask = ids == self.placeholder_id
        return (ids.masked_fill(self._mask, self.tokenizer.eos_token_id),)

    def _insert_tokens(self, module, arguments, output: torch.Tensor) -> torch.Tensor | None:
        if self._mask is None:
            return None
        mask = self._mask
        self._mask = None
        tokens = self._tokens.to(output.dtype)[:, None, :].expand_as(output)
        return torch.where(mask[..., None], tokens, output)
