"""`audiotoken` and `audiotoken-cl`: the paper's method (Yariv et al., Interspeech 2023).

BEATs layer 4/8/12 features of the audio go through the trained embedder to one token, which
takes the place of `<*>` in the prompt inside SD v1.4's frozen text encoder; SD then generates
as usual (guidance 7.5, 50 PNDM steps). The two variants differ only in training (`-cl` adds
the classification loss); both generate from a trained embedder given with `--checkpoint` (a
file or a folder holding `embedder_learned_embeds.bin`, the authors' layout). On the random
profiles, without a checkpoint, a seeded random embedder stands in, with a seed of its own per
variant, recorded in run.json's `models` (as `audiotoken_embedder`).

Options: `audio_seconds` (default 5, the paper's text: the 5 s evaluation window) and `prompt`
(default "A photo of a <*>", the paper's). The authors' inference script instead hears the
whole 10 s clip with "a photo of <*>, 4k, high resolution":
`--set audio_seconds=10 --set "prompt=a photo of <*>, 4k, high resolution"`. A window longer
than the evaluation window is centred on it and kept inside the clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from audiobench.methods.audiotoken import AUDIOTOKEN, AUDIOTOKEN_CL, AUDIOTOKEN_SPEAKER
from audiobench.methods.audiotoken.beats import BeatsFeatures, load_beats
from audiobench.methods.audiotoken.embedder import AudioTokenEmbedder
from audiobench.methods.audiotoken.prompt import PROMPT, AudioTokenPrompt
from audiobench.methods.audiotoken.xvector import XvectorFeatures, load_xvector
from PIL import Image

from audiobench.bounds import bounded
from audiobench.data import Sample, read_audio_window
from audiobench.errors import AudiobenchError
from audiobench.models.zoo import RANDOM_PROFILES
from audiobench.registry import Method, MethodContext, TrainRequest

EMBEDDER_FILE = "embedder_learned_embeds.bin"
# run.json's `models` records a random stand-in embedder under this name, with its seed and hash
RANDOM_EMBEDDER = "audiotoken_embedder"

__all__ = [
    "AudioToken",
    "AudioTokenCL",
    "AudioTokenEmbedder",
    "AudioTokenSpeaker",
    "BeatsFeatures",
    "XvectorFeatures",
    "load_beats",
    "load_xvector",
]


@dataclass(frozen=True)
class AudioTokenConfig:
    guidance_scale: float = bounded(7.5, low=0)  # diffusers guides only above 1
    steps: int = bounded(50, low=1)
    audio_seconds: float = bounded(5.0, low=0, low_inclusive=False)
    prompt: str = PROMPT


@dataclass(frozen=True)
class AudioTokenTrainConfig:
    """The paper's training recipe: AdamW on the embedder alone, a global batch of 8 crops."""

    steps: int = bounded(60_000, low=1)
    batch_size: int = bounded(8, low=1)  # the global batch, split across processes
    grad_accum: int = bounded(1, low=1)
    lr: float = bounded(8e-5, low=0, low_inclusive=False)
    checkpoint_every: int = bounded(1000, low=1)


