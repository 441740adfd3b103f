"""The cutouts of the Wav2CLIP authors' VQGAN-CLIP script (`scripts/VQGAN-CLIP/generate.py` of
lyrebird-wav2clip, itself nerdyrodent's VQGAN-CLIP `generate.py`, cut method "latest").

Each of the `count` cutouts is the whole image pooled to CLIP's input size as the mean of
adaptive average and max pooling; then, each with probability 0.7 and in this order, a random
affine map (rotation within 15 degrees, translation within 10%, x-shear within 5 degrees, zero
padding), a random perspective warp (distortion scale 0.7), a colour jitter (brightness,
contrast, saturation and hue within 0.1) and one random erasure shared by all cutouts (area
10-40% of the image, aspect ratio 0.3-3.3); last, Gaussian noise whose scale is drawn per
cutout from U(0, 0.1).

The script draws these with kornia; here they are drawn with torch from each sample's own
generator, so an image depends on its seed only and not on its batch-mates. The parameter
ranges are the script's; the random streams are not kornia's, so images are not bit-identical
to the script's (which seeds nothing before drawing its initial latent anyway).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PROBABILITY = 0.7
DEGREES, TRANSLATE, SHEAR = 15.0, 0.1, 5.0
DISTORTION = 0.7
JITTER = 0.1
ERASE_SCALE, ERASE_RATIO = (0.1, 0.4), (0.3, 1 / 0.3)
NOISE = 0.1


def recipe_cutouts(
    image: torch.Tensor, count: int, size: int, generator: torch.Generator
) -> torch.Tensor:
    """(3, H, W) image in [0, 1] -> (count, 3, size, size) augmented, noisy cutouts."""
    pooled = (F.adaptive_avg_pool2d(image, size) + F.adaptive_max_pool2d(image, size)) / 2
    cuts = pooled.expand(count, -1, -1, -1)
    cuts = _warp(cuts, _affine_matrices(count, size, generator))
    cuts = _warp(cuts, _perspective_matrices(count, size, generator))
    cuts = _jitter(cuts, generator)
    cuts = _erase(cuts, generator)
    scale = _uniform(generator, (count, 1, 1, 1), 0.0, NOISE).to(cuts.device)
    noise = torch.randn(cuts.shape, generator=generator).to(cuts.device)
    return cuts + scale * noise


def _uniform(
    generator: torch.Generator, shape: tuple[int, ...], low: float, high: float
) -> torch.Tensor:
    return torch.rand(shape, generator=generator) * (high - low) + low


def _applied(generator: torch.Generator, count: int) -> torch.Tensor:
    """Which of `count` cutouts an augmentation applies to (each with PROBABILITY)."""
    return torch.rand(count, generator=generator) < PROBABILITY


def _affine_matrices(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 3, 3) pixel-space maps from output to input: rotation, translation and x-shear
    about the centre; identity where the augmentation is not applied."""
    angle = torch.deg2rad(_uniform(generator, (count,), -DEGREES, DEGREES))
    shift = _uniform(generator, (count, 2), -TRANSLATE, TRANSLATE) * size
    shear = torch.tan(torch.deg2rad(_uniform(generator, (count,), -SHEAR, SHEAR)))
    centre = (size - 1) / 2
    matrices = torch.eye(3).repeat(count, 1, 1)
    for index in range(count):
        cos, sin = math.cos(angle[index]), math.sin(angle[index])
        rotate = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        skew = torch.tensor([[1.0, float(shear[index]), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        to_centre = torch.tensor([[1.0, 0.0, -centre], [0.0, 1.0, -centre], [0.0, 0.0, 1.0]])
        back = torch.tensor(
            [
                [1.0, 0.0, centre + float(shift[index, 0])],
                [0.0, 1.0, centre + float(shift[index, 1])],
                [0.0, 0.0, 1.0],
            ]
        )
        forward = back @ rotate @ skew @ to_centre
        matrices[index] = torch.linalg.inv(forward)
    keep = ~_applied(generator, count)
    matrices[keep] = torch.eye(3)
    return matrices


def _perspective_matrices(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 3, 3) homographies from output to input pixels: each corner of the output is
    moved inwards by up to DISTORTION x half the side; identity where not applied."""
    last = size - 1
    corners = torch.tensor([[0.0, 0.0], [last, 0.0], [last, last], [0.0, last]])
    inwards = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    reach = DISTORTION * size / 2
    moved = corners + inwards * torch.rand((count, 4, 2), generator=generator) * reach
    matrices = torch.stack([_homography(moved[index], corners) for index in range(count)])
    keep = ~_applied(generator, count)
    matrices[keep] = torch.eye(3)
    return matrices


def _homography(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The 3x3 homography H (H[2, 2] = 1) with H @ source_i ~ target_i for 4 point pairs."""
    rows, values = [], []
    for (x, y), (u, v) in zip(source.tolist(), target.tolist(), strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        values += [u, v]
    solution = torch.linalg.solve(
        torch.tensor(rows, dtype=torch.float64), torch.tensor(values, dtype=torch.float64)
    )
    return torch.cat([solution, torch.ones(1, dtype=torch.float64)]).reshape(3, 3).float()


def _warp(images: torch.Tensor, output_to_input: torch.Tensor) -> torch.Tensor:
    """Resample (N, C, S, S) images at the input points of each output pixel (bilinear, zeros
    outside), given (N, 3, 3) projective maps in pixel coordinates."""
    count, _, size, _ = images.shape
    axis = torch.arange(size, dtype=torch.float32)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)
    mapped = pixels @ output_to_input.transpose(1, 2)  # (N, S*S, 3)
    points = mapped[..., :2] / mapped[..., 2:]
    grid = (points * 2 + 1) / size - 1  # pixel centres -> [-1, 1] (align_corners=False)
    grid = grid.reshape(count, size, size, 2).to(images.device, images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _jitter(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation factors in [0.9, 1.1] and a hue shift within 0.1
    turns, applied to the selected cutouts; the result is clipped to [0, 1]."""
    count = images.shape[0]

    def factors(low: float, high: float) -> torch.Tensor:
        return _uniform(generator, (count, 1, 1, 1), low, high).to(images.device)

    brightness, contrast, saturation = (factors(1 - JITTER, 1 + JITTER) for _ in range(3))
    hue = factors(-JITTER, JITTER)
    chosen = _applied(generator, count).to(images.device)[:, None, None, None]
    jittered = (images * brightness).clamp(0, 1)
    mean = _grey(jittered).mean(dim=(2, 3), keepdim=True)
    jittered = ((jittered - mean) * contrast + mean).clamp(0, 1)
    grey = _grey(jittered)
    jittered = ((jittered - grey) * saturation + grey).clamp(0, 1)
    jittered = _shift_hue(jittered, hue)
    return torch.where(chosen, jittered, images)


def _grey(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
    return (images * weights[:, None, None]).sum(dim=1, keepdim=True)


def _shift_hue(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images in [0, 1] by `turns` (fractions of a full turn)."""
    high, _ = images.max(dim=1, keepdim=True)
    low, _ = images.min(dim=1, keepdim=True)
    chroma = high - low
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    red, green, blue = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    hue = torch.where(
        high == red,
        ((green - blue) / safe) % 6,
        torch.where(high == green, (blue - red) / safe + 2, (red - green) / safe + 4),
    )
    hue = ((hue / 6 + turns) % 1) * 6
    # back from hue, chroma and value (= high) to RGB
    offsets = torch.tensor([5.0, 3.0, 1.0], device=images.device)[None, :, None, None]
    k = (offsets + hue) % 6
    return high - chroma * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _erase(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """With PROBABILITY, zero one random rectangle (the same in every cutout)."""
    if not bool(_applied(generator, 1)[0]):
        return images
    size = images.shape[-1]
    area = float(_uniform(generator, (1,), *ERASE_SCALE)) * size * size
    log_ratio = _uniform(generator, (1,), math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]))
    ratio = math.exp(float(log_ratio))
    height = min(size, max(1, round(math.sqrt(area * ratio))))
    width = min(size, max(1, round(math.sqrt(area / ratio))))
    top = int(torch.randint(size - height + 1, (), generator=generator))
    left = int(torch.randint(size - width + 1, (), generator=generator))
    erased = images.clone()
    erased[..., top : top + height, left : left + width] = 0
    return erased
