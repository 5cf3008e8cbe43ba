"""Modality encodings: every aux modality enters the network as a uint8 HxWx3 image.

Pure numpy, because the ROS node runs these functions on every frame. Conventions:

* Depth arrives in sensor units and is converted once by :func:`depth_to_metres` into float32
  metres with NaN marking every invalid pixel (0, NaN, +-inf and negative values).
* Invalid pixels encode as black (0, 0, 0) in every depth encoding, and valid pixels never encode
  as pure black, so "no data" stays distinguishable from "near/far/cold" after encoding.
* Camera frame is the ROS optical frame (REP 103): x right, y down, z forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEPTH_ENCODINGS = ("16UC1", "32FC1")
INTENSITY_ENCODINGS = ("mono8", "mono16")

# Gupta et al. (ECCV 2014, saveHHA.m) store the angle channel as angle + 128 - 90 degrees.
HHA_ANGLE_OFFSET_DEG = 38.0


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels; pixel centres sit at integer coordinates."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"invalid camera intrinsics {values}: fx, fy must be finite and > 0")

    def scaled(self, sx: float, sy: float) -> CameraIntrinsics:
        """Intrinsics after resizing the image by factors (sx, sy)."""
        # A pixel centre u maps to (u + 0.5) * s - 0.5, the convention of cv2.resize.
        return CameraIntrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5
        )

    @classmethod
    def from_k(cls, k: np.ndarray | list[float] | tuple[float, ...]) -> CameraIntrinsics:
        """From a row-major 3x3 K (sensor_msgs/CameraInfo.k) or a 4x4/3x4 projection matrix."""
        m = np.asarray(k, dtype=np.float64)
        if m.size == 9:
            m = m.reshape(3, 3)
        elif m.size in (12, 16):
            m = m.reshape(-1, 4)[:3, :3]
        else:
            raise ValueError(f"expected 9, 12 or 16 matrix entries, got {m.size}")
        return cls(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]))

    def to_dict(self) -> dict[str, float]:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> CameraIntrinsics:
        return cls(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]))


def _as_single_channel(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2:
        raise ValueError(f"{what} must be a single-channel HxW image, got shape {image.shape}")
    return image


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """Sensor depth to float32 metres; every invalid pixel becomes NaN.

    ``16UC1``: uint16 millimetres, 0 = invalid. ``32FC1``: float32 metres, 0, NaN, +-inf and
    negative values are invalid (REP 118 uses NaN/inf, many drivers use 0).
    """
    depth = _as_single_channel(depth, "depth")
    if encoding == "16UC1":
        if depth.dtype != np.uint16:
            raise ValueError(f"16UC1 depth must be uint16 millimetres, got {depth.dtype}")
        # np.where rather than a boolean-mask write: several times faster on a full frame.
        metres = np.where(
            depth == 0, np.float32(np.nan), depth.astype(np.float32) * np.float32(0.001)
        )
    elif encoding == "32FC1":
        if depth.dtype != np.float32:
            raise ValueError(f"32FC1 depth must be float32 metres, got {depth.dtype}")
        with np.errstate(invalid="ignore"):
            metres = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.nan))
    else:
        raise ValueError(f"unknown depth encoding {encoding!r}; expected one of {DEPTH_ENCODINGS}")
    return metres


def has_valid_depth(depth: np.ndarray, encoding: str) -> bool:
    """Whether any pixel of a sensor depth image is valid, without converting the image.

    Valid in the sense of :func:`depth_to_metres`.
    """
    if encoding == "16UC1":
        return bool(depth.any())
    with np.errstate(invalid="ignore"):
        return bool(np.any((depth > 0) & (depth < np.inf)))  # NaN, -inf, 0 and +inf fail one test


def _check_range(low: float, high: float, what: str) -> None:
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"{what} range must be finite with max > min, got ({low}, {high})")


def _gray3(channel: np.ndarray) -> np.ndarray:
    return np.repeat(channel[:, :, None], 3, axis=2)


def _unit_interval(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """(values - low) / (high - low) clipped to [0, 1]; NaN stays NaN."""
    x = (values.astype(np.float32) - np.float32(low)) / np.float32(high - low)
    return np.clip(x, 0.0, 1.0)


def jet(depth_m: np.ndarray, min_m: float, max_m: float) -> np.ndarray:
    """Jet colour map of metric depth over [min_m, max_m]: near blue, far red, invalid black.

    Depths outside the range are clipped to its ends. Valid pixels never map to black
    (the darkest jet colours are (0, 0, 128) and (128, 0, 0)).
    """
    _check_range(min_m, max_m, "jet depth")
    depth_m = _as_single_channel(depth_m, "depth")
    x = _unit_interval(depth_m, min_m, max_m)
    # Invalid pixels get x = -1/8, where all three triangles below are exactly 0 (black); a
    # boolean-mask write over the 3-channel output afterwards would cost more than the rest.
    x = np.where(np.isfinite(x), x, np.float32(-0.125))
    # MATLAB/OpenCV-style jet as three clipped triangles, 255 * clip(1.5 - |4x - c|, 0, 1) for
    # c = 3, 2, 1 (r, g, b), computed in place in float32: the node encodes every depth frame.
    four_x = np.multiply(x, np.float32(4.0))
    out = np.empty((*x.shape, 3), np.uint8)
    channel = np.empty_like(four_x)
    for i, centre in enumerate((3.0, 2.0, 1.0)):
        np.subtract(four_x, np.float32(centre), out=channel)
        np.abs(channel, out=channel)
        np.subtract(np.float32(1.5), channel, out=channel)
        np.clip(channel, 0.0, 1.0, out=channel)
        np.multiply(channel, np.float32(255.0), out=channel)
        out[..., i] = np.rint(channel, out=channel)
    return out


def metric_depth(depth_m: np.ndarray, min_m: float, max_m: float) -> np.ndarray:
    """Raw metric depth as grey: valid depths map linearly to 1..255, invalid to 0, 3 channels."""
    _check_range(min_m, max_m, "depth")
    depth_m = _as_single_channel(depth_m, "depth")
    x = _unit_interval(depth_m, min_m, max_m)
    valid = np.isfinite(x)
    gray = np.zeros(depth_m.shape, np.uint8)
    gray[valid] = np.rint(1.0 + 254.0 * x[valid]).astype(np.uint8)
    return _gray3(gray)


# ---------------------------------------------------------------------------------------------
# HHA


def backproject(depth_m: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """Metric depth to camera-frame points, shape (3, H, W); invalid pixels are NaN."""
    h, w = depth_m.shape
    xn = (np.arange(w, dtype=np.float32) - np.float32(camera.cx)) / np.float32(camera.fx)
    yn = (np.arange(h, dtype=np.float32) - np.float32(camera.cy)) / np.float32(camera.fy)
    z = depth_m.astype(np.float32)
    return np.stack([z * xn[None, :], z * yn[:, None], z])


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of ``a`` over the (2r+1)^2 window around each pixel, windows clipped at the borders."""
    h, w = a.shape
    k = 2 * r + 1
    # Zero padding equals clipping the window. Shifted-slice sums beat cumsum for small windows
    # and add at most k*k values, so float32 loses nothing.
    padded = np.pad(a.astype(np.float32), r)
    rows = padded[0:h].copy()
    for i in range(1, k):
        rows += padded[i : i + h]
    out = rows[:, 0:w].copy()
    for j in range(1, k):
        out += rows[:, j : j + w]
    return out


