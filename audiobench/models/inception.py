"""The `inception` role: torch-fidelity's `inception-v3-compat`, the feature extractor of FID.

FID is computed by torch-fidelity itself, so the numbers equal its own. The feature extractor
takes its weights only from a file (or downloads them), so `tiny` writes seeded random weights
to a file once, with a variance-preserving initialisation: PyTorch's default init makes this
network's 2048-d features constant to 1e-10, which would make every FID about 0 and every test
on it vacuous.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from audiobench.models.checkpoints import load_state_dict
from audiobench.models.zoo import (
    RANDOM_SEED,
    LoadOptions,
    Role,
    WeightLayout,
    download_file,
    register_role,
    tiny_checkpoint,
    torch_hub_file,
    variance_preserving_init,
    weight_file,
)

FEATURE_EXTRACTOR = "inception-v3-compat"
FEATURE_LAYER = "2048"
CHECKPOINT = "weights-inception-2015-12-05-6726825d.pth"
CHECKPOINT_SHA256 = "6726825d"  # the leading sha256 digits in the file name (torch.hub's rule)
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
    """The tiny profile's seeded, variance-preserving random weights (written once)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    def build(cls, placeholder: str):
        model = cls(FEATURE_EXTRACTOR, [FEATURE_LAYER], feature_extractor_weights_path=placeholder)
        variance_preserving_init(model)
        return model

    return tiny_checkpoint(
        f"inception-v3-compat-random-seed{RANDOM_SEED}.pth",
        FeatureExtractorInceptionV3,
        {},
        build,
        lambda m: m.state_dict(),
    )


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
        # The tiny profile already has the published architecture: both random profiles share it.
        build_paper_random=lambda options: InceptionFeatures(_random_weights_file(), options),
        build_tiny=lambda options: InceptionFeatures(_random_weights_file(), options),
        layout=WeightLayout({"extractor": ("",)}),
        fetch=lambda weights_dir: download_file(
            URL, Path(weights_dir) / "inception" / CHECKPOINT, sha256_prefix=CHECKPOINT_SHA256
        ),
    )
)
