"""Which roles the registered methods need, and whether their weights are here.

Backs `audiobench models check` and `audiobench models fetch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from audiobench.models.zoo import LoadOptions, ModelZoo, Role, get_role, registered_roles
from audiobench.registry import discover


@dataclass(frozen=True)
class RoleStatus:
    role: Role
    used_by: tuple[str, ...]
    location: str | None  # None: missing


def roles_in_use() -> dict[str, list[str]]:
    """Role name -> the methods and metrics that use it (importing methods registers roles)."""
    from audiobench.metrics.plugin import discover_metrics

    users: dict[str, list[str]] = {name: [] for name in registered_roles()}
    for name, info in discover().items():
        for role in info.load().roles:
            users.setdefault(role, []).append(name)
    for metric in discover_metrics().values():
        for role in sorted(metric.roles()):
            users.setdefault(role, []).append(metric.label)
    return users


def role_status(profile: str, weights_dir: Path | None) -> list[RoleStatus]:
    zoo = ModelZoo(profile, LoadOptions(torch.device("cpu"), torch.float32), weights_dir)
    statuses = []
    for name, users in sorted(roles_in_use().items()):
        role = get_role(name)
        location: str | None
        if profile == "tiny":
            location = "built in (seeded random weights)"
        else:
            found = zoo.locate(name)
            location = str(found) if found else None
        statuses.append(RoleStatus(role, tuple(users), location))
    return statuses


@dataclass(frozen=True)
class FetchOutcome:
    """What `models fetch` did for one role: `status` is "done", "failed" or "by hand"."""

    role: str
    status: str
    detail: str  # where the weights are, why the download failed, or how to obtain them


def fetch_roles(names: list[str] | None, weights_dir: Path | None) -> Iterator[FetchOutcome]:
    """Download paper weights for the named roles (default: all in use) into the weights dir.

    Every role is tried: a failed download is reported and the next role goes on. Roles whose
    weights are already found are not downloaded again.
    """
    zoo = ModelZoo("paper", LoadOptions(torch.device("cpu"), torch.float32), weights_dir)
    for name in names or sorted(roles_in_use()):
        role = get_role(name)
        found = zoo.locate(name)
        if found is not None:
            yield FetchOutcome(name, "done", f"already here: {found}")
        elif role.fetch is None:
            yield FetchOutcome(name, "by hand", role.how_to_obtain)
        else:
            try:
                yield FetchOutcome(name, "done", str(role.fetch(zoo.weights_dir)))
            except Exception as error:  # network, HTTP, disk and hub errors all end up here
                yield FetchOutcome(name, "failed", _one_line(error))


def _one_line(error: Exception) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"
