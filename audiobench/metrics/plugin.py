"""Metrics are plugins: `Metric` subclasses found through the `audiobench.metrics` entry points.

A pip-installable package adds a metric by declaring, in its pyproject.toml,

    [project.entry-points."audiobench.metrics"]
    my-metric = "my_package.module:MyMetric"

audiobench's own metrics register the same way, so `evaluate`, `report`, `verify`, the
leaderboard and `models check` know a metric only through its class: its inputs, direction,
per-sample columns and `compute`. A plugin that fails to import is skipped with a warning naming
it; every other metric keeps working.
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar

import numpy as np
import torch

from audiobench.errors import AudiobenchError, unknown_name
from audiobench.features import FeatureKind
from audiobench.metrics.scores import bootstrap_ci, win_rate

ENTRY_POINT_GROUP = "audiobench.metrics"
SOURCES = ("generated", "frames", "audio", "labels")
_METRIC_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class ScoreSettings:
    """How values and intervals are computed, shared by every metric of one evaluation."""

    seed: int = 0
    n_resamples: int = 1000  # bootstrap resamples of per-sample means
    set_resamples: int = 100  # bootstrap resamples of whole-set metrics (each a full recompute)
    pool_size: int | None = None  # win rates against a fixed random pool of this many samples


@dataclass
class MetricInputs:
    """What a metric computes from: one row per evaluated sample in every array and list.

    `features[source, kind]` holds the embeddings the metric declared; `labels` the samples'
    class names (None when the caller gave none); `embed_texts(kind, texts)` embeds arbitrary
    names (the AIC match of predicted and true class names). With `paired` false the frames
    are a separate image set (`audiobench distance`), possibly of another size, and only
    metrics of whole sets apply; `reference` says what the frames are, for the records.
    """

    ids: list[str]
    features: dict[tuple[str, FeatureKind], np.ndarray]
    labels: list[str] | None
    embed_texts: Callable[[FeatureKind, list[str]], np.ndarray]
    paired: bool = True
    reference: str = "the reference frames of the same samples"

    def __len__(self) -> int:
        return len(self.ids)

    def tensor(self, source: str, kind: FeatureKind) -> torch.Tensor:
        return torch.from_numpy(self.features[source, kind])


@dataclass
class MetricResult:
    """One metric's outcome: `per_sample` maps each declared column to one value per sample."""

    value: float
    n: int
    ci95: tuple[float, float]
    config: dict[str, Any]
    per_sample: dict[str, Sequence[Any] | np.ndarray] = field(default_factory=dict)

    def record(self, metric: type[Metric]) -> dict[str, Any]:
        """The metric's entry in metrics.json."""
        return {
            "value": float(self.value),
            "n": int(self.n),
            "ci95": [float(self.ci95[0]), float(self.ci95[1])],
            "config": self.config,
            "higher_is_better": metric.higher_is_better,
        }


