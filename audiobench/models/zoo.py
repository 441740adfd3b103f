"""Model roles, the three profiles, and where each role's weights come from.

A *role* is a job a model does in the benchmark (`sd` generates, `clip_l14` scores, ...). Each
role knows how to find and load its published weights (`paper` profile), how to build the
published architecture at full size with seeded random weights and no files (`paper-random`:
proves the paper-scale configs, shapes and memory offline; the GPU benchmark times it), and how
to build the same architecture at toy size with seeded random weights (`tiny`, for tests and the
quickstart). `paper-random` builds through the same constructors and published configurations
as `paper` and differs only in not reading weights. Methods and metrics ask the zoo for roles by
name and never touch files directly, so every model that touched a result is recorded with its
source and sha256.

`paper` never falls back to a random profile: a missing role is an error that says how to
obtain it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from audiobench.errors import AudiobenchError, unknown_name
from audiobench.profiles import PROFILES, RANDOM_PROFILES

RANDOM_SEED = 0
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_ROLE_NAME = re.compile(r"[a-z][a-z0-9_]*")
# The published configuration files of the paper's models (sources in configs/README.md): what
# `paper-random` builds from, and what `paper` would read beside the weights.
CONFIGS_DIR = Path(__file__).parent / "configs"
# The activations `torch.nn.init.kaiming_normal_` computes a gain for
Nonlinearity = Literal["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@dataclass(frozen=True)
class LoadOptions:
    """Where a model goes and in which precision."""

    device: torch.device
    dtype: torch.dtype


@dataclass(frozen=True)
class WeightLayout:
    """Where a role's loader finds its tensors, for `models manifest` and `models check --deep`.

    `files` maps each component (the names `modules_of` gives the loaded model: "" for a bare
    module) to candidate file names relative to the located weights folder, or to ("",) when
    the located path is the file itself. Inside a file, `entry` is the dict entry holding the
    state dict (e.g. taming's "state_dict"); `prefixes` keeps only the keys the loader reads;
    `optional` are key prefixes the loader accepts with or without; `ignored` are keys of
    published files that the loader drops; `legacy_prefix` is a prefix that files saved by
    older library versions put before keys and that the loader removes.
    """

    files: dict[str, tuple[str, ...]]
    entry: str | None = None
    prefixes: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    legacy_prefix: str = ""


@dataclass(frozen=True)
class Role:
    """A model role and the recipes that produce it under each profile."""

    name: str
    description: str
    paper_source: str  # what `paper` loads, as a researcher would cite it
    how_to_obtain: str  # one sentence for the "missing weights" error
    locate: Callable[[Sequence[Path]], Path | None]  # paper weights in these dirs or the caches
    load_paper: Callable[[Path, LoadOptions], Any]
    build_paper_random: Callable[[LoadOptions], Any]  # published architecture, random weights
    build_tiny: Callable[[LoadOptions], Any]
    layout: WeightLayout  # what `load_paper` reads from the weight files
    fetch: Callable[[Path], Path] | None = None  # download into a weights dir (needs a network)
    # Input settings its features depend on (image size, normalisation, ...): hashed into the
    # feature cache's names, so a change recomputes every cached feature of the role.
    preprocessing: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Provenance:
    """What a run records about one model it used."""

    role: str
    profile: str
    source: str
    path: str | None
    sha256: str


_ROLES: dict[str, Role] = {}


def register_role(role: Role) -> Role:
    """Add a role to the zoo; plugins call this for roles only they use."""
    if not _ROLE_NAME.fullmatch(role.name):
        raise ValueError(f"role name {role.name!r} must be lowercase letters, digits and _")
    if role.name in _ROLES and _ROLES[role.name] != role:
        raise ValueError(f"role {role.name!r} is registered twice")
    _ROLES[role.name] = role
    return role


def get_role(name: str) -> Role:
    if name not in _ROLES:
        raise unknown_name("model role", name, sorted(_ROLES))
    return _ROLES[name]


def registered_roles() -> dict[str, Role]:
    return dict(_ROLES)


def cache_dir() -> Path:
    """audiobench's own cache (`AUDIOBENCH_CACHE`, default ~/.cache/audiobench)."""
    return Path(os.environ.get("AUDIOBENCH_CACHE", Path.home() / ".cache" / "audiobench"))


def default_weights_dir(weights_dir: Path | None = None) -> Path:
    """The weights directory: `--weights-dir`, else `AUDIOBENCH_WEIGHTS`, else the cache."""
    if weights_dir is not None:
        return Path(weights_dir)
    if os.environ.get("AUDIOBENCH_WEIGHTS"):
        return Path(os.environ["AUDIOBENCH_WEIGHTS"])
    return cache_dir() / "weights"


def diffusers_layout(
    diffusers_models: Sequence[str], transformers_models: Sequence[str]
) -> WeightLayout:
    """The weight files of a diffusers pipeline folder, safetensors first."""
    files: dict[str, tuple[str, ...]] = {
        name: (f"{name}/diffusion_pytorch_model.safetensors", f"{name}/diffusion_pytorch_model.bin")
        for name in diffusers_models
    }
    files |= {
        name: (f"{name}/model.safetensors", f"{name}/pytorch_model.bin")
        for name in transformers_models
    }
    # transformers 4 saved CLIP text encoders under `text_model.`, with their position ids,
    # which transformers 5 drops on loading (and recomputes)
    return WeightLayout(files, ignored=("embeddings.position_ids",), legacy_prefix="text_model.")


class ModelZoo:
    """Resolves roles under one profile, loads each once, and remembers what it loaded."""

    def __init__(self, profile: str, options: LoadOptions, weights_dir: Path | None = None) -> None:
        if profile not in PROFILES:
            raise AudiobenchError(
                f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}"
            )
        self.profile = profile
        self.options = options
        self.weights_dir = default_weights_dir(weights_dir)
        self._loaded: dict[str, Any] = {}
        self._provenance: dict[str, Provenance] = {}

    def locate(self, role_name: str) -> Path | None:
        """Where the paper weights of a role are, or None when they are not on this machine."""
        return get_role(role_name).locate([self.weights_dir])

    def require(self, role_names: Iterable[str]) -> None:
        """Fail once, listing every role whose paper weights are missing and how to get them."""
        if self.profile in RANDOM_PROFILES:
            return
        missing = [get_role(name) for name in role_names if self.locate(name) is None]
        if missing:
            details = "; ".join(f"{role.name}: {role.how_to_obtain}" for role in missing)
            raise AudiobenchError(
                f"missing weights for the paper profile in {self.weights_dir} and the caches: "
                f"{details} (or `audiobench models fetch`; `--profile tiny` runs without weights)"
            )

    def load(self, role_name: str) -> Any:
        """The model for a role (built or loaded once per zoo)."""
        if role_name not in self._loaded:
            role = get_role(role_name)
            if self.profile in RANDOM_PROFILES:
                build = role.build_tiny if self.profile == "tiny" else role.build_paper_random
                model = self.build_random(role.name, lambda: build(self.options), RANDOM_SEED)
            else:
                paper_path = self.identify(role_name).path
                assert paper_path is not None  # `paper` provenance always records the path
                model = role.load_paper(Path(paper_path), self.options)
            self._loaded[role_name] = model
        return self._loaded[role_name]

    def build_random(self, name: str, build: Callable[[], Any], seed: int) -> Any:
        """`build()` run under `seed` (the global generator restored after it), recorded under
        `name` like a role: for the roles of the random profiles and for a method's own random
        stand-in (AudioToken's embedder without a checkpoint), whose seed and weights hash then
        appear in run.json beside the roles'."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build()
        self._provenance[name] = Provenance(
            name, self.profile, f"{self.profile}(seed={seed})", None, state_sha256(model)
        )
        return model

    def identify(self, role_name: str) -> Provenance:
        """Source and weights hash of a role; for `paper` without loading the model."""
        if role_name not in self._provenance:
            if self.profile in RANDOM_PROFILES:
                self.load(role_name)
            else:
                self.require([role_name])
                role, path = get_role(role_name), self.locate(role_name)
                assert path is not None  # require() raised otherwise
                self._provenance[role_name] = Provenance(
                    role.name, "paper", role.paper_source, str(path), files_sha256(path)
                )
        return self._provenance[role_name]

    def fingerprint(self, role_name: str) -> str:
        """`<role>-<first 16 hex of the weights hash>`: names the features a model computed."""
        return f"{role_name}-{self.identify(role_name).sha256[:16]}"

    def provenance(self) -> list[dict[str, Any]]:
        return [asdict(record) for record in self._provenance.values()]


def published_config(name: str) -> dict[str, Any]:
    """A configuration file embedded in the package (`configs/<name>`, JSON or YAML)."""
    text = (CONFIGS_DIR / name).read_text(encoding="utf-8")
    if name.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def modules_of(model: Any) -> list[tuple[str, torch.nn.Module]]:
    """The torch modules inside a model object: itself, or a pipeline's components."""
    if isinstance(model, torch.nn.Module):
        return [("", model)]
    components = getattr(model, "components", {})
    return [(name, part) for name, part in components.items() if isinstance(part, torch.nn.Module)]


