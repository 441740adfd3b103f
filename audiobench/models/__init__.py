"""The model zoo: roles, profiles and provenance. Importing this registers the core roles."""

from audiobench.models import classifier as _classifier  # noqa: F401  (modules register roles)
from audiobench.models import clip as _clip  # noqa: F401
from audiobench.models import imagebind as _imagebind  # noqa: F401
from audiobench.models import inception as _inception  # noqa: F401
from audiobench.models import sd as _sd  # noqa: F401
from audiobench.models import wav2clip as _wav2clip  # noqa: F401
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