class Metric(ABC):
    """A metric of generated images.

    Subclasses set `description` (one line), `label` (the column header), `higher_is_better`,
    `inputs` ({source: feature kinds}; sources are "generated", "frames" (the reference frames),
    "audio" (the evaluation windows) and "labels"; a kind under "labels" is the text model that
    embeds class names), `columns` (the per-sample columns written into samples.parquet; none
    for metrics of whole image sets), `score_column` (the column whose mean x 100 is the value,
    which `verify` checks and per-class tables average), `paper_column` (its position among
    Table 1's columns, for the metrics evaluated and reported by default), `decimals` and
    `min_samples` (the fewest samples for a value worth comparing; reports flag values from
    fewer; None: no minimum).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    label: ClassVar[str]
    higher_is_better: ClassVar[bool]
    inputs: ClassVar[dict[str, tuple[FeatureKind, ...]]]
    columns: ClassVar[tuple[str, ...]] = ()
    score_column: ClassVar[str | None] = None
    paper_column: ClassVar[int | None] = None
    decimals: ClassVar[int] = 2
    min_samples: ClassVar[int | None] = None

    @abstractmethod
    def compute(self, inputs: MetricInputs, settings: ScoreSettings) -> MetricResult:
        """The value, N, 95% interval, per-sample values and configuration."""

    @classmethod
    def roles(cls) -> set[str]:
        return {kind.role for kinds in cls.inputs.values() for kind in kinds}

    @classmethod
    def compares_with_frames(cls) -> bool:
        """Whether the reference frames are its yardstick: then it means nothing for the frames
        themselves (the `reference` row of a report shows a dash)."""
        return "frames" in cls.inputs


@cache
def discover_metrics() -> dict[str, type[Metric]]:
    """Every metric declared through entry points, by name; broken plugins are warned about."""
    found: dict[str, type[Metric]] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        source = entry_point.dist.name if entry_point.dist is not None else "unknown distribution"
        try:
            metric = entry_point.load()
            _check(entry_point.name, metric)
        except Exception as error:  # a third-party plugin can fail in any way while importing
            warnings.warn(
                f"metric {entry_point.name!r} from {source} ({entry_point.value}) is skipped: "
                f"{error}",
                stacklevel=2,
            )
            continue
        found[entry_point.name] = metric
    return dict(sorted(found.items()))


def _check(name: str, metric: Any) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise AudiobenchError("the name must be lowercase letters, digits and single hyphens")
    if not (isinstance(metric, type) and issubclass(metric, Metric)):
        raise AudiobenchError("not a subclass of audiobench.metrics.Metric")
    if getattr(metric, "name", None) != name:
        raise AudiobenchError(f"its class is named {getattr(metric, 'name', None)!r}")
    unknown = set(metric.inputs) - set(SOURCES)
    if unknown:
        raise AudiobenchError(f"unknown input sources {sorted(unknown)}; use {SOURCES}")


def get_metric(name: str) -> type[Metric]:
    """The class of a registered metric, or an error listing the known ones."""
    metrics = discover_metrics()
    if name not in metrics:
        raise unknown_name("metric", name, list(metrics))
    return metrics[name]


def default_metrics() -> tuple[str, ...]:
    """The paper's Table 1 metrics in its column order: evaluated and reported by default."""
    positions = [
        (metric.paper_column, metric.name)
        for metric in discover_metrics().values()
        if metric.paper_column is not None
    ]
    return tuple(name for _, name in sorted(positions, key=lambda position: position[0]))


def set_metrics() -> tuple[str, ...]:
    """Metrics of two whole image sets (FID, KID, CMMD, ...): `audiobench distance`'s default."""
    return tuple(
        name
        for name, metric in discover_metrics().items()
        if not metric.columns and set(metric.inputs) == {"generated", "frames"}
    )


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """A comma-separated metric list (None or "": the defaults; "all": every metric), checked."""
    if not text:
        return default_metrics()
    if text.strip() == "all":
        return tuple(discover_metrics())
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    for name in names:
        get_metric(name)
    return names


def ordered(names: Sequence[str]) -> list[str]:
    """Metric names in report order: Table 1's columns first, then the others by name."""

    def position(name: str) -> tuple[int, str]:
        metrics = discover_metrics()
        column = metrics[name].paper_column if name in metrics else None
        return (column if column is not None else 1_000, name)

    return sorted(names, key=position)


def label_of(name: str) -> str:
    """A metric's column header; the name upper-cased when its plugin is not installed."""
    metric = discover_metrics().get(name)
    return metric.label if metric is not None else name.upper()


def min_samples_of(name: str) -> int | None:
    """A metric's `min_samples`: None when it declares none or its plugin is not installed."""
    metric = discover_metrics().get(name)
    return metric.min_samples if metric is not None else None


def mean_result(per_sample: np.ndarray, settings: ScoreSettings, config: dict) -> MetricResult:
    """A metric that is the mean of per-sample values, in percent, with a bootstrap interval."""
    low, high = bootstrap_ci(per_sample, settings.n_resamples, settings.seed)
    return MetricResult(
        100.0 * float(per_sample.mean()), int(per_sample.size), (100.0 * low, 100.0 * high), config
    )


