"""Organised semantic point cloud (sensor_msgs/PointCloud2) from metric depth and the class mask.

The cloud has height = H and width = W of the depth image and point (v, u) is pixel (v, u), so
it is pixel-aligned with the mask: the Nav2 semantic_segmentation_layer looks up the class of
point ``v * width + u`` in the mask. Invalid depth gives a NaN point (``is_dense = False``) rather
than a missing one, which would break that alignment.

Fields: ``x, y, z`` float32 (metres, optical frame: x right, y down, z forward), ``rgb`` float32
holding the PCL packing ``0x00RRGGBB`` (only when a colour image is given; RViz colours by it),
``label`` uint32 (the class id; PCL's PointXYZL/PointXYZRGBL label type, and usable as an RViz
"Intensity" channel).

Rays: each pixel's viewing direction (x, y, 1) in the optical frame, so that a point is depth z
times its ray. Without distortion they are separable (a column term and a row term); with the
camera_info's distortion (plumb_bob, rational_polynomial, equidistant) OpenCV undistorts every
pixel once per camera_info and image size (:class:`CameraGeometry` caches the table).
"""

from __future__ import annotations

import array
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ssma_ros.data.encodings import CameraIntrinsics

if TYPE_CHECKING:
    from sensor_msgs.msg import CameraInfo, PointCloud2
    from std_msgs.msg import Header

_NATIVE_BIG = sys.byteorder == "big"


class CameraInfoError(ValueError):
    """A camera_info that cannot describe the image: uncalibrated, malformed or mismatched."""


class NoCameraInfo(CameraInfoError):
    """No camera_info has arrived yet."""


def intrinsics_from_camera_info(
    msg: CameraInfo, width: int | None = None, height: int | None = None, matrix: str = "K"
) -> CameraIntrinsics:
    """Read fx, fy, cx, cy from CameraInfo's K (default) or P (rectified).

    P is what depth_image_proc uses. The intrinsics are scaled to an image of `width` x `height`
    when given and different from the camera_info's.

    Scaling follows the pixel-centre convention of cv2.resize and of ROS (pixel u covers
    [u - 0.5, u + 0.5]): c' = (c + 0.5) * s - 0.5, f' = f * s (image_proc's resize scales c by s
    alone, which differs by (s - 1) / 2 pixel). A change of aspect ratio means a crop, which no
    scaling describes: CameraInfoError, as for an uncalibrated camera (zero focal length).
    """
    if matrix not in ("K", "P"):
        raise ValueError(f"matrix must be 'K' or 'P', got {matrix!r}")
    try:
        intrinsics = CameraIntrinsics.from_k(msg.k if matrix == "K" else msg.p)
    except ValueError as exc:
        raise CameraInfoError(f"camera_info {matrix}: {exc} (uncalibrated camera?)") from exc
    if width is None or height is None or (width, height) == (msg.width, msg.height):
        return intrinsics
    if msg.width == 0 or msg.height == 0:
        raise CameraInfoError(
            f"camera_info has zero size {msg.width}x{msg.height}: cannot scale it to "
            f"{width}x{height}"
        )
    sx, sy = width / msg.width, height / msg.height
    if abs(sx - sy) > 0.01 * max(sx, sy):
        raise CameraInfoError(
            f"camera_info is {msg.width}x{msg.height} but the image is {width}x{height}: "
            "different aspect ratio (cropped?), cannot scale the intrinsics"
        )
    return intrinsics.scaled(sx, sy)


@dataclass(frozen=True)
class Rays:
    """Viewing rays of an H x W image: the point of pixel (v, u) at depth z is z * (x, y, 1).

    `x` and `y` are float32 and broadcast to (H, W): (1, W) and (H, 1) for a pinhole camera,
    (H, W) each once distortion is undone.
    """

    x: np.ndarray
    y: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y.shape[0], self.x.shape[1])

    @classmethod
    def pinhole(cls, cam: CameraIntrinsics, width: int, height: int) -> Rays:
        """Return the rays of a pinhole image: (u - cx) / fx per column, (v - cy) / fy per row."""
        x = (np.arange(width, dtype=np.float32) - np.float32(cam.cx)) / np.float32(cam.fx)
        y = (np.arange(height, dtype=np.float32) - np.float32(cam.cy)) / np.float32(cam.fy)
        return cls(x[None, :], y[:, None])


#: distortion_model -> the numbers of coefficients OpenCV takes for it.
DISTORTION_MODELS = {
    "plumb_bob": (4, 5),
    "rational_polynomial": (8, 12, 14),
    "equidistant": (4,),
}
#: Iterations of OpenCV's undistortion (its default of 5 leaves ~0.7 px at the corners of a
#: strongly distorted 640x480 image; 100 converge to 1e-12 px).
_UNDISTORT = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


