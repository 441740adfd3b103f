"""`audiobench verify RUN_DIR`: is this run still what its records say it is?

A run records the sha256 of every image it wrote (`samples.parquet`), a digest of all of them
(`run.json` `images`), the digest of the images its metrics saw (`metrics.json` `images`), and
the weights hash of every model. `verify` recomputes each of these from the files and reports
every difference ("drift"): an image edited, added or deleted after generation; metrics older
than the images; per-sample columns that no longer average to the reported value; weights that
changed. With `recompute`, it also evaluates a copy of the run from scratch and compares every
value and interval with `metrics.json`.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch

from audiobench.concurrency import thread_map
from audiobench.data import dataset_identity, input_hashes, load_index
from audiobench.errors import AudiobenchError
from audiobench.evaluation import DATASET_HASHES, EvaluateSettings, evaluate
from audiobench.metrics.plugin import discover_metrics
from audiobench.models import LoadOptions, ModelZoo
from audiobench.models.zoo import registered_roles
from audiobench.store import RunDirectory, file_sha256, hashes_digest, read_json

METRICS_FILE = "metrics.json"
TOLERANCE = 1e-6  # metric values are written from float64; this only absorbs JSON rounding
CPU = LoadOptions(torch.device("cpu"), torch.float32)


@dataclass(frozen=True)
class Finding:
    """One result of a check: `drift` (records and files disagree) or `note` (not checkable)."""

    kind: str
    subject: str
    message: str


def verify(run_dir: Path, recompute: bool = False) -> list[Finding]:
    """Every disagreement between the run's records and its files (empty: all consistent)."""
    run = RunDirectory(run_dir)
    record, table = run.read_run(), run.read_samples()
    if record is None or table is None:
        raise AudiobenchError(f"{run.path} is not a run directory (no run.json or samples.parquet)")
    current = _image_hashes(run, table)
    findings = _check_images(run, table, current) + _check_run_digest(record, table)
    findings += _check_planted(run)
    dataset = _current_dataset(record)
    findings += _check_dataset("run.json", record, dataset)
    _register_roles(record)
    findings += _check_models("run.json", record.get("models", []))
    metrics_path = run.path / METRICS_FILE
    if metrics_path.is_file():
        metrics = read_json(metrics_path)
        findings += _check_metrics(metrics, table, current)
        findings += _check_evaluated_dataset(metrics.get("dataset"), dataset)
        findings += _check_models(METRICS_FILE, metrics.get("models", []))
        if recompute:
            findings += _recomputed(run, metrics)
    elif recompute:
        findings.append(Finding("note", METRICS_FILE, "the run was never evaluated"))
    return findings


# Folders audiobench never reads from a run, whose presence means someone put them there.
PLANTED = ("features",)


def _check_planted(run: RunDirectory) -> list[Finding]:
    """Feature caches inside a run folder: never written there and never read (features live
    in audiobench's own cache), but a sign that someone tried to decide the metrics."""
    return [
        Finding("drift", name, "a run folder holds no features: these were put there by hand")
        for name in PLANTED
        if (run.path / name).exists() or (run.path / name).is_symlink()
    ]


def _current_dataset(record: dict[str, Any]) -> dict[str, str] | Finding:
    """The hashes of the run's dataset as it is now, or a note saying why they cannot be had."""
    path = record.get("dataset")
    try:
        samples = load_index(Path(str(path)), str(record.get("split")))[: record.get("limit")]
        return dataset_identity(Path(str(path)), input_hashes(samples))
    except AudiobenchError as error:
        return Finding("note", "dataset", f"not checked: {error}")


def _check_dataset(
    source: str, recorded: dict[str, Any], now: dict[str, str] | Finding
) -> list[Finding]:
    """The dataset's index and files against the hashes `source` recorded."""
    if isinstance(now, Finding):
        return [now]
    changed = [key for key in DATASET_HASHES if key in recorded and recorded[key] != now[key]]
    return [
        Finding("drift", "dataset", f"{DATASET_HASHES[key]} changed since {source} was written")
        for key in changed
    ]


def _check_evaluated_dataset(
    evaluated: dict[str, Any] | None, now: dict[str, str] | Finding
) -> list[Finding]:
    if evaluated is None:
        return [Finding("note", METRICS_FILE, "no dataset hashes (an older evaluation)")]
    findings = []
    if evaluated.get("changed_since_run"):
        findings.append(
            Finding(
                "note",
                "dataset",
                "metrics.json was computed on a dataset that had changed since the run "
                "(--allow-dataset-change)",
            )
        )
    if not isinstance(now, Finding):
        findings += _check_dataset(METRICS_FILE, evaluated, now)
    return findings


def _register_roles(record: dict[str, Any]) -> None:
    """Import the run's method and every metric plugin, so the model roles they register (BEATs,
    X-vector, unCLIP, ImageBind, VQGAN) are known and their weights checked, not skipped."""
    from audiobench.registry import discover

    method = discover().get(str(record.get("method")))
    if method is not None:
        # a method that fails to import leaves its roles unknown: each is then noted below
        with contextlib.suppress(AudiobenchError):
            method.load()
    discover_metrics()


def _finished(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.status == "ok"]


def _image_hashes(run: RunDirectory, table: pd.DataFrame) -> dict[str, str | None]:
    """sha256 of every finished sample's image as it is now (None when the file is gone)."""
    ids = list(_finished(table).id)
    paths = [run.image_path(sample_id) for sample_id in ids]
    return dict(zip(ids, thread_map(_hash_or_none, paths), strict=True))


def _hash_or_none(path: Path) -> str | None:
    return file_sha256(path) if path.is_file() else None


