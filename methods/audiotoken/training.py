"""AudioToken training: only the embedder learns; every frozen encoder runs once per crop.

Each clip has a fixed set of crops (`audiobench.data.training`). Before the first step, the
audio encoder's features (BEATs layers; X-vectors for `audiotoken-speaker`) of every crop's
window and the VAE's latent distribution (mean, log-variance) of every crop's frame are
computed once and cached; a step then costs one embedder, one text
encoder and one UNet forward and backward. A latent is still sampled from its distribution at
every step, as the official loop does, so caching changes nothing but the speed.

Loss = LDM MSE + 0.01 mean|token| (+ 0.01 (1 - mean over the batch of cos(token, label))^2 for
`audiotoken-cl`, the official reduction, the label being the mean input embedding of the
label's tokens). Frames are stretched to 512 x 320 (width x height) without cropping, as the
official loader does. AdamW (weight decay 0.01) at a
constant learning rate. All randomness of step s (crops, latent samples, noise, timesteps,
dropout) is drawn from a generator seeded by (seed, s), so a resumed run repeats the
uninterrupted one bit for bit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from audiobench.methods.audiotoken.embedder import AudioTokenEmbedder
from audiobench.methods.audiotoken.prompt import AudioTokenPrompt

from audiobench.concurrency import thread_map
from audiobench.data import load_index, read_frame
from audiobench.data.training import Crop, clip_crops, frame_tensor
from audiobench.distributed import Processes
from audiobench.errors import AudiobenchError
from audiobench.features import Computer, FeatureKind, Features, register_kind
from audiobench.models.checkpoints import CheckpointRefused, load_state_dict, read_checkpoint
from audiobench.progress import progress_bar
from audiobench.registry import MethodContext, TrainRequest
from audiobench.store import atomic_write_bytes, atomic_write_json, file_sha256, read_json

EMBEDDER_FILE = "embedder_learned_embeds.bin"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
L1_WEIGHT = 0.01
CL_WEIGHT = 0.01
WEIGHT_DECAY = 1e-2
KEEP_CHECKPOINTS = 2
FRAME_HEIGHT_RATIO = (320, 512)  # official frames are stretched to 512 wide x 320 high
LOSS_COLUMNS = ("step", "loss", "mse", "l1", "cl")


def _token_features(encoder) -> Computer:
    """What the embedder reads: BEATs layers or the one-step X-vector, (N, T, C)."""
    return Computer(lambda clips: encoder.layer_features(torch.from_numpy(clips)).numpy(), np.stack)


def _vae_moments(pipeline) -> Computer:
    """Frames (3, H, W) in [-1, 1] -> the VAE posterior's mean and log-variance, stacked."""

    @torch.no_grad()
    def forward(frames: torch.Tensor) -> np.ndarray:
        vae = pipeline.vae
        posterior = vae.encode(frames.to(vae.device, vae.dtype)).latent_dist
        return torch.cat([posterior.mean, posterior.logvar], dim=1).float().cpu().numpy()

    return Computer(forward, torch.stack)


register_kind("token-features", _token_features)
register_kind("vae-moments", _vae_moments)


def training_frame_size(pipeline) -> tuple[int, int]:
    """(width, height) of training frames: the official loader's 512 x 320 for SD's 512 px,
    in proportion for other sizes (the tiny profile's 64 px: 64 x 40)."""
    width = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
    return width, width * FRAME_HEIGHT_RATIO[0] // FRAME_HEIGHT_RATIO[1]