def distortion(msg: Any) -> tuple[str, np.ndarray] | None:
    """Return the camera_info's (distortion_model, D), None when D is empty or all zero.

    CameraInfoError for a model OpenCV does not take, a D of the wrong length for it, or a
    non-finite coefficient.
    """
    d = np.asarray(msg.d, dtype=np.float64).ravel()
    if not np.isfinite(d).all():
        raise CameraInfoError(f"camera_info D has non-finite coefficients {d.tolist()}")
    if d.size == 0 or not d.any():
        return None
    model = msg.distortion_model
    if model not in DISTORTION_MODELS:
        raise CameraInfoError(
            f"camera_info distortion_model {model!r} is not supported for ~/cloud "
            f"(supported: {', '.join(DISTORTION_MODELS)}; or publish rectified images with "
            "an all-zero D)"
        )
    if d.size not in DISTORTION_MODELS[model]:
        raise CameraInfoError(
            f"camera_info {model} needs {' or '.join(map(str, DISTORTION_MODELS[model]))} "
            f"coefficients in D, got {d.size}"
        )
    return model, d


def camera_rays(msg: Any, width: int, height: int) -> Rays:
    """Return the rays of a `width` x `height` image from the camera_info's K and D.

    With distortion, every pixel is undistorted once (OpenCV's undistortPoints, or its fisheye
    version for equidistant) at the camera_info's resolution: pixel u of an image resized by s
    is pixel (u + 0.5) / s - 0.5 there. CameraInfoError for a camera_info that cannot
    describe the image (see :func:`intrinsics_from_camera_info` and :func:`distortion`).
    """
    cam = intrinsics_from_camera_info(msg, width, height)
    model_d = distortion(msg)
    if model_d is None:
        return Rays.pinhole(cam, width, height)
    model, d = model_d
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    sx = 1.0 if msg.width in (0, width) else msg.width / width
    sy = 1.0 if msg.height in (0, height) else msg.height / height
    u = (np.arange(width, dtype=np.float64) + 0.5) * sx - 0.5
    v = (np.arange(height, dtype=np.float64) + 0.5) * sy - 0.5
    pixels = np.stack(np.meshgrid(u, v), axis=-1).reshape(-1, 1, 2)
    eye = np.eye(3)
    if model == "equidistant":
        normalised = cv2.fisheye.undistortPoints(pixels, k, d, R=eye, P=eye, criteria=_UNDISTORT)
    else:
        normalised = cv2.undistortPoints(pixels, k, d, None, eye, eye, _UNDISTORT)
    table = normalised.reshape(height, width, 2).astype(np.float32)
    if not np.isfinite(table).all():
        raise CameraInfoError(f"camera_info {model} D {d.tolist()} cannot be undone (diverges)")
    return Rays(np.ascontiguousarray(table[:, :, 0]), np.ascontiguousarray(table[:, :, 1]))


class CameraGeometry:
    """The newest camera_info, and what the node needs from it, computed once per change.

    :meth:`update` with every camera_info message (cheap: it only keeps it). :meth:`rays` and
    :meth:`intrinsics` for an image size return cached results while the camera_info's
    content stays the same (drivers republish an identical one with every frame), and
    recompute when it changes. Both raise CameraInfoError: "no camera_info received yet on
    <topic>" only while none came, otherwise what is wrong with the one that came. Thread-safe.
    """

    def __init__(self, topic: str = "camera_info") -> None:
        self.topic = topic
        self._lock = threading.Lock()
        self._msg: Any = None
        self._key: tuple | None = None  # content of the camera_info and image size cached
        # Each result (a value or the CameraInfoError it raised) for `_key`, made when first
        # asked: a distortion the cloud cannot undo must not fail the intrinsics HHA needs.
        self._results: dict[str, Any] = {}

    def update(self, msg: Any) -> None:
        """Keep the newest camera_info."""
        with self._lock:
            self._msg = msg

    def intrinsics(self, width: int, height: int) -> CameraIntrinsics:
        """Return the pinhole intrinsics (K) scaled to a `width` x `height` image."""
        return self._get("intrinsics", intrinsics_from_camera_info, width, height)

    def rays(self, width: int, height: int) -> Rays:
        """Return the viewing rays of a `width` x `height` image, distortion undone."""
        return self._get("rays", camera_rays, width, height)

    def _get(self, what: str, make, width: int, height: int) -> Any:
        with self._lock:
            msg = self._msg
            if msg is None:
                raise NoCameraInfo(f"no camera_info received yet on {self.topic}")
            try:
                key = _content(msg, width, height)
            except (TypeError, ValueError) as exc:  # fields of the wrong type or size
                raise CameraInfoError(f"malformed camera_info: {exc}") from exc
            if key != self._key:
                self._key, self._results = key, {}
            if what not in self._results:
                try:
                    self._results[what] = make(msg, width, height)
                except CameraInfoError as exc:
                    self._results[what] = exc
                except (TypeError, ValueError) as exc:  # fields of the wrong type or size
                    self._results[what] = CameraInfoError(f"malformed camera_info: {exc}")
            result = self._results[what]
            if isinstance(result, CameraInfoError):
                raise result
            return result