def state_sha256(model: Any) -> str:
    """Hash of every parameter and buffer (names, dtypes, shapes, values) in a stable order."""
    digest = hashlib.sha256()
    for prefix, module in modules_of(model):
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().to("cpu").contiguous()
            digest.update(f"{prefix}.{name}:{value.dtype}:{tuple(value.shape)}".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy())  # no copy: 2.3x faster
    return digest.hexdigest()


def files_sha256(path: Path) -> str:
    """sha256 of a weight file, or of all weight files under a folder (paths and contents).

    Hashing gigabytes takes seconds, so each file's hash is cached by its path, size and
    modification time.
    """
    path = Path(path)
    files = (
        [path]
        if path.is_file()
        else sorted(
            file for file in path.rglob("*") if file.is_file() and file.suffix in WEIGHT_SUFFIXES
        )
    )
    if len(files) == 1 and files[0] == path:
        return _cached_file_sha256(path)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path)}:{_cached_file_sha256(file)}\n".encode())
    return digest.hexdigest()


def _cached_file_sha256(file: Path) -> str:
    from audiobench.store import atomic_write_json

    stat = file.stat()
    key = f"{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    cache_file = cache_dir() / "file-hashes.json"
    try:
        known = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
        known[key] = digest.hexdigest()
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache_file, known)
    return known[key]


