"""All writing to disk goes through here: atomic files, the run directory and its lock.

Every file is written under a temporary name in its final directory and renamed into place, so a
process killed at any instant leaves either the old file or the new one, never half of one.
Errors are never swallowed: a run that cannot write its results stops and says so.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import socket
import stat
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from audiobench.errors import AudiobenchError

TEMP_MARK = ".tmp-"
# Ids become file names (images/<id>.png), so they may not hold path separators or start with a
# dot: no id can name a file outside its directory ("..", "/etc/x", "a/../../b").
SAMPLE_ID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers only ever see the complete file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}{TEMP_MARK}{socket.gethostname()}-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise AudiobenchError(f"cannot write {path}: {error.strerror or error}") from error


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write indented, key-sorted JSON atomically (sorted keys keep files diffable)."""
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(path: Path, table: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


def png_bytes(image: Image.Image) -> bytes:
    """Encode as PNG without metadata, so the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float audio as 16-bit PCM WAV (deterministic bytes)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files that killed processes of this machine left in `directory` (not
    recursive). A file of a live process (another evaluation sharing a cache, another process of
    a launch) or of another machine is left alone: it may be about to be renamed into place."""
    host = socket.gethostname()
    for leftover in Path(directory).glob(f".*{TEMP_MARK}*"):
        writer_host, _, pid = leftover.name.rpartition(TEMP_MARK)[2].rpartition("-")
        if writer_host == host and pid.isdigit() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def make_directory(path: Path) -> Path:
    """Create `path` (and parents) or fail with one line naming it.

    Temporaries that killed writers left in an existing `path` are removed, so every job that
    writes into a folder resumes from a clean one."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AudiobenchError(
            f"cannot create directory {path}: {error.strerror or error}"
        ) from error
    if not os.access(path, os.W_OK):
        raise AudiobenchError(f"directory {path} is not writable")
    remove_stale_temporaries(path)
    return path


@contextmanager
def exclusive_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` for the duration of the block.

    The lock is an flock on `directory/.lock`: the kernel releases it when the holder dies, so a
    killed run never leaves a stale lock, while a second live process gets a clear error. A
    `.lock` that is a symbolic link or not a regular file (a folder from someone else may hold
    anything) is refused, never opened through: writing the pid must not touch another file.
    """
    path = Path(directory) / ".lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as error:
        raise AudiobenchError(
            f"{path} is a symbolic link or cannot be opened ({error.strerror}); delete it"
        ) from error
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise AudiobenchError(f"{path} is not a regular file; delete it")
    with open(descriptor, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise AudiobenchError(
                f"{directory} is in use by another audiobench process (pid {holder}); "
                "wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def read_json(path: Path) -> Any:
    """Read a JSON file written by audiobench, failing with a message that names it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise AudiobenchError(f"{path} does not exist") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AudiobenchError(f"{path} is not valid JSON: {error}") from error


def read_inside(path: Path, folder: Path) -> bytes:
    """The bytes of `path`, a regular file that lies inside `folder` (which need not be where the
    path starts: only where it ends up counts).

    Run folders and datasets come from strangers, and what is read from them may be handed on
    (human-eval sheets embed or copy their images), so a symbolic link named like an image could
    publish /etc/passwd or a key. The file itself may not be a link (opened with O_NOFOLLOW, so
    it cannot become one after the check), a linked folder on the way may not lead out of
    `folder`, and a FIFO or device is refused before it is read (O_NONBLOCK: opening never
    waits). Links that stay inside `folder` are fine: they can only show what it already holds.
    """
    path, folder = Path(path), Path(folder)
    if path.is_symlink():
        raise AudiobenchError(f"{path} is a symbolic link; refusing to read through it")
    if not path.resolve().is_relative_to(folder.resolve()):
        raise AudiobenchError(f"{path} leads outside {folder}")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise AudiobenchError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise AudiobenchError(f"{path} is not a regular file")
        with open(descriptor, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(descriptor)


class RunDirectory:
    """The files of one run: `run.json`, `samples.parquet`, `images/<sample_id>.png`."""

    RUN_FILE = "run.json"
    SAMPLES_FILE = "samples.parquet"
    IMAGES = "images"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def run_file(self) -> Path:
        return self.path / self.RUN_FILE

    @property
    def samples_file(self) -> Path:
        return self.path / self.SAMPLES_FILE

    @property
    def images_dir(self) -> Path:
        return self.path / self.IMAGES

    def image_path(self, sample_id: str) -> Path:
        """The image of a sample. Ids come from files a user can edit (samples.parquet, the
        index), so one that is not a plain file name is refused: no read or write through it
        can leave the run directory."""
        if not SAMPLE_ID.fullmatch(str(sample_id)):
            raise AudiobenchError(
                f"{self.path}: sample id {sample_id!r} is not usable as a file name"
            )
        return self.images_dir / f"{sample_id}.png"

    def create(self) -> None:
        make_directory(self.path)
        make_directory(self.images_dir)

    def read_run(self) -> dict[str, Any] | None:
        return read_json(self.run_file) if self.run_file.exists() else None

    def write_run(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.run_file, record)

    def read_samples(self) -> pd.DataFrame | None:
        if not self.samples_file.exists():
            return None
        try:
            return pd.read_parquet(self.samples_file)
        except Exception as error:  # pyarrow raises several unrelated types for a damaged file
            raise AudiobenchError(f"{self.samples_file} is unreadable: {error}") from error

    def write_samples(self, table: pd.DataFrame) -> None:
        atomic_write_parquet(self.samples_file, table)

    def part_file(self, rank: int) -> Path:
        """Where process `rank` of a multi-process run records its samples until the merge."""
        return self.path / f"samples.part-{rank}.parquet"

    def part_files(self) -> list[Path]:
        return sorted(self.path.glob("samples.part-*.parquet"))

    def read_parts(self) -> list[pd.DataFrame]:
        """The sample records of a multi-process run not yet merged into samples.parquet."""
        parts = []
        for path in self.part_files():
            try:
                parts.append(pd.read_parquet(path))
            except Exception as error:  # pyarrow raises several unrelated types
                raise AudiobenchError(f"{path} is unreadable: {error}") from error
        return parts

    def write_image(self, sample_id: str, image: Image.Image) -> tuple[str, str]:
        """Save one generated image atomically; returns its path relative to the run and the
        sha256 of its bytes (recorded, so `audiobench verify` can detect later changes)."""
        path = self.image_path(sample_id)
        data = png_bytes(image)
        atomic_write_bytes(path, data)
        return str(path.relative_to(self.path)), hashlib.sha256(data).hexdigest()


class FeatureCache:
    """Embeddings of one model, keyed by the content hash of their input, kept on disk.

    Each computed batch is one shard file (`<folder>/<model_key>/<shard>.npz`, written
    atomically), so an interrupted evaluation keeps what it finished and nothing is ever
    rewritten. A shard that fails to load is deleted and its embeddings computed again, never
    trusted. Keys include the model's weights hash, so new weights never meet old features.
    """

    def __init__(self, folder: Path, model_key: str) -> None:
        self.folder = Path(folder) / model_key
        self._known: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._known is None:
            self._known = {}
            if self.folder.is_dir():
                remove_stale_temporaries(self.folder)
            for shard in sorted(self.folder.glob("*.npz")):
                try:
                    with np.load(shard, allow_pickle=False) as content:
                        keys, values = content["keys"], content["values"]
                    if len(keys) != len(values):
                        raise ValueError("keys and values differ in length")
                except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
                    warnings.warn(
                        f"discarding corrupt feature cache {shard}: {error}", stacklevel=2
                    )
                    shard.unlink(missing_ok=True)
                    continue
                for key, value in zip(keys.tolist(), values, strict=True):
                    self._known.setdefault(key, value)  # as `put`: the first stored stays
        return self._known

    def missing(self, keys: list[str]) -> list[str]:
        known = self._load()
        return [key for key in dict.fromkeys(keys) if key not in known]

    def put(self, keys: list[str], values: np.ndarray) -> None:
        """Store the embeddings of keys not cached yet; a cached one is never replaced (another
        batching of the same input differs in float rounding, and the cache is shared by every
        run, so an evaluation must not change what an earlier one read)."""
        known = self._load()
        fresh = [index for index, key in enumerate(keys) if key not in known]
        if not fresh:
            return
        keys, values = [keys[index] for index in fresh], np.asarray(values)[fresh]
        make_directory(self.folder)
        shard = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys), values=np.asarray(values))
        atomic_write_bytes(self.folder / f"{shard}.npz", buffer.getvalue())
        self._load().update(zip(keys, np.asarray(values), strict=True))

    def get(self, keys: list[str]) -> np.ndarray:
        known = self._load()
        return np.stack([known[key] for key in keys])


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hashes_digest(hashes: dict[str, str]) -> str:
    """One sha256 for a set of files, from {sample id: sha256}, independent of order (a run's
    images, the inputs of its samples)."""
    lines = "".join(f"{sample_id} {digest}\n" for sample_id, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()
