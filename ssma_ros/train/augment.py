"""Training augmentations of the SSMA paper (reference/ssma_paper.md §5), on HWC numpy arrays.

Geometric (scale, crop, flip, rotation, skew) is ONE affine map applied to every modality and the
label, so they stay pixel-aligned; the label and the aux image are resampled with nearest neighbour
(interpolating class ids or encoded depth colours would invent values that never occur). Pixels
that come from outside the source take the "nothing here" value of each array: void for the
label, black for RGB, and for aux the encoded value the node produces for an invalid reading.
Photometric changes (brightness, contrast, vignetting) touch RGB only: depth, HHA, EVI and
thermal images carry physical values that a lamp does not change (SSMA issue #3).
All randomness comes from the `rng` the caller passes, so a sample is reproducible from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes.

    Paper values: scale 0.5-2.0, rotation +-13 deg, skew 0.05-0.10, brightness +-40, contrast
    0.5-1.5; the default scale range is narrower because at 64x80 a x0.5 zoom leaves too few
    pixels per object to learn from.
    """

    enabled: bool = True
    scale: tuple[float, float] = (0.75, 1.5)
    rotation_deg: float = 13.0
    skew: float = 0.1  # max |shear| factor
    flip: bool = True
    brightness: float = 40.0  # max |offset| in 8-bit levels
    contrast: tuple[float, float] = (0.5, 1.5)
    vignetting: float = 0.4  # max darkening at the image corners (0 = none)
    photometric_p: float = 0.5  # probability of each photometric change

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"augment.scale must satisfy 0 < low <= high, got {self.scale}")
        clo, chi = self.contrast
        if not 0 <= clo <= chi:
            raise ValueError(
                f"augment.contrast must satisfy 0 <= low <= high, got {self.contrast}"
            )
        if not 0 <= self.vignetting < 1:
            raise ValueError(f"augment.vignetting must be in [0, 1), got {self.vignetting}")
        if not 0 <= self.photometric_p <= 1:
            raise ValueError(f"augment.photometric_p must be in [0, 1], got {self.photometric_p}")


def random_matrix(
    rng: np.random.Generator,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    cfg: AugmentConfig,
    stretch: bool = True,
) -> np.ndarray:
    """2x3 affine map input -> output of one random geometric augmentation.

    Stretch to out_hw (the identity when, as in training, the images are already at network
    size; stretch=False keeps the input's pixel scale, so out_hw is a crop window), then random
    scale, skew, rotation and flip about the centre, then a random crop offset (or placement,
    when zoomed out).
    """
    (ih, iw), (oh, ow) = in_hw, out_hw
    s = rng.uniform(*cfg.scale)
    theta = math.radians(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
    shear = rng.uniform(-cfg.skew, cfg.skew)
    flip = -1.0 if cfg.flip and rng.random() < 0.5 else 1.0
    fit = np.array([ow / iw, oh / ih]) if stretch else np.ones(2)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    a = s * rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([flip, 1.0]) @ np.diag(fit)
    # Random translation over the slack between the zoomed image and the output window.
    slack = np.abs(np.array([iw, ih]) * fit * s - np.array([ow, oh])) / 2.0
    shift = rng.uniform(-slack, slack)
    c_in = np.array([(iw - 1) / 2.0, (ih - 1) / 2.0])
    c_out = np.array([(ow - 1) / 2.0, (oh - 1) / 2.0])
    t = c_out + shift - a @ c_in
    return np.hstack([a, t[:, None]])


def warp(
    image: np.ndarray,
    matrix: np.ndarray,
    out_hw: tuple[int, int],
    nearest: bool,
    fill: float | tuple[float, ...],
) -> np.ndarray:
    """Resample `image` (H, W[, C]) through `matrix`; pixels from outside the source get `fill`."""
    oh, ow = out_hw
    channels = 1 if image.ndim == 2 else image.shape[2]
    border = tuple(np.broadcast_to(np.asarray(fill, dtype=np.float64), (channels,)).tolist())
    out = cv2.warpAffine(
        image,
        matrix.astype(np.float64),
        (ow, oh),
        flags=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )
    return out.reshape(oh, ow, *image.shape[2:])


def photometric(rgb: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Brightness, contrast and vignetting on an 8-bit RGB image.

    Each is applied with probability photometric_p.
    """
    img = rgb.astype(np.float32)
    if rng.random() < cfg.photometric_p:
        img += rng.uniform(-cfg.brightness, cfg.brightness)
    if rng.random() < cfg.photometric_p:
        mean = img.mean()
        img = (img - mean) * rng.uniform(*cfg.contrast) + mean
    if cfg.vignetting > 0 and rng.random() < cfg.photometric_p:
        h, w = img.shape[:2]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((x - (w - 1) / 2) ** 2 + (y - (h - 1) / 2) ** 2) / (
            ((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2
        )
        img *= (1.0 - rng.uniform(0.0, cfg.vignetting) * r2)[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
