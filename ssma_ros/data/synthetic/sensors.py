"""Depth and thermal sensor models, with benchmark v2's failure modes.

``depth_image`` and ``thermal_image`` without effects are the v1 sensors, unchanged. v2 adds
what real sensors do (the physics and its source, one line each, are in docs/EXPERIMENT.md):

* depth, always: flying pixels (ToF/stereo pixels on a depth edge mix foreground and
  background).
* depth, per condition: ``sunlight`` (ambient IR washes out the projector pattern: large invalid
  regions on sunlit, low-texture surfaces, more noise elsewhere), ``range`` (no return beyond a
  short range, noise growing with z squared), ``specular`` (no return from glass and dark paint,
  mirrored, too-long depth from puddles on the road), ``speckle`` (rain: dropouts and false
  near returns from drops).
* thermal, always: glass is opaque to long-wave infrared and mirrors the cold sky.
* thermal, per condition: ``fog`` (droplets attenuate LWIR less than light: a third of the
  extinction), ``crossover`` (surfaces near the air temperature: contrast collapses),
  ``wet`` (rain: surfaces cool towards the air, water on the lens blurs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from ssma_ros.data.synthetic.scene import _ASPHALT, _CONCRETE, _GLASS, _Scene

if TYPE_CHECKING:
    from ssma_ros.data.synthetic.render import SyntheticScenes

# Thermal images are radiometric like a FLIR camera's TLinear mode: uint16 centikelvin.
THERMAL_SCALE = 100.0
THERMAL_RANGE = (25315.0, 32315.0)  # -20 .. +50 degC: a sensible fixed intensity stretch
_KELVIN = 273.15

#: Shortest sensor range (m) of the ``range`` condition, at strength 1.
SHORT_RANGE_M = 8.0
#: LWIR extinction in fog relative to visible light (advection fog, 8-12 um).
FOG_LWIR_RATIO = 1.0 / 3.0


def lut(values, dtype: type) -> np.ndarray:
    """Return a 256-entry lookup table for cv2.LUT, ``values`` first."""
    table = np.zeros(256, dtype)
    table[: len(values)] = values
    return table


class Surfaces(NamedTuple):
    """Per-pixel surface facts that v2's sensor models need."""

    t: np.ndarray  # depth of the first hit, inf for sky
    t_hit: np.ndarray  # depth, 0 for sky
    kind: np.ndarray  # material kind (uint8)
    texture_amp: np.ndarray  # albedo texture amplitude (low: featureless for stereo)
    luminance: np.ndarray  # mean albedo
    irradiance: np.ndarray  # direct sun on the surface, 0..1
    distance: np.ndarray  # along the ray, 1000 for sky


def depth_image(scenes: SyntheticScenes, t, t_hit, mat, table, rnd) -> np.ndarray:
    """Depth sensor: quadratic noise, range limit, dropouts at edges, on glass, speckle."""
    h, w = t.shape
    sigma = t_hit * t_hit
    sigma *= 0.0005
    sigma += 0.002
    depth = scenes._bank(scenes._gauss, rnd, t.shape) * sigma
    depth += t_hit
    uniform = scenes._bank(scenes._uniform, rnd, (3, h, w))
    glass = cv2.LUT(mat, lut([m.kind == _GLASS for m in table], np.uint8)).view(bool)
    invalid = np.isinf(t) | (t > scenes.max_range_m) | (depth <= 0.1)
    invalid |= glass & (uniform[0] < 0.6)
    invalid |= uniform[1] < 0.004
    # Occlusion shadow: the farther pixel of a depth jump has no return (stereo/ToF-like).
    left, right = t[:, :-1], t[:, 1:]
    with np.errstate(invalid="ignore"):
        jump = np.abs(right - left) > 0.05 * np.minimum(left, right) + 0.05
    jump &= uniform[2][:, 1:] < 0.7
    invalid[:, 1:] |= jump & (right > left)
    invalid[:, :-1] |= jump & (left > right)
    depth[invalid] = np.nan
    return depth


