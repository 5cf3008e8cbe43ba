"""Adverse conditions: which sensor each one degrades, and the RGB camera models.

Benchmark ``v1`` (the original) degrades the RGB image only. Benchmark ``v2`` adds conditions
in which the depth or the thermal camera fails, alone or together with RGB, as real sensors do;
their depth and thermal models live in ``sensors``. Every condition is an identity at strength
0 (v2's always-on sensor effects aside) and deterministic for (seed, index, condition, strength).
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from ssma_ros.data.synthetic.render import SyntheticScenes

#: The v1 conditions, which degrade the RGB image only (the names callers used before v2).
CONDITIONS: tuple[str, ...] = ("clear", "fog", "night", "glare", "rain")
#: v2: v1's conditions (fog now also attenuates thermal), then depth-only, thermal-only and
#: both-modality conditions.
CONDITIONS_V2: tuple[str, ...] = (
    *CONDITIONS,
    "sunlight",
    "range",
    "specular",
    "crossover",
    "night_rain",
    "dusk_sun",
)
BENCHMARKS: dict[str, tuple[str, ...]] = {"v1": CONDITIONS, "v2": CONDITIONS_V2}

#: v2: per condition, the RGB models applied in order as (model, strength factor).
RGB_STEPS: dict[str, tuple[tuple[str, float], ...]] = {
    "fog": (("fog", 1.0),),
    "night": (("night", 1.0),),
    "glare": (("glare", 1.0),),
    "rain": (("rain", 1.0),),
    "night_rain": (("night", 1.0), ("rain", 1.0)),
    "dusk_sun": (("night", 0.4), ("glare", 1.0)),  # dusk: dimmer light, the low sun in view
}
#: v2: per condition, the depth sensor failure models (sensors.degrade_depth).
DEPTH_STEPS: dict[str, tuple[tuple[str, float], ...]] = {
    "sunlight": (("sunlight", 1.0),),
    "range": (("range", 1.0),),
    "specular": (("specular", 1.0),),
    "night_rain": (("speckle", 1.0),),
    "dusk_sun": (("sunlight", 1.0),),
}
#: v2: per condition, the thermal camera models (sensors.thermal_image).
THERMAL_STEPS: dict[str, tuple[tuple[str, float], ...]] = {
    "fog": (("fog", 1.0),),
    "crossover": (("crossover", 1.0),),
    "night_rain": (("wet", 1.0),),
    "dusk_sun": (("crossover", 0.6),),  # dusk is when crossover happens; the sun is still up
}


def degraded(condition: str) -> tuple[str, ...]:
    """Return the sensors ("rgb", "depth", "thermal") that a v2 condition degrades."""
    tables = (("rgb", RGB_STEPS), ("depth", DEPTH_STEPS), ("thermal", THERMAL_STEPS))
    return tuple(sensor for sensor, table in tables if condition in table)


def apply_condition(
    scenes: SyntheticScenes,
    condition: str,
    s: np.float32,
    image: np.ndarray,
    albedo: np.ndarray,
    normals: tuple[np.ndarray, np.ndarray, np.ndarray],
    rays: tuple[np.ndarray, np.ndarray, np.ndarray],
    ray_len: np.ndarray,
    distance: np.ndarray,
    rnd: random.Random,
) -> np.ndarray:
    """Degrade the exposed planar (3, H, W) linear image with one RGB model (``RGB_STEPS``)."""
    _, h, w = image.shape
    if condition == "fog":
        # Koschmieder: transmission exp(-beta d); visibility about 20 m at strength 1.
        transmission = np.exp(distance * (np.float32(-0.15) * s))
        airlight = np.array([0.55, 0.57, 0.6], np.float32)[:, None, None]
        return airlight + (image - airlight) * transmission
    if condition == "night":
        # Scene light falls by exp(-4.5 s); auto gain recovers exp(2.5 s) of it and amplifies
        # the sensor noise with it, so the frame darkens monotonically to ~1/7 at strength 1.
        dark = image * np.exp(np.float32(-4.5) * s)
        # The robot's own headlamp: inverse-square falloff, cosine on the surface.
        nx, ny, nz = normals
        facing = np.maximum(-(nx * rays[0] + ny * rays[1] + nz * rays[2]) / ray_len, 0.0)
        lamp = facing * (s * np.float32(0.1)) / (1.0 + (distance * np.float32(1 / 6.0)) ** 2)
        lit = dark + albedo * lamp
        sigma = s * (0.004 + 0.01 * np.sqrt(np.maximum(lit, 0.0)))
        noisy = (lit + scenes._bank(scenes._gauss, rnd, image.shape) * sigma) * np.exp(
            np.float32(2.5) * s
        )
        grey = noisy.mean(axis=0)
        return noisy + (np.float32(0.4) * s) * (grey - noisy)
    if condition == "glare":
        u0, v0 = rnd.uniform(0.15 * w, 0.85 * w), rnd.uniform(0.1 * h, 0.6 * h)
        u = np.arange(w, dtype=np.float32)[None, :] - np.float32(u0)
        v = np.arange(h, dtype=np.float32)[:, None] - np.float32(v0)
        sigma = np.float32((0.08 + 0.12 * s) * w)
        r2 = (u * u + v * v) / (sigma * sigma)
        bloom = 3.0 * np.exp(-0.5 * r2) + 0.8 * np.exp(-0.5 * np.sqrt(r2))
        streak = (
            0.6
            * np.exp(-0.5 * (v / np.float32(0.01 * h + 1.0)) ** 2)
            * np.exp(-np.abs(u) / np.float32(0.5 * w))
        )
        flare = s * (bloom + streak) + np.float32(0.25) * s
        tint = np.array([1.0, 0.97, 0.9], np.float32)[:, None, None]
        return image * (1 - np.float32(0.3) * s) + flare * tint
    if condition == "rain":
        # Overcast darkening, contrast loss, water on the lens (blur) and near-field streaks.
        mean = image.mean(axis=(1, 2), keepdims=True)
        haze = np.float32(0.25) * s
        wet = (image * (1 - haze) + haze * mean) * (1 - np.float32(0.35) * s)
        length = max(3, int(0.06 * h))
        slope = math.tan(math.radians(rnd.uniform(-20, 20)))
        kernel = np.zeros((length, length), np.float32)
        centre = (length - 1) / 2.0
        for i in range(length):  # a line of taps through the kernel centre
            kernel[i, min(max(round(centre + slope * (i - centre)), 0), length - 1)] = 1.0
        drops = (scenes._bank(scenes._uniform, rnd, (h, w)) < 0.004 * s).astype(np.float32)
        streaks = np.clip(cv2.filter2D(drops, -1, kernel) * 0.6, 0.0, 1.0)
        blurred = np.stack([cv2.GaussianBlur(plane, (0, 0), float(1.2 * s)) for plane in wet])
        return blurred * (1 - 0.5 * streaks) + 0.75 * streaks
    raise ValueError(f"unknown condition {condition!r}")
