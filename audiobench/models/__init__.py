"""The model zoo: roles, profiles and provenance. Importing this registers the core roles."""

from audiobench.models import sd as _sd  # noqa: F401  (registers the `sd` role)
from audiobench.models.zoo import (
    PROFILES,
    LoadOptions,
    ModelZoo,
    Provenance,
    Role,
    get_role,
    register_role,
    registered_roles,
)

__all__ = [
    "PROFILES",
    "LoadOptions",
    "ModelZoo",
    "Provenance",
    "Role",
    "get_role",
    "register_role",
    "registered_roles",
]