def surface_normals(points: np.ndarray, window: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Unit surface normals from organised points (3, H, W), oriented towards the camera.

    Points are first averaged over a ``window`` x ``window`` neighbourhood (ignoring invalid
    pixels) to suppress sensor noise, then the normal is the cross product of the horizontal and
    vertical central differences of the smoothed points. Returns (normals (3, H, W), valid mask).
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"normal window must be an odd integer >= 3, got {window}")
    r = window // 2
    valid = np.isfinite(points[2])
    count = _box_sum(valid.astype(np.float32), r)
    enough = count >= 0.5 * window * window
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = [_box_sum(np.where(valid, p, 0.0), r) / count for p in points]
    # Central differences over one window radius, edge-clamped at the borders.
    padded = [np.pad(s, r, mode="edge") for s in smooth]
    du = [p[r:-r, 2 * r :] - p[r:-r, : -2 * r] for p in padded]
    dv = [p[2 * r :, r:-r] - p[: -2 * r, r:-r] for p in padded]
    n = np.stack(
        [
            du[1] * dv[2] - du[2] * dv[1],
            du[2] * dv[0] - du[0] * dv[2],
            du[0] * dv[1] - du[1] * dv[0],
        ]
    )
    norm = np.sqrt(np.sum(n * n, axis=0))
    ok = valid & enough & np.isfinite(norm) & (norm > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n /= norm
        # Orient towards the camera: a visible surface has n . p < 0.
        flip = np.sum(n * points, axis=0) > 0
    n *= np.where(flip, np.float32(-1.0), np.float32(1.0))
    n = np.where(ok, n, np.float32(np.nan))
    return n.astype(np.float32), ok


def estimate_up(
    normals: np.ndarray,
    valid: np.ndarray,
    prior: tuple[float, float, float] = (0.0, -1.0, 0.0),
    min_fraction: float = 0.02,
) -> np.ndarray:
    """Estimate the camera-frame "up" (anti-gravity) direction from surface normals.

    Gupta et al.'s scheme: starting from ``prior`` (camera y-down frame: up = -y), collect
    normals nearly parallel to the current estimate (floors, ceilings, table tops) and nearly
    perpendicular to it (walls), and take the direction most aligned with the first set and most
    orthogonal to the second (top eigenvector of sum(n n^T)_par - sum(n n^T)_perp); repeat with
    the thresholds 45 then 15 degrees. Falls back to ``prior`` when fewer than ``min_fraction``
    of the valid normals are horizontal surfaces (a view of a single wall does not constrain
    gravity) or when the estimate leaves the 45-degree cone around the prior.
    """
    prior_v = np.asarray(prior, np.float64)
    prior_v = prior_v / np.linalg.norm(prior_v)
    # Every second pixel is plenty for a 3x3 scatter matrix.
    n = normals[:, ::2, ::2][:, valid[::2, ::2]].T.astype(np.float64)
    if len(n) == 0:
        return prior_v
    up = prior_v
    for threshold_deg in (45.0, 15.0):
        c = n @ up
        parallel = np.abs(c) > np.cos(np.radians(threshold_deg))
        perpendicular = np.abs(c) < np.sin(np.radians(threshold_deg))
        if parallel.sum() < min_fraction * len(n):
            return prior_v
        a = n[parallel].T @ n[parallel] - n[perpendicular].T @ n[perpendicular]
        candidate = np.linalg.eigh(a)[1][:, -1]
        up = candidate if candidate @ up >= 0 else -candidate
    if up @ prior_v < np.cos(np.radians(45.0)):
        return prior_v
    return up


def hha(
    depth_m: np.ndarray,
    camera: CameraIntrinsics,
    min_m: float,
    max_m: float,
    max_height_m: float = 2.55,
    camera_height_m: float | None = None,
    window: int = 5,
) -> np.ndarray:
    """HHA encoding (Gupta et al. 2014): disparity, height above ground, angle to gravity.

    * H1 disparity: 1/z normalised over [1/max_m, 1/min_m] to 1..255 (Gupta uses a fixed
      31000/z_cm; normalising over the configured depth range uses all 8 bits outdoors too).
    * H2 height above the ground over [0, max_height_m] -> 0..255 (default 2.55 m = Gupta's
      1 level per cm). Up is estimated by :func:`estimate_up`. The ground is at
      ``camera_height_m`` below the camera when given (robots know their mount height),
      otherwise at the 1st percentile of the point heights (Gupta: the lowest point; the
      percentile resists outliers).
    * A angle between the surface normal and "up" in degrees + 38 (Gupta's offset): floors 38,
      walls 128, ceilings 218; 0 where the normal is unknown.

    Pixels with invalid depth are (0, 0, 0).
    """
    _check_range(min_m, max_m, "HHA depth")
    if min_m <= 0:
        raise ValueError(f"HHA needs a positive minimum depth, got {min_m}")
    if max_height_m <= 0:
        raise ValueError(f"HHA max height must be > 0, got {max_height_m}")
    depth_m = _as_single_channel(depth_m, "depth")
    valid = np.isfinite(depth_m)
    points = backproject(depth_m, camera)
    normals, normal_ok = surface_normals(points, window)
    up = estimate_up(normals, normal_ok).astype(np.float32)

    out = np.zeros(depth_m.shape + (3,), np.uint8)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = (1.0 / depth_m - 1.0 / max_m) / (1.0 / min_m - 1.0 / max_m)
        disparity = 1.0 + 254.0 * np.clip(inv, 0.0, 1.0)

        relative = np.tensordot(up, points, axes=1)  # height relative to the camera centre
        if camera_height_m is not None:
            height = relative + np.float32(camera_height_m)
        elif valid.any():
            height = relative - np.percentile(relative[valid], 1.0)
        else:
            height = relative
        height_level = 255.0 * np.clip(height / max_height_m, 0.0, 1.0)

        cosine = np.clip(np.tensordot(up, normals, axes=1), -1.0, 1.0)
        angle = np.degrees(np.arccos(cosine)) + HHA_ANGLE_OFFSET_DEG
    out[..., 0] = np.where(valid, np.rint(disparity), 0).astype(np.uint8)
    out[..., 1] = np.where(valid, np.rint(height_level), 0).astype(np.uint8)
    out[..., 2] = np.where(valid & normal_ok, np.rint(np.clip(angle, 0, 255)), 0).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------------------------
# Infrared / thermal / NIR


def full_range(encoding: str) -> tuple[float, float]:
    """Value range of a mono sensor encoding."""
    if encoding == "mono8":
        return 0.0, 255.0
    if encoding == "mono16":
        return 0.0, 65535.0
    raise ValueError(
        f"unknown intensity encoding {encoding!r}; expected one of {INTENSITY_ENCODINGS}"
    )


def intensity(
    image: np.ndarray,
    value_range: tuple[float, float] | None = None,
    percentiles: tuple[float, float] | None = None,
) -> np.ndarray:
    """Infrared / thermal / NIR intensity to a 3-channel grey uint8 image.

    Exactly one of ``value_range`` (fixed stretch in raw sensor units, e.g. centikelvin for a
    radiometric thermal camera) and ``percentiles`` (per-frame robust stretch between these
    percentiles of the frame) must be given. Values outside the stretch clip.
    """
    if (value_range is None) == (percentiles is None):
        raise ValueError("give exactly one of value_range and percentiles")
    image = _as_single_channel(image, "intensity image").astype(np.float32)
    if percentiles is not None:
        p_low, p_high = percentiles
        if not 0.0 <= p_low < p_high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
        low, high = (float(v) for v in np.percentile(image, [p_low, p_high]))
        if high <= low:  # a flat frame: nothing to stretch
            high = low + 1.0
    else:
        low, high = value_range
        _check_range(low, high, "intensity")
    gray = np.rint(255.0 * _unit_interval(image, low, high)).astype(np.uint8)
    return _gray3(gray)


def to_reflectance(image: np.ndarray) -> np.ndarray:
    """Integer image to float32 in [0, 1] by its dtype's maximum; float images pass through."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    raise ValueError(f"expected an integer or float image, got {image.dtype}")


def evi_index(nir: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Enhanced Vegetation Index 2.5 (N - R) / (N + 6R - 7.5B + 1) on reflectances in [0, 1].

    Integer inputs are scaled by their dtype's maximum. NaN where the denominator is not
    positive (the index is undefined there, e.g. strongly blue pixels).
    """
    n = to_reflectance(_as_single_channel(nir, "NIR image"))
    rgb_f = to_reflectance(rgb)
    if rgb_f.ndim != 3 or rgb_f.shape[2] != 3 or rgb_f.shape[:2] != n.shape:
        raise ValueError(
            f"EVI needs an HxWx3 RGB image of the NIR size {n.shape}, got {rgb_f.shape}"
        )
    red, blue = rgb_f[:, :, 0], rgb_f[:, :, 2]
    denominator = n + 6.0 * red - 7.5 * blue + 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        index = 2.5 * (n - red) / denominator
    index[~(denominator > 1e-6)] = np.nan
    return index.astype(np.float32)


def evi(
    nir: np.ndarray, rgb: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """EVI image: the index over ``value_range`` to 1..255, undefined pixels 0, 3 channels."""
    _check_range(*value_range, "EVI")
    index = evi_index(nir, rgb)
    x = _unit_interval(index, *value_range)
    valid = np.isfinite(x)
    gray = np.zeros(index.shape, np.uint8)
    gray[valid] = np.rint(1.0 + 254.0 * x[valid]).astype(np.uint8)
    return _gray3(gray)