def embedder_path(checkpoint: Path) -> Path:
    """The embedder file itself, or `embedder_learned_embeds.bin` inside a checkpoint folder."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        if not (checkpoint / EMBEDDER_FILE).is_file():
            raise AudiobenchError(f"checkpoint folder {checkpoint} has no {EMBEDDER_FILE}")
        return checkpoint / EMBEDDER_FILE
    return checkpoint


def read_centred_audio(sample: Sample, seconds: float) -> np.ndarray:
    """`seconds` of the clip centred on the sample's window, shifted to start no earlier than
    0 s (the 5 s window itself by default; the whole 10 s clip for 10)."""
    if seconds == sample.audio_end - sample.audio_start:
        return sample.read_audio()
    start = max(0.0, (sample.audio_start + sample.audio_end - seconds) / 2)
    return read_audio_window(sample.audio_path, start, start + seconds)


class AudioToken(Method, card=AUDIOTOKEN):
    table_name = "AudioToken"
    Config = AudioTokenConfig
    TrainConfig = AudioTokenTrainConfig
    # More steps continue the same constant-rate training; checkpoints only mark where it is
    resume_may_change = ("steps", "checkpoint_every")
    classification_loss = False
    audio_encoder = "beats"  # the role whose `layer_features` the embedder reads
    # The seed of the random embedder that stands in for a trained one on the random profiles:
    # one per variant, as two trainings give two embedders (one seed made the tiny images of
    # audiotoken and audiotoken-cl byte-identical)
    random_embedder_seed: ClassVar[int] = 0

    def setup(self, context: MethodContext) -> None:
        self.pipeline = context.models.load("sd")
        self.encoder = context.models.load(self.audio_encoder)
        self.prompt = AudioTokenPrompt(
            self.pipeline.tokenizer, self.pipeline.text_encoder, self.config.prompt
        )
        self.embedder = self._embedder(context).to(context.device).eval()
        self.device = context.device

    def _embedder(self, context: MethodContext) -> AudioTokenEmbedder:
        token_width = self.pipeline.text_encoder.config.hidden_size
        if context.checkpoint is not None:
            path = embedder_path(context.checkpoint)
            embedder = AudioTokenEmbedder.from_official_checkpoint(path)
        elif context.models.profile in RANDOM_PROFILES:
            embedder = context.models.build_random(
                RANDOM_EMBEDDER,
                lambda: AudioTokenEmbedder(self.encoder.feature_dim, token_width),
                self.random_embedder_seed,
            )
            path = Path(f"{context.models.profile} random embedder")
        else:
            raise AudiobenchError(
                "audiotoken generates from a trained embedder: pass --checkpoint (a file or a "
                f"folder with {EMBEDDER_FILE}; train one with `audiobench train`)"
            )
        expected = (self.encoder.feature_dim, token_width)
        found = (embedder.fc1.in_features, embedder.fc2.out_features)
        if found != expected:
            raise AudiobenchError(
                f"embedder {path} maps {found[0]} -> {found[1]} dimensions, but these models "
                f"need {expected[0]} -> {expected[1]} ({self.audio_encoder} features -> text "
                "encoder width)"
            )
        return embedder

    def prepare(self, sample: Sample) -> np.ndarray:
        return read_centred_audio(sample, self.config.audio_seconds)

    @torch.no_grad()
    def tokens(self, audio: Sequence[np.ndarray]) -> torch.Tensor:
        """(B, 768) tokens for equal-length 16 kHz windows."""
        features = self.encoder.layer_features(torch.from_numpy(np.stack(audio)))
        return self.embedder(features.to(self.device))

    def generate(self, inputs: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Image.Image]:
        with torch.no_grad():
            prompt_embeds = self.prompt.encode(self.tokens(inputs))
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        return self.pipeline(
            prompt_embeds=prompt_embeds,
            generator=generators,
            num_inference_steps=self.config.steps,
            guidance_scale=self.config.guidance_scale,
        ).images

    def train(self, context: MethodContext, request: TrainRequest, out: Path) -> Path:
        from audiobench.methods.audiotoken.training import train_audiotoken

        return train_audiotoken(context, request, out, self.classification_loss, self.audio_encoder)


class AudioTokenCL(AudioToken, card=AUDIOTOKEN_CL):
    table_name = "AudioToken with CL"
    classification_loss = True
    random_embedder_seed = 1


class AudioTokenSpeaker(AudioToken, card=AUDIOTOKEN_SPEAKER):
    """The paper's speaker experiment (Figure 4): X-vectors instead of BEATs layers.

    The 512-d X-vector enters the embedder as a one-step sequence, so the attentive pooling is
    the identity and the token is the embedder's MLP of the X-vector (see `xvector.py`).
    Train on a dataset from `audiobench data prepare speakers`; evaluate with `--metrics iis,sid`.
    """

    table_name = "AudioToken (speakers)"
    audio_encoder = "xvector"
    random_embedder_seed = 2