def _content(msg: Any, width: int, height: int) -> tuple:
    """Return what the geometry depends on, hashable and compared by value."""
    return (
        width,
        height,
        int(msg.width),
        int(msg.height),
        tuple(np.asarray(msg.k, dtype=np.float64).ravel()),
        str(msg.distortion_model),
        tuple(np.asarray(msg.d, dtype=np.float64).ravel()),
    )


def cloud_dtype(with_rgb: bool) -> np.dtype:
    """The packed point layout: x, y, z float32, [rgb float32], label uint32."""
    names = ["x", "y", "z"] + (["rgb"] if with_rgb else []) + ["label"]
    formats = [np.float32] * (4 if with_rgb else 3) + [np.uint32]
    return np.dtype({"names": names, "formats": formats})


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> H x W float32 carrying the bits 0x00RRGGBB (PCL's rgb field)."""
    packed = rgb[:, :, 0].astype(np.uint32)
    # In place: ~3x faster than building (r << 16) | (g << 8) | b from temporaries.
    packed <<= 8
    packed |= rgb[:, :, 1]
    packed <<= 8
    packed |= rgb[:, :, 2]
    return packed.view(np.float32)


# sensor_msgs/PointField datatype constants (fixed by the message definition).
_NP_TO_FIELD = {
    np.dtype(np.int8): 1,
    np.dtype(np.uint8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.uint16): 4,
    np.dtype(np.int32): 5,
    np.dtype(np.uint32): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.float64): 8,
}


def semantic_cloud(
    header: Header,
    depth_m: np.ndarray,
    rays: Rays,
    mask: np.ndarray,
    rgb: np.ndarray | None = None,
) -> PointCloud2:
    """An organised PointCloud2, pixel-aligned with `mask`, from depth in metres.

    `depth_m` is float32 H x W metres (``ssma_ros.data.encodings.depth_to_metres`` makes it);
    anything but a finite positive value is invalid. `rays` are those of the depth image
    (:meth:`CameraGeometry.rays`, or :meth:`Rays.pinhole`). `rgb` (H x W x 3 uint8), if given,
    adds the rgb field.
    """
    if depth_m.ndim != 2 or depth_m.dtype != np.float32:
        raise ValueError(
            f"depth must be float32 H x W metres, got {depth_m.dtype} {depth_m.shape}"
        )
    height, width = depth_m.shape
    if mask.dtype.kind not in "ui":
        raise ValueError(f"mask must hold integer class ids, got {mask.dtype}")
    if mask.shape != depth_m.shape:
        raise ValueError(f"mask {mask.shape} and depth {depth_m.shape} sizes differ")
    if rays.shape != depth_m.shape:
        raise ValueError(f"rays {rays.shape} and depth {depth_m.shape} sizes differ")
    if rgb is not None and rgb.shape != (height, width, 3):
        raise ValueError(f"rgb must be {height}x{width}x3 like the depth, got {rgb.shape}")

    points = np.empty((height, width), dtype=cloud_dtype(rgb is not None))
    # Invalid depth (anything but a positive finite value) becomes NaN in all three coordinates.
    with np.errstate(invalid="ignore"):
        z = np.where(np.isfinite(depth_m) & (depth_m > 0), depth_m, np.float32(np.nan))
    points["x"] = z * rays.x
    points["y"] = z * rays.y
    points["z"] = z
    if rgb is not None:
        points["rgb"] = pack_rgb(rgb)
    points["label"] = mask

    from sensor_msgs.msg import (
        PointCloud2,
        PointField,
    )  # the only ROS import: building the message

    fields = [
        PointField(
            name=name,
            offset=int(points.dtype.fields[name][1]),
            datatype=_NP_TO_FIELD[points.dtype.fields[name][0]],
            count=1,
        )
        for name in points.dtype.names
    ]
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = height, width
    msg.fields = fields
    msg.is_bigendian = _NATIVE_BIG
    msg.point_step = points.dtype.itemsize
    msg.row_step = points.dtype.itemsize * width
    msg.is_dense = False
    data = array.array("B")
    data.frombytes(points.data.cast("B"))  # one copy, no per-byte Python work
    msg.data = data
    return msg