def _blobs(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth zero-mean, unit-variance noise with features about `cell` pixels across."""
    h, w = shape
    coarse = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _flying_pixels(depth: np.ndarray, rng: np.random.Generator) -> None:
    """Half of the pixels beside a depth edge read a mix of the two sides (in place)."""
    for axis in (0, 1):
        a = depth[:-1] if axis == 0 else depth[:, :-1]
        b = depth[1:] if axis == 0 else depth[:, 1:]
        with np.errstate(invalid="ignore"):
            edge = np.abs(a - b) > 0.05 * np.minimum(a, b) + 0.05
        edge &= rng.random(edge.shape) < 0.5
        far_b = edge & (b > a)
        far_a = edge & (a > b)
        mix = rng.random(edge.shape).astype(np.float32)
        b[far_b] = (b + mix * (a - b))[far_b]
        a[far_a] = (a + mix * (b - a))[far_a]


def degrade_depth(
    depth: np.ndarray,
    surf: Surfaces,
    steps: tuple[tuple[str, float], ...],
    strength: float,
    rng: np.random.Generator,
    max_range_m: float,
) -> np.ndarray:
    """v2 depth: flying pixels, then each failure model of `steps` at `strength` x its factor."""
    out = depth.copy()
    _flying_pixels(out, rng)
    z = surf.t_hit
    noise = rng.standard_normal(out.shape).astype(np.float32)
    for model, factor in steps:
        s = np.float32(strength * factor)
        if s <= 0:
            continue
        if model == "sunlight":
            # Featureless (low texture amplitude) sunlit surfaces lose the projected pattern in
            # patches; the rest keeps a return with more noise.
            featureless = 1.0 - np.clip(surf.texture_amp / 0.25, 0.0, 1.0)
            washout = s * surf.irradiance * (0.3 + featureless)
            washout += 0.12 * _blobs(rng, out.shape, 12)
            out[washout > 0.3] = np.nan
            out += noise * (0.002 + 0.0005 * z * z) * (4.0 * s * surf.irradiance)
        elif model == "range":
            reach = max_range_m * (SHORT_RANGE_M / max_range_m) ** float(s)
            out += noise * (0.0045 * s) * z * z
            out[z > reach] = np.nan
        elif model == "specular":
            glass = surf.kind == _GLASS
            dark = (surf.kind != _ASPHALT) & (surf.kind != _CONCRETE)
            dark &= rng.random(out.shape) < s * np.clip((0.15 - surf.luminance) / 0.1, 0, 1)
            puddle = (surf.kind == _ASPHALT) & (_blobs(rng, out.shape, 10) > 1.2 - 1.2 * s)
            mirrored = puddle & (rng.random(out.shape) < 0.5)
            out[mirrored] *= rng.uniform(1.3, 2.0, out.shape).astype(np.float32)[mirrored]
            out[(puddle & ~mirrored) | dark | (glass & (rng.random(out.shape) < 0.9 * s))] = np.nan
        elif model == "speckle":
            out += noise * s * (0.002 + 0.0005 * z * z)
            draw = rng.random(out.shape)
            out[draw < 0.15 * s] = np.nan
            drops = draw > 1.0 - 0.03 * s
            out[drops] = rng.uniform(0.3, 2.5, out.shape).astype(np.float32)[drops]
        else:
            raise ValueError(f"unknown depth model {model!r}")
    out[out <= 0.1] = np.nan
    return out


def thermal_image(
    scenes: SyntheticScenes,
    scene: _Scene,
    mat,
    normals,
    texture,
    rnd,
    v2: tuple[Surfaces, tuple[tuple[str, float], ...], float] | None = None,
) -> np.ndarray:
    """Render the radiometric thermal image (uint16 centikelvin).

    `v2` = (surfaces, THERMAL_STEPS entry, strength) adds v2's glass and condition models;
    None gives v1's sensor.
    """
    table = scene.materials
    temp = cv2.LUT(mat, lut([m.temp_c for m in table], np.float32))
    solar_k = cv2.LUT(mat, lut([m.solar_k for m in table], np.float32))
    nx, ny, nz = normals
    lx, ly, lz = scene.sun_dir
    heating = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)
    heating *= np.float32(scene.sun)
    heating *= solar_k
    temp += heating
    temp += 0.3 * texture * (solar_k > 0)  # surface texture shows as mottled temperature
    lens_blur = 0.0
    if v2 is not None:
        surf, steps, strength = v2
        air = np.float32(scene.air_c)
        sky = np.isinf(surf.t)
        # Glass (emissivity ~0.85 in LWIR) shows itself and a reflection of the cold sky.
        glass = surf.kind == _GLASS
        temp[glass] = 0.85 * temp[glass] + 0.15 * table[0].temp_c
        for model, factor in steps:
            s = np.float32(strength * factor)
            if model == "fog":
                extinction = np.float32(-0.15 * FOG_LWIR_RATIO) * s
                temp = air + (temp - air) * np.exp(surf.distance * extinction)
            elif model == "crossover":
                keep = 1.0 - 0.9 * s
                temp[~sky] = air + (temp[~sky] - air) * keep
            elif model == "wet":
                temp[~sky] = air - 1.0 * s + (temp[~sky] - air) * (1.0 - 0.5 * s)
                lens_blur = 1.5 * float(s)
            else:
                raise ValueError(f"unknown thermal model {model!r}")
    # Thermal optics are soft; NETD about 50 mK.
    temp = cv2.GaussianBlur(temp, (0, 0), 0.7)
    if lens_blur > 0:
        temp = cv2.GaussianBlur(temp, (0, 0), lens_blur)
    temp += scenes._bank(scenes._gauss, rnd, temp.shape) * np.float32(0.05)
    temp += _KELVIN
    temp *= THERMAL_SCALE
    return np.clip(np.rint(temp), 0, 65535).astype(np.uint16)
