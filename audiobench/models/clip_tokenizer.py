"""The real CLIP BPE tokenizer, offline, as a transformers `CLIPTokenizer`.

open_clip ships OpenAI's BPE merges (`bpe_simple_vocab_16e6.txt.gz`). The Hugging Face
tokenizer files are a re-encoding of the same data: the 256 byte symbols, the same with the
end-of-word mark, one entry per merge, then the two special tokens, 49,408 entries in all. Built
once into the audiobench cache, they give exactly Stable Diffusion v1's tokenizer, so `tiny`
models tokenise prompts like the published ones.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from audiobench.models.zoo import cache_dir
from audiobench.store import atomic_write_bytes

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49_408
_MERGE_COUNT = 49_152 - 256 - 2


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A `transformers.CLIPTokenizer` with the real CLIP vocabulary (no download); SD v1 pads
    with the end-of-text token, SD 2 with "!"."""
    from transformers import CLIPTokenizer

    folder = _tokenizer_files()
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        model_max_length=CONTEXT_LENGTH,
        pad_token=pad_token,
    )


def _tokenizer_files() -> Path:
    folder = cache_dir() / "clip-tokenizer"
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return folder
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as packed:
        lines = packed.read().decode("utf-8").split("\n")
    merges = lines[1 : _MERGE_COUNT + 1]  # line 0 is the format header
    symbols = list(bytes_to_unicode().values())
    vocabulary = symbols + [symbol + "</w>" for symbol in symbols]
    vocabulary += ["".join(merge.split()) for merge in merges]
    vocabulary += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocabulary) == VOCAB_SIZE, len(vocabulary)
    folder.mkdir(parents=True, exist_ok=True)
    merges_text = "#version: 0.2\n" + "\n".join(merges) + "\n"
    vocab_json = json.dumps({token: index for index, token in enumerate(vocabulary)})
    atomic_write_bytes(folder / "merges.txt", merges_text.encode("utf-8"))
    atomic_write_bytes(folder / "vocab.json", vocab_json.encode("utf-8"))
    return folder
