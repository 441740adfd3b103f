"""The `inception` role: torch-fidelity's `inception-v3-compat`, the feature extractor of FID.

FID is computed by torch-fidelity itself, so the numbers equal its own. The feature extractor
takes its weights only from a file (or downloads them), so `tiny` writes seeded random weights
to a file once, with a variance-preserving initialisation: PyTorch's default init makes this
network's 2048-d features constant to 1e-10, which would make every FID about 0 and every test
on it vacuous.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch

from audiobench.models.checkpoints import load_state_dict
from audiobench.models.zoo import (
    TINY_SEED,
    LoadOptions,
    Role,
    cache_dir,
    download_file,
    register_role,
    torch_hub_file,
    variance_preserving_init,
    weight_file,
)
from audiobench.store import atomic_write_bytes

FEATURE_EXTRACTOR = "inception-v3-compat"
FEATURE_LAYER = "2048"
CHECKPOINT = "weights-inception-2015-12-05-6726825d.pth"
URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{CHECKPOINT}"


class InceptionFeatures:
    """torch-fidelity's extractor with the weights file it was built from (FID needs the path)."""

    def __init__(self, weights_path: Path, options: LoadOptions) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        load_state_dict(weights_path)  # refuses pickled code before torch-fidelity's own load
        self.weights_path = Path(weights_path)
        self.device = options.device
        extractor = FeatureExtractorInceptionV3(
            FEATURE_EXTRACTOR, [FEATURE_LAYER], feature_extractor_weights_path=str(weights_path)
        )
        self.extractor = extractor.to(options.device).eval().requires_grad_(False)

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        return {"extractor": self.extractor}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 images -> (N, 2048) float32 features, as torch-fidelity reads them."""
        (features,) = self.extractor(images.to(self.device))
        return features.float().cpu()


class _Unloaded:
    """Marks the constructor's own weight loading as skipped while random weights are made."""


def _random_weights_file() -> Path:
    """Write (once) the seeded random-init weights of the tiny profile."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    target = cache_dir() / f"inception-v3-compat-random-seed{TINY_SEED}.pth"
    if target.is_file():
        return target

    class RandomInception(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):
            if not state_dict:  # the placeholder below: keep the fresh initialisation
                return None
            return super().load_state_dict(state_dict, *args, **kwargs)

    placeholder = target.with_name(target.name + ".empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({}, placeholder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = RandomInception(
            FEATURE_EXTRACTOR, [FEATURE_LAYER], feature_extractor_weights_path=str(placeholder)
        )
        variance_preserving_init(model)
    placeholder.unlink()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def _locate(search_dirs: Sequence[Path]) -> Path | None:
    return weight_file(search_dirs, "inception", [CHECKPOINT]) or torch_hub_file(CHECKPOINT)


INCEPTION = register_role(
    Role(
        name="inception",
        description="torch-fidelity inception-v3-compat (FID features, 2048-d)",
        paper_source=f"torch-fidelity {CHECKPOINT}",
        how_to_obtain=f"{CHECKPOINT} from {URL} at WEIGHTS/inception/ or in the torch hub cache",
        locate=_locate,
        load_paper=lambda path, options: InceptionFeatures(path, options),
        build_tiny=lambda options: InceptionFeatures(_random_weights_file(), options),
        fetch=lambda weights_dir: download_file(URL, Path(weights_dir) / "inception" / CHECKPOINT),
    )
)
