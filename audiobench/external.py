"""`audiobench evaluate --images DIR`: images made anywhere become a run directory.

The folder holds `<sample_id>.png` or `.jpg` for the samples of one dataset split. Each image is
checked, stored in the run as PNG (PNG bytes are kept as they are; JPEG pixels are decoded once
and stored losslessly) and recorded with the sha256 of the stored file and of its source. A
sample without an image, or with an unreadable one, is a failed sample with the reason, so
`evaluate` excludes and lists it; images that match no sample are reported in run.json. The run's
method is `external:NAME`, so `report`, `leaderboard`, `verify` and `human-eval export` treat
it like any other run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from audiobench import __version__
from audiobench.data import (
    Sample,
    dataset_identity,
    index_sha256,
    input_hashes,
    load_index,
    read_frame,
)
from audiobench.environment import package_versions
from audiobench.errors import AudiobenchError, SampleError
from audiobench.runner import SAMPLE_COLUMNS, recorded_images
from audiobench.scoring import IMAGE_SUFFIXES
from audiobench.store import RunDirectory, atomic_write_bytes, exclusive_lock, png_bytes

EXTERNAL_PREFIX = "external:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RUN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ImportSummary:
    run_dir: Path
    imported: int
    missing: list[str]  # sample ids without an image
    unreadable: list[str]  # sample ids whose image could not be decoded
    unmatched: list[str]  # image files that match no sample of the split


def import_images(
    images_dir: Path, data_dir: Path, split: str, out: Path, name: str | None, profile: str
) -> ImportSummary:
    """Write (or rewrite) the run directory of a folder of externally generated images."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise AudiobenchError(f"image folder {images_dir} does not exist")
    name = name or images_dir.resolve().name
    if not _NAME.fullmatch(name):
        raise AudiobenchError(
            f"--name {name!r} must be 1-64 letters, digits, '.', '_' or '-' (starting with a "
            "letter or digit)"
        )
    samples = load_index(data_dir, split)
    files, unmatched = _images_by_id(images_dir, {sample.id for sample in samples})
    run = RunDirectory(Path(out) / f"external-{name}-{split}")
    run.create()
    with exclusive_lock(run.path):
        _check_same_source(run, images_dir, data_dir)
        for stale in run.images_dir.glob("*.png"):
            stale.unlink()
        rows = [_import_one(run, sample, files.get(sample.id), images_dir) for sample in samples]
        run.write_samples(pd.DataFrame(rows).astype({"seed": "int64", "seconds": "float64"}))
        record = _record(name, images_dir, split, profile, unmatched, run)
        identity = dataset_identity(data_dir, input_hashes(samples))
        run.write_run({**record, "dataset": str(Path(data_dir).resolve()), **identity})
    failed = [row for row in rows if row["status"] == "failed"]
    return ImportSummary(
        run.path,
        len(rows) - len(failed),
        [row["id"] for row in failed if row["id"] not in files],
        [row["id"] for row in failed if row["id"] in files],
        unmatched,
    )


def _images_by_id(folder: Path, ids: set[str]) -> tuple[dict[str, Path], list[str]]:
    """Each sample's image file (PNG preferred to JPEG), and the image files matching no
    sample. Symbolic links are never followed: they count as unmatched."""
    files: dict[str, Path] = {}
    unmatched = []
    for path in sorted(folder.iterdir(), key=lambda p: (p.suffix.lower() != ".png", p.name)):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.is_symlink() or not path.is_file() or path.stem not in ids or path.stem in files:
            unmatched.append(path.name)
        else:
            files[path.stem] = path
    return files, sorted(unmatched)


def _import_one(
    run: RunDirectory, sample: Sample, source: Path | None, folder: Path
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SAMPLE_COLUMNS)
    row.update(id=sample.id, label=sample.label, seed=0, source_sha256=None)
    if source is None:
        return {**row, "status": "failed", "error": f"no {sample.id}.png or .jpg in {folder}"}
    data = source.read_bytes()
    source_sha256 = hashlib.sha256(data).hexdigest()
    try:
        image = read_frame(source)
    except SampleError as error:
        return {**row, "status": "failed", "error": str(error)}
    if source.suffix.lower() != ".png":
        data = png_bytes(image)
    target = run.image_path(sample.id)
    atomic_write_bytes(target, data)
    return {
        **row,
        "status": "ok",
        "image": str(target.relative_to(run.path)),
        "image_sha256": hashlib.sha256(data).hexdigest(),
        "source_sha256": source_sha256,
    }


def _check_same_source(run: RunDirectory, images_dir: Path, data_dir: Path) -> None:
    previous = run.read_run()
    if previous is None:
        return
    same = previous.get("method_config", {}).get("source") == str(images_dir.resolve()) and (
        previous.get("dataset_sha256") == index_sha256(data_dir)
    )
    if not same:
        raise AudiobenchError(
            f"{run.path} holds images imported from another folder or dataset; use another "
            "--name or --out to keep both, or delete it"
        )


def _record(
    name: str,
    images_dir: Path,
    split: str,
    profile: str,
    unmatched: list[str],
    run: RunDirectory,
) -> dict[str, Any]:
    return {
        "schema_version": RUN_SCHEMA_VERSION,
        "method": f"{EXTERNAL_PREFIX}{name}",
        "name": name,
        "method_config": {"source": str(images_dir.resolve())},
        "split": split,
        "limit": None,
        "profile": profile,
        "seed": 0,
        "checkpoint": None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unmatched_images": unmatched,
        "audiobench_version": __version__,
        "versions": package_versions(),
        "models": [],
        "images": recorded_images(run),
    }
