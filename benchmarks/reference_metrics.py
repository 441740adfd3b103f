"""Every metric of a run computed the way published scripts do it, independently of audiobench's
pipeline: each image, frame, clip or name through its model alone (no batching, no cache), the
formulas written out (plain loops for win rates and kernels, scipy's matrix square root for
FID). `benchmarks/metrics_bench.py` times audiobench against it; the default test suite checks
that both give the same numbers (`tests/test_metrics_end_to_end.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from audiobench.data import Sample, load_index
from audiobench.store import RunDirectory


@torch.no_grad()  # every encoder, the audio ones included: only embeddings are compared
def reference_scores(
    run_dir: Path, metrics: Sequence[str] = ("ais", "iis", "aic"), profile: str = "tiny"
) -> dict[str, float]:
    """The named metrics of every sample of a run's split (all must have images)."""
    from audiobench.models import LoadOptions, ModelZoo

    zoo = ModelZoo(profile, LoadOptions(torch.device("cpu"), torch.float32))
    samples = load_index(RunDirectory(run_dir).read_run()["dataset"], "test")
    generated = [_rgb(Path(run_dir) / "images" / f"{s.id}.png") for s in samples]
    frames = [_rgb(s.frame_path) for s in samples]
    compute: dict[str, Callable[[], float]] = {
        "ais": lambda: _loop_win_rate(
            [_clip_image(zoo.load("clip_b32"), image) for image in generated],
            [_unit(zoo.load("wav2clip")(_audio(s))[0]) for s in samples],
        ),
        "iis": lambda: _loop_win_rate(*_clip_pairs(zoo.load("clip_l14"), generated, frames)),
        "aic": lambda: _aic(zoo, generated, samples),
        "fid": lambda: _frechet(*_inception_pairs(zoo, generated, frames)),
        "kid": lambda: _kid(*_inception_pairs(zoo, generated, frames)),
        "cmmd": lambda: _cmmd(*_clip_pairs(zoo.load("clip_l14_336"), generated, frames)),
        "sid": lambda: _sid(*_clip_pairs(zoo.load("clip_l14"), generated, frames), samples),
        "ais-ib": lambda: _loop_win_rate(
            [_unit(zoo.load("imagebind_vision").embed_images([image])[0]) for image in generated],
            [_unit(zoo.load("imagebind_audio").embed([_audio(s)[0]])[0]) for s in samples],
        ),
    }
    return {name: compute[name]() for name in metrics}


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _audio(sample: Sample) -> torch.Tensor:
    return torch.from_numpy(sample.read_audio()).unsqueeze(0)


def _unit(vector: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vector.double(), dim=-1)


def _clip_image(encoder, image: Image.Image) -> torch.Tensor:
    return _unit(encoder.model.encode_image(encoder.preprocess(image).unsqueeze(0))[0])


def _clip_pairs(encoder, generated, frames) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [_clip_image(encoder, i) for i in generated], [_clip_image(encoder, f) for f in frames]


def _loop_win_rate(query: list[torch.Tensor], paired: list[torch.Tensor]) -> float:
    """100 x the mean, over i, of the fraction of j != i with cos(q_i, p_i) > cos(q_i, p_j)."""
    wins = []
    for i in range(len(query)):
        own = float(torch.dot(query[i], paired[i]))
        total = 0.0
        for j in range(len(query)):
            if j != i:
                other = float(torch.dot(query[i], paired[j]))
                total += 1.0 if own > other else 0.5 if own == other else 0.0
        wins.append(total / (len(query) - 1))
    return 100 * float(np.mean(wins))


def _aic(zoo, generated: list[Image.Image], samples: list[Sample]) -> float:
    from audiobench.models.classifier import class_names

    classifier, clip = zoo.load("classifier"), zoo.load("clip_l14")
    agree = []
    for image, sample in zip(generated, samples, strict=True):
        name = class_names()[int(classifier.model(classifier.transform(image)[None]).argmax())]
        pair = _unit(clip.model.encode_text(clip.tokenizer([name, sample.label])))
        same = name.strip().lower() == sample.label.strip().lower()
        agree.append(same or float(pair[0] @ pair[1]) > 0.75)
    return 100 * float(np.mean(agree))


def _inception_pairs(zoo, generated, frames) -> tuple[np.ndarray, np.ndarray]:
    extractor = zoo.load("inception").extractor

    def features(image: Image.Image) -> np.ndarray:
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
        return extractor(pixels)[0][0].double().numpy()

    return np.stack([features(i) for i in generated]), np.stack([features(f) for f in frames])


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 sqrtm(S_a S_b)), scipy's square root."""
    from scipy import linalg

    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(sigma_a @ sigma_b).real
    difference = a.mean(0) - b.mean(0)
    return float(difference @ difference + np.trace(sigma_a + sigma_b - 2 * root))


def _kid(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased MMD^2 of a cubic polynomial kernel (a subset of all N rows, as KID has for
    N <= 1000): off-diagonal means within each set, the full mean across."""
    count = len(a)

    def kernel(p, q):
        return (p @ q / a.shape[1] + 1.0) ** 3

    within = sum(
        kernel(a[i], a[j]) + kernel(b[i], b[j])
        for i in range(count)
        for j in range(count)
        if i != j
    )
    across = sum(kernel(a[i], b[j]) for i in range(count) for j in range(count))
    return within / (count * (count - 1)) - 2 * across / count**2


def _cmmd(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """1000 x (mean k(a, a') + mean k(b, b') - 2 mean k(a, b)), Gaussian kernel, sigma 10."""

    def mean_kernel(p, q):
        return np.mean([float(torch.exp(-((x - y) ** 2).sum() / 200.0)) for x in p for y in q])

    return 1000 * (mean_kernel(a, a) + mean_kernel(b, b) - 2 * mean_kernel(a, b))


def _sid(images: list[torch.Tensor], frames: list[torch.Tensor], samples: list[Sample]) -> float:
    """Each image identified as the label whose normalised mean frame embedding is closest."""
    labels = [sample.label for sample in samples]
    prototypes = {
        label: _unit(sum(f for f, owner in zip(frames, labels, strict=True) if owner == label))
        for label in sorted(set(labels))
    }
    correct = [
        max(prototypes, key=lambda label: float(image @ prototypes[label])) == label
        for image, label in zip(images, labels, strict=True)
    ]
    return 100 * float(np.mean(correct))