def huggingface_snapshot(repo_id: str, marker_file: str) -> Path | None:
    """The local snapshot folder of a Hugging Face repo if `marker_file` is in the cache."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, marker_file)
    return Path(cached).parent if isinstance(cached, str) else None


def role_folder(search_dirs: Sequence[Path], role_name: str, marker_file: str) -> Path | None:
    """`<weights dir>/<role>/` if it holds `marker_file`."""
    for directory in search_dirs:
        folder = Path(directory) / role_name
        if (folder / marker_file).is_file():
            return folder
    return None


def weight_file(
    search_dirs: Sequence[Path], role_name: str, file_names: Sequence[str]
) -> Path | None:
    """`<weights dir>/<role>/<name>` for the first of `file_names` present, else None."""
    for directory in search_dirs:
        for name in file_names:
            candidate = Path(directory) / role_name / name
            if candidate.is_file():
                return candidate
    return None


def huggingface_file(repo_id: str, file_names: Sequence[str]) -> Path | None:
    """The cached copy of the first of `file_names` in a Hugging Face repo, else None."""
    from huggingface_hub import try_to_load_from_cache

    for name in file_names:
        cached = try_to_load_from_cache(repo_id, name)
        if isinstance(cached, str):
            return Path(cached)
    return None


def torch_hub_file(file_name: str) -> Path | None:
    """A file that `torch.hub.load_state_dict_from_url` saved in its checkpoints cache."""
    candidate = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    return candidate if candidate.is_file() else None


def download_file(url: str, target: Path, sha256_prefix: str | None = None) -> Path:
    """Download `url` to `target`, resuming an interrupted download, with a progress bar.

    Bytes go to `<target>.part`, which a later call continues with an HTTP range request
    (starting over when the server ignores it). The finished file is checked against the
    published sha256 (or its leading hex digits, as torch.hub names files) where there is one,
    then renamed into place, so `target` only ever holds a whole, verified file.
    """
    import urllib.request

    from audiobench.progress import byte_progress_bar

    target = Path(target)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        resumed = have > 0 and response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length else None
        with (
            open(partial, "ab" if resumed else "wb") as handle,
            byte_progress_bar(total, target.name, have if resumed else 0) as advance,
        ):
            for chunk in iter(lambda: response.read(1 << 20), b""):
                handle.write(chunk)
                advance(len(chunk))
    received = partial.stat().st_size
    if total is not None and received != total:  # the connection dropped: resume next time
        raise AudiobenchError(
            f"{url}: the download stopped at {received} of {total} bytes; run the command "
            f"again to resume from {partial}"
        )
    if sha256_prefix is not None:
        digest = hashlib.sha256()
        with open(partial, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):
                digest.update(chunk)
        if not digest.hexdigest().startswith(sha256_prefix):
            partial.unlink()
            raise AudiobenchError(
                f"{url} downloaded with sha256 {digest.hexdigest()[:16]}..., not the published "
                f"{sha256_prefix}...; the partial file was removed, try again"
            )
    os.replace(partial, target)
    return target


def variance_preserving_init(model: torch.nn.Module, nonlinearity: Nonlinearity = "relu") -> None:
    """Kaiming-normal weights, zero biases, BatchNorm statistics 0 and 1.

    Tiny random networks with some libraries' default initialisations collapse: their outputs
    barely depend on their inputs (a classifier picks the same class for every image, an
    Inception gives constant features), which would make every test on them vacuous.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.Conv1d | torch.nn.Linear):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            if module.running_mean is not None:
                module.running_mean.zero_()
            if module.running_var is not None:
                module.running_var.fill_(1.0)