def _check_images(
    run: RunDirectory, table: pd.DataFrame, current: dict[str, str | None]
) -> list[Finding]:
    findings = []
    for row in _finished(table).itertuples():
        sample_id = cast(str, row.id)  # pandas-stubs types row fields as any scalar
        now, recorded = current[sample_id], getattr(row, "image_sha256", None)
        if now is None:
            findings.append(Finding("drift", sample_id, "image missing"))
        elif not isinstance(recorded, str):
            findings.append(Finding("note", sample_id, "no recorded hash (an older run)"))
        elif now != recorded:
            findings.append(Finding("drift", sample_id, "image changed since it was generated"))
    known = {f"{sample_id}.png" for sample_id in current}
    for path in sorted(run.images_dir.glob("*.png")):
        if path.name not in known:
            findings.append(Finding("drift", path.name, "image not recorded in samples.parquet"))
    return findings


def _check_run_digest(record: dict[str, Any], table: pd.DataFrame) -> list[Finding]:
    images = record.get("images")
    if images is None:
        return [Finding("note", "run.json", "no image digest: the run has not finished")]
    finished = _finished(table)
    recorded = dict(zip(finished.id, finished.get("image_sha256", []), strict=False))
    if hashes_digest(recorded) != images["sha256"] or len(recorded) != images["count"]:
        return [Finding("drift", "samples.parquet", "image records differ from run.json's digest")]
    return []


def _check_metrics(
    metrics: dict[str, Any], table: pd.DataFrame, current: dict[str, str | None]
) -> list[Finding]:
    excluded = {item["id"] for item in metrics.get("excluded", [])}
    seen = {sample_id: h for sample_id, h in current.items() if sample_id not in excluded}
    hashed = {sample_id: h for sample_id, h in seen.items() if h is not None}
    findings = []
    images = metrics.get("images")
    if images is None:
        findings.append(Finding("note", METRICS_FILE, "no image digest (an older evaluation)"))
    elif len(hashed) < len(seen) or hashes_digest(hashed) != images["sha256"]:
        findings.append(Finding("drift", METRICS_FILE, "images changed after the evaluation"))
    recorded = metrics.get("metrics", {})
    for name, plugin in discover_metrics().items():
        stale = [c for c in plugin.columns if c in table.columns and name not in recorded]
        if stale:
            findings.append(
                Finding(
                    "drift",
                    name,
                    f"samples.parquet has {stale[0]} but metrics.json has no such metric",
                )
            )
    for name, result in recorded.items():
        metric_plugin = discover_metrics().get(name)
        if metric_plugin is None:
            findings.append(Finding("note", name, "metric not known to this install"))
            continue
        column = metric_plugin.score_column
        if column is None:
            continue
        if column not in table.columns:
            findings.append(Finding("drift", name, f"samples.parquet lacks {column}"))
            continue
        values = table[column].dropna().astype(float)
        mean = 100.0 * values.mean() if len(values) else math.nan
        if len(values) != result["n"] or not math.isclose(
            mean, result["value"], rel_tol=TOLERANCE, abs_tol=TOLERANCE
        ):
            findings.append(
                Finding(
                    "drift",
                    name,
                    f"metrics.json says {result['value']:.6f} over {result['n']} samples; "
                    f"samples.parquet's {column} gives {mean:.6f} over {len(values)}",
                )
            )
    return findings


def _check_models(source: str, models: list[dict[str, Any]]) -> list[Finding]:
    findings = []
    zoos: dict[str, ModelZoo] = {}
    for entry in models:
        role, profile = entry["role"], entry["profile"]
        if role not in registered_roles():
            # a role of a plugin not installed here, or a method's own model (AudioToken's
            # random embedder), which only the method can rebuild
            findings.append(Finding("note", role, f"{source}: not a role of this install"))
            continue
        zoo = zoos.setdefault(profile, ModelZoo(profile, CPU))
        try:
            now = zoo.identify(role).sha256
        except AudiobenchError as error:
            findings.append(Finding("note", role, f"{source}: cannot check ({error})"))
            continue
        if now != entry["sha256"]:
            findings.append(Finding("drift", role, f"{source}: weights changed since the run"))
    return findings


def _recomputed(run: RunDirectory, metrics: dict[str, Any]) -> list[Finding]:
    """Evaluate a copy of the run from scratch (no cached embedding at all) and compare (on
    the dataset as it is now: a change since the run is reported on its own)."""
    results = metrics["metrics"]
    recorded = metrics.get("settings", {})
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / run.path.name
        copy.mkdir()
        for name in (RunDirectory.RUN_FILE, RunDirectory.SAMPLES_FILE):
            shutil.copy2(run.path / name, copy / name)
        shutil.copytree(run.images_dir, copy / RunDirectory.IMAGES)
        again = evaluate(
            EvaluateSettings(
                run_dir=copy,
                metrics=tuple(results),
                profile=metrics["profile"],
                pool_size=recorded.get("pool_size"),
                seed=metrics["bootstrap"]["seed"],
                n_resamples=metrics["bootstrap"]["resamples"],
                set_resamples=recorded.get("set_resamples", 100),
                no_cache=True,
                allow_dataset_change=True,
            )
        )
    findings = []
    for name, result in results.items():
        new = again["metrics"][name]
        pairs = [(result["value"], new["value"]), *zip(result["ci95"], new["ci95"], strict=True)]
        if not all(math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE) for a, b in pairs):
            findings.append(
                Finding(
                    "drift",
                    name,
                    f"recomputed {new['value']:.6f} [{new['ci95'][0]:.6f}, {new['ci95'][1]:.6f}]"
                    f", metrics.json says {result['value']:.6f} [{result['ci95'][0]:.6f}, "
                    f"{result['ci95'][1]:.6f}]",
                )
            )
    return findings