def step_seed(seed: int, step: int) -> int:
    digest = hashlib.sha256(f"audiotoken-train/{seed}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


class CropFeatures:
    """Cached BEATs features and VAE moments of every crop, as two tensors indexed by crop."""

    def __init__(
        self,
        context: MethodContext,
        crops: list[Crop],
        frame_size: tuple[int, int],
        batch_size: int,
        audio_encoder: str,
    ) -> None:
        features = Features(context.models, batch_size, processes=context.processes)
        audio_keys = [
            f"{file_sha256(c.sample.audio_path)}:{c.audio_start:g}-{c.audio_end:g}" for c in crops
        ]
        frame_keys = [f"{file_sha256(c.frame_path)}:{frame_size[0]}x{frame_size[1]}" for c in crops]
        [layers] = features.compute(
            audio_keys,
            crops,
            [FeatureKind(audio_encoder, "token-features")],
            lambda batch: thread_map(Crop.read_audio, batch),
            "training audio windows",
        )
        [moments] = features.compute(
            frame_keys,
            crops,
            [FeatureKind("sd", "vae-moments")],
            lambda batch: [frame_tensor(read_frame(crop.frame_path), frame_size) for crop in batch],
            "training frames",
        )
        self.layers = torch.from_numpy(layers)
        self.moments = torch.from_numpy(moments)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BEATs features and VAE moments of the crops at `index`."""
        return self.layers[index], self.moments[index]


def train_audiotoken(
    context: MethodContext,
    request: TrainRequest,
    out: Path,
    classification_loss: bool,
    audio_encoder: str = "beats",
    crop_features: Callable | None = None,
) -> Path:
    """Train the embedder. `crop_features(context, crops, frame_size)` may replace the cached
    features by another source of the same batches (the benchmark's recomputing loop)."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler

    config = request.config
    resumed = _resume_point(out, config.steps, context.processes)
    pipeline = context.models.load("sd")
    encoder = context.models.load(audio_encoder)
    samples = load_index(request.data_dir, request.split)
    crops = [
        crop for sample in samples for crop in clip_crops(request.data_dir, [sample])[sample.id]
    ]
    frame_size = training_frame_size(pipeline)
    make = crop_features or partial(
        CropFeatures, batch_size=config.batch_size, audio_encoder=audio_encoder
    )
    cached = make(context, crops, frame_size)
    labels = _label_embeddings(pipeline, [crop.sample.label for crop in crops])

    processes = context.processes
    if config.batch_size % processes.size:
        raise AudiobenchError(
            f"option batch_size {config.batch_size} (the global batch) must be a multiple of the "
            f"{processes.size} processes"
        )
    accelerator = Accelerator(
        mixed_precision=request.mixed_precision, cpu=context.device.type == "cpu"
    )
    for module in (pipeline.unet, pipeline.vae, pipeline.text_encoder):
        module.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed)
        embedder = AudioTokenEmbedder(encoder.feature_dim, pipeline.text_encoder.config.hidden_size)
    optimizer = torch.optim.AdamW(embedder.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)
    start = 0
    if resumed is not None:
        embedder.load_state_dict(resumed.embedder)
        optimizer.load_state_dict(resumed.optimizer)
        start = resumed.step
    embedder, optimizer = accelerator.prepare(embedder, optimizer)
    unwrapped = accelerator.unwrap_model(embedder)
    prompt = AudioTokenPrompt(pipeline.tokenizer, pipeline.text_encoder)
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    scaling = pipeline.vae.config.scaling_factor
    with (
        TrainingLog(out, processes.is_main) as log,
        progress_bar(config.steps, f"training {request.method}") as advance,
    ):
        advance(start)
        for step in range(start, config.steps):
            generator = torch.Generator().manual_seed(step_seed(request.seed, step))
            # Dropout masks are drawn on the device (a CPU draw would cost more than the
            # step), for the whole batch like everything else
            on_device = torch.Generator(accelerator.device)
            on_device.manual_seed(step_seed(request.seed, step))
            embedder.train()
            terms = torch.zeros(4)
            for _ in range(config.grad_accum):
                # The whole batch is drawn in every process; each trains on its share of rows.
                index = torch.randint(len(crops), (config.batch_size,), generator=generator)
                layers, moments = cached.batch(index)
                mean, logvar = moments.chunk(2, dim=1)
                latents = (
                    mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
                ) * scaling
                noise = torch.randn(latents.shape, generator=generator)
                timesteps = torch.randint(
                    scheduler.config.num_train_timesteps,
                    (config.batch_size,),
                    generator=generator,
                )
                masks = unwrapped.draw_dropout_masks(config.batch_size, layers.shape[1], on_device)
                share = slice(processes.rank, None, processes.size)
                index, layers, latents = index[share], layers[share], latents[share]
                noise, timesteps, masks = noise[share], timesteps[share], masks[share]
                with accelerator.autocast():
                    tokens = embedder(layers.to(accelerator.device), masks)
                    embeds = prompt.encode(tokens.to(pipeline.text_encoder.dtype))
                    noisy = scheduler.add_noise(latents, noise, timesteps).to(accelerator.device)
                    predicted = pipeline.unet(
                        noisy.to(pipeline.unet.dtype),
                        timesteps.to(accelerator.device),
                        embeds.to(pipeline.unet.dtype),
                    ).sample
                target = (
                    noise
                    if scheduler.config.prediction_type == "epsilon"
                    else scheduler.get_velocity(latents, noise, timesteps)
                )
                mse = F.mse_loss(predicted.float(), target.to(accelerator.device).float())
                l1 = tokens.float().abs().mean()
                cl = torch.zeros((), device=accelerator.device)
                if classification_loss:
                    cosine = F.cosine_similarity(
                        tokens.float(), labels[index].to(accelerator.device)
                    )
                    cl = (1 - cosine.mean()) ** 2  # the official reduction: square of the mean
                loss = mse + L1_WEIGHT * l1 + CL_WEIGHT * cl
                accelerator.backward(loss / config.grad_accum)
                terms += torch.stack([loss, mse, l1, cl]).detach().cpu() / config.grad_accum
            optimizer.step()
            optimizer.zero_grad()
            log.record(step + 1, torch.stack(processes.gather(terms)).mean(dim=0))
            due = (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps
            if due and processes.is_main:
                _checkpoint(out, step + 1, unwrapped, optimizer)
            advance(1)
    if processes.is_main:
        atomic_write_bytes(out / EMBEDDER_FILE, _tensor_bytes(unwrapped.state_dict()))
    processes.wait()
    return out


class TrainingLog:
    """loss.csv and TensorBoard, written by the main process only (a no-op elsewhere)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.out = out
        self.enabled = enabled

    def __enter__(self) -> TrainingLog:
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.file = open(self.out / "loss.csv", "a", newline="")
            self.rows = csv.writer(self.file)
            self.writer = SummaryWriter(str(self.out / "tensorboard"))
        return self

    def record(self, step: int, terms: torch.Tensor) -> None:
        if not self.enabled:
            return
        self.rows.writerow([step, *(f"{value:.8g}" for value in terms.tolist())])
        self.file.flush()
        for name, value in zip(LOSS_COLUMNS[1:], terms.tolist(), strict=True):
            self.writer.add_scalar(f"train/{name}", value, step)

    def __exit__(self, *exc_info) -> None:
        if self.enabled:
            self.file.close()
            self.writer.close()


def _label_embeddings(pipeline, labels: list[str]) -> torch.Tensor:
    """Mean input embedding of each label's tokens (no start/end tokens): the CL target."""
    table = pipeline.text_encoder.get_input_embeddings().weight.detach().float().cpu()
    means = {}
    for label in set(labels):
        ids = pipeline.tokenizer(label, add_special_tokens=False).input_ids
        means[label] = table[ids].mean(dim=0)
    return torch.stack([means[label] for label in labels])


def _tensor_bytes(state) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def _checkpoint(out: Path, step: int, embedder, optimizer) -> None:
    """Write checkpoints/step-N/ under a temporary name, rename it, keep the last two. state.json
    records the sha256 of both files, so a resume can tell a damaged checkpoint from a good one."""
    folder = out / "checkpoints" / f"step-{step:08d}"
    staging = folder.with_name(f".{folder.name}.tmp")
    for unfinished in folder.parent.glob(".step-*.tmp"):  # of a killed run (only rank 0 writes)
        shutil.rmtree(unfinished)
    staging.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    files = {EMBEDDER_FILE: _tensor_bytes(embedder.state_dict()), OPTIMIZER_FILE: buffer.getvalue()}
    for name, data in files.items():
        atomic_write_bytes(staging / name, data)
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    atomic_write_json(staging / STATE_FILE, {"step": step, "sha256": hashes})
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    for old in sorted((out / "checkpoints").glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose files match their recorded hashes, read (tensors only)."""

    folder: Path
    step: int
    embedder: dict[str, torch.Tensor]
    optimizer: dict[str, Any]


def _resume_point(out: Path, steps: int, processes: Processes) -> Checkpoint | None:
    """The newest readable checkpoint (None: begin at step 0). Read before any model loads, so
    a number of `steps` below it fails at once; then the main process drops what follows it
    (unreadable newer checkpoints, the log's later rows), as an uninterrupted run would not
    have them."""
    saved = sorted((out / "checkpoints").glob("step-*"))
    log = out / "loss.csv"
    checkpoint, unreadable = _newest_readable(saved)
    if checkpoint is not None and checkpoint.step > steps:
        raise AudiobenchError(
            f"checkpoint {checkpoint.folder} is at step {checkpoint.step}; option steps {steps} "
            "is below it"
        )
    processes.wait()  # every process has read before the main one changes the folder
    if processes.is_main:
        for folder, reason in unreadable:
            print(
                f"warning: {reason}; resuming from {checkpoint.folder.name} instead and deleting "
                f"{folder.name}",
                file=sys.stderr,
            )
            shutil.rmtree(folder)
        if checkpoint is None:
            log.write_text(",".join(LOSS_COLUMNS) + "\n")
        else:
            _trim_log(log, checkpoint.step)
    return checkpoint


def _newest_readable(saved: list[Path]) -> tuple[Checkpoint | None, list[tuple[Path, str]]]:
    """The newest checkpoint that reads, and each newer one that did not with the reason. A
    refused one (its pickle asks for code) stops the resume: no training wrote that file."""
    unreadable = []
    for folder in reversed(saved):
        try:
            return _read_checkpoint(folder), unreadable
        except CheckpointRefused:
            raise
        except AudiobenchError as error:
            unreadable.append((folder, str(error)))
    if unreadable:
        reasons = "; ".join(reason for _, reason in unreadable)
        raise AudiobenchError(f"no checkpoint to resume from is readable: {reasons}")
    return None, []


def _read_checkpoint(folder: Path) -> Checkpoint:
    state_file = folder / STATE_FILE
    state = read_json(state_file)
    hashes = state.get("sha256") if isinstance(state, dict) else None
    if not (isinstance(hashes, dict) and isinstance(state.get("step"), int)):
        raise AudiobenchError(f"{state_file} does not record the step and the files' sha256")
    for name in (EMBEDDER_FILE, OPTIMIZER_FILE):
        path = folder / name
        if not path.is_file() or file_sha256(path) != hashes.get(name):
            raise AudiobenchError(
                f"checkpoint {path} is missing or damaged: its sha256 is not the one "
                f"{STATE_FILE} records"
            )
    optimizer = read_checkpoint(folder / OPTIMIZER_FILE)
    if not isinstance(optimizer, dict):
        raise AudiobenchError(f"checkpoint {folder / OPTIMIZER_FILE} is no optimizer state")
    return Checkpoint(folder, state["step"], load_state_dict(folder / EMBEDDER_FILE), optimizer)


def _trim_log(path: Path, step: int) -> None:
    """Keep the header and the whole rows of steps up to `step` (a killed writer may have left
    part of a row)."""
    header, *rows = path.read_text().splitlines()
    kept = [
        row
        for row in rows
        if len(row.split(",")) == len(LOSS_COLUMNS) and int(row.split(",")[0]) <= step
    ]
    atomic_write_bytes(path, ("\n".join([header, *kept]) + "\n").encode())