def silence_pooled_token(*constants: torch.Tensor) -> None:
    """Zero the constant inputs of the token whose output a transformer's embedding is read
    from: a class token and its position embedding, or a text tower's end-of-text embedding.

    That token enters every input as the same vector. Trained attention fills it with the
    input's content; random attention barely does, so its own constant dominates its output and
    the embeddings of different inputs nearly coincide (the tiny CLIP ViT-B/32 gave a pairwise
    cosine of 0.99 between different real frames, so AIS ranked every method's images alike).
    Starting at zero, the token carries only what attention gathers from the other tokens.
    """
    with torch.no_grad():
        for constant in constants:
            constant.zero_()


def build_unloaded(
    module_class: type[torch.nn.Module],
    placeholder: dict,
    build: Callable[[type, str], torch.nn.Module],
) -> torch.nn.Module:
    """A model whose constructor only takes its weights from a file (torch-fidelity's
    Inception, speechbrain's BEATs), built with its own random initialisation.

    `build(cls, path)` constructs (and may re-initialise) the model from a placeholder file
    holding `placeholder` (the configuration such a file carries, no weights); `cls` ignores the
    empty state dict the constructor then loads. Works on the meta device too.
    """

    # a base class chosen at run time, which mypy cannot check statically
    unloaded_base: Any = module_class

    class Unloaded(unloaded_base):
        def load_state_dict(self, state_dict, *args, **kwargs):
            if not state_dict:  # the placeholder's: keep the fresh initialisation
                return None
            return super().load_state_dict(state_dict, *args, **kwargs)

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".placeholder-{os.getpid()}-{module_class.__name__}.pt"
    torch.save(placeholder, staging)
    try:
        return build(Unloaded, str(staging))
    finally:
        staging.unlink()


def tiny_checkpoint(
    name: str,
    module_class: type[torch.nn.Module],
    placeholder: dict,
    build: Callable[[type, str], torch.nn.Module],
    content: Callable[[torch.nn.Module], dict],
) -> Path:
    """Write once, into the cache, the seeded random weights of a model built by
    `build_unloaded`; `content(model)` is what the checkpoint file holds."""
    from audiobench.store import atomic_write_bytes

    target = cache_dir() / name
    if target.is_file():
        return target
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = build_unloaded(module_class, placeholder, build)
    buffer = io.BytesIO()
    torch.save(content(model), buffer)
    atomic_write_bytes(target, buffer.getvalue())
    return target