def set_bootstrap_ci(
    statistic: Callable[[torch.Tensor, torch.Tensor], float],
    set_a: torch.Tensor,
    set_b: torch.Tensor,
    inputs: MetricInputs,
    settings: ScoreSettings,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric of two whole sets (FID, KID, CMMD).

    Paired sets (a generated image and its own reference frame) are resampled by sample, rows
    together; unpaired sets are resampled independently.
    """
    generator = np.random.default_rng(settings.seed)
    values = []
    for _ in range(settings.set_resamples):
        rows_a = generator.integers(0, len(set_a), size=len(set_a))
        rows_b = rows_a if inputs.paired else generator.integers(0, len(set_b), size=len(set_b))
        values.append(statistic(set_a[rows_a], set_b[rows_b]))
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


class WinRate(Metric):
    """A retrieval win rate (AIS, IIS, AIS-IB): is each generated image closer to its own
    sample's other input (audio window or reference frame) than to the other samples'? Subclasses
    declare `inputs` ({"generated": (kind,), <source>: (kind,)}), `columns` (one: the per-sample
    wins) and `notes` (extra configuration to record)."""

    higher_is_better = True
    notes: ClassVar[dict[str, Any]] = {}

    def compute(self, inputs: MetricInputs, settings: ScoreSettings) -> MetricResult:
        [image] = self.inputs["generated"]
        [(source, (other,))] = [item for item in self.inputs.items() if item[0] != "generated"]
        config = {"image_role": image.role, f"{source}_role": other.role, **self.notes}
        query, paired = inputs.tensor("generated", image), inputs.tensor(source, other)
        result, wins = _win_rate_result(query, paired, settings, config)
        result.per_sample = {self.columns[0]: wins}
        return result


class SetDistance(Metric):
    """A distance between the generated images and the reference frames as two whole sets (FID,
    KID, CMMD), on one kind of feature, with a bootstrap interval. Subclasses declare `kind`,
    `distance(a, b)` and `details(a, b)` (their configuration)."""

    higher_is_better = False
    kind: ClassVar[FeatureKind]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.inputs = {"generated": (cls.kind,), "frames": (cls.kind,)}

    @abstractmethod
    def distance(self, set_a: torch.Tensor, set_b: torch.Tensor) -> float:
        """The metric of two (N, D) feature sets."""

    @abstractmethod
    def details(self, set_a: torch.Tensor, set_b: torch.Tensor) -> dict[str, Any]:
        """What the metric computed, for metrics.json."""

    def resampled_distance(self, set_a: torch.Tensor, set_b: torch.Tensor) -> float:
        """The metric of one bootstrap resample: `distance`, or an exact faster equivalent."""
        return self.distance(set_a, set_b)

    def compute(self, inputs: MetricInputs, settings: ScoreSettings) -> MetricResult:
        generated = inputs.tensor("generated", self.kind)
        reference = inputs.tensor("frames", self.kind)
        interval = set_bootstrap_ci(self.resampled_distance, generated, reference, inputs, settings)
        config = {
            **self.details(generated, reference),
            "reference": inputs.reference,
            "bootstrap_resamples": settings.set_resamples,
        }
        return MetricResult(self.distance(generated, reference), len(generated), interval, config)


def _win_rate_result(
    query: torch.Tensor, paired: torch.Tensor, settings: ScoreSettings, config: dict
) -> tuple[MetricResult, np.ndarray]:
    """A retrieval win rate over the configured pool, and the per-sample wins."""
    count = len(query)
    pool: torch.Tensor | None
    pool_config: str | dict[str, int]
    if settings.pool_size is None or settings.pool_size >= count:
        pool, pool_config = None, "all other samples"
    else:
        rows = np.random.default_rng(settings.seed).choice(count, settings.pool_size, False)
        pool, pool_config = (
            torch.from_numpy(np.sort(rows)),
            {
                "size": settings.pool_size,
                "seed": settings.seed,
            },
        )
    _, wins = win_rate(query, paired, pool)
    return mean_result(wins, settings, {**config, "pool": pool_config}), wins
