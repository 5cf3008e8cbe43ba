"""Strict conversion between sensor_msgs/Image and numpy arrays.

The numpy codec is the fallback for machines without ``cv_bridge`` (a pip-only install) and the
reference the ``cv_bridge`` path is checked against. It honours ``step`` (rows may be padded) and
``is_bigendian`` (multi-byte data is swapped to native order), and refuses messages whose sizes
do not add up, with an :class:`ImageFormatError` that names the problem: a truncated image
decoded anyway is a silent garbage frame.

Array layout (identical to ``cv_bridge.CvBridge().imgmsg_to_cv2(msg, "passthrough")``):
H x W for one channel, H x W x C otherwise, native byte order, C-contiguous, own memory.
"""

from __future__ import annotations

import array as pyarray
import importlib
import re
import sys
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

_NATIVE_BIG = sys.byteorder == "big"

# Named encodings of sensor_msgs/image_encodings.hpp: (dtype, channels).
_NAMED: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
}
# OpenCV-style typed encodings, e.g. 16UC1, 32FC1, 8UC3 (1 to 4 channels).
_TYPED = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$")
_DEPTHS = {
    "8U": np.uint8,
    "8S": np.int8,
    "16U": np.uint16,
    "16S": np.int16,
    "32S": np.int32,
    "32F": np.float32,
    "64F": np.float64,
}


class ImageFormatError(ValueError):
    """An Image message (or array) that cannot be converted as it claims to be."""


@dataclass(frozen=True)
class PixelFormat:
    """What one pixel of an encoding is made of."""

    dtype: np.dtype  # native byte order
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


def pixel_format(encoding: str) -> PixelFormat:
    """The pixel format of a supported encoding; ImageFormatError for any other."""
    if encoding in _NAMED:
        dtype, channels = _NAMED[encoding]
        return PixelFormat(dtype, channels)
    typed = _TYPED.match(encoding)
    if typed is None:
        supported = ", ".join(list(_NAMED) + ["{8U,8S,16U,16S,32S,32F,64F}C{1..4}"])
        raise ImageFormatError(f"unsupported encoding {encoding!r} (supported: {supported})")
    return PixelFormat(np.dtype(_DEPTHS[typed.group(1)]), int(typed.group(2)))


def validate_image(msg: Image) -> PixelFormat:
    """Check that an Image message is self-consistent; return its pixel format.

    Raises ImageFormatError naming the first problem found.
    """
    fmt = pixel_format(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageFormatError(f"empty image: {width}x{height} ({msg.encoding})")
    row_bytes = width * fmt.bytes_per_pixel
    if step < row_bytes:
        raise ImageFormatError(
            f"step {step} < width {width} x {fmt.bytes_per_pixel} bytes per pixel = {row_bytes} "
            f"({msg.encoding})"
        )
    expected = step * height
    size = len(msg.data)
    if size < expected:
        raise ImageFormatError(
            f"truncated data: {size} bytes < step {step} x height {height} = {expected} "
            f"({width}x{height} {msg.encoding})"
        )
    if size > expected:
        raise ImageFormatError(
            f"inconsistent data: {size} bytes > step {step} x height {height} = {expected} "
            f"({width}x{height} {msg.encoding})"
        )
    return fmt


def image_to_numpy(msg: Image) -> np.ndarray:
    """Decode an Image message into a new native, C-contiguous array (see module doc)."""
    fmt = validate_image(msg)
    height, width = int(msg.height), int(msg.width)
    wire = fmt.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    # A strided view over the message bytes (zero-copy); padding bytes are skipped by the strides.
    if fmt.channels == 1:
        shape: tuple[int, ...] = (height, width)
        strides: tuple[int, ...] = (int(msg.step), fmt.dtype.itemsize)
    else:
        shape = (height, width, fmt.channels)
        strides = (int(msg.step), fmt.bytes_per_pixel, fmt.dtype.itemsize)
    view = np.ndarray(
        shape=shape, dtype=wire, buffer=np.frombuffer(msg.data, dtype=np.uint8), strides=strides
    )
    # One copy: drops padding, fixes byte order and alignment, detaches from the message.
    return view.astype(fmt.dtype, order="C", copy=True)


def _check_array(array: np.ndarray, encoding: str) -> tuple[np.ndarray, PixelFormat]:
    """The array as H x W x C for `encoding`, or ImageFormatError if it does not fit."""
    fmt = pixel_format(encoding)
    if array.dtype.newbyteorder("=") != fmt.dtype:
        raise ImageFormatError(f"{encoding} needs dtype {fmt.dtype}, got {array.dtype}")
    if array.ndim == 2 and fmt.channels == 1:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != fmt.channels:
        raise ImageFormatError(
            f"{encoding} needs shape HxW{'' if fmt.channels == 1 else 'x%d' % fmt.channels}, "
            f"got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFormatError(f"empty image: shape {array.shape}")
    return array, fmt


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Encode an array as an unpadded Image in native byte order (as cv_bridge does)."""
    hwc, fmt = _check_array(array, encoding)
    native = np.ascontiguousarray(hwc, dtype=fmt.dtype)
    data = pyarray.array("B")
    data.frombytes(native.data.cast("B"))  # one copy, no per-byte Python work
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(native.shape[0]), int(native.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_BIG)
    msg.step = int(native.shape[1]) * fmt.bytes_per_pixel
    msg.data = data
    return msg


# encoding -> (channels expected, OpenCV conversion to RGB or None when already RGB)
_TO_RGB = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, cv2.COLOR_GRAY2RGB),
    "mono16": (1, cv2.COLOR_GRAY2RGB),
    "16UC1": (1, cv2.COLOR_GRAY2RGB),
}


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Any colour or mono image as an H x W x 3 RGB uint8 array (the network's colour input).

    `array` itself when it is one already (the decoders return fresh arrays, so no copy is
    needed), a new array otherwise.

    bgr is reversed, alpha dropped, mono replicated; mono16 is scaled by 255/65535 with rounding
    (as cv_bridge does). Typed multi-channel encodings (8UC3, ...) are refused: their channel
    order is unknown. OpenCV does the channel shuffles (a numpy [..., ::-1] copy is ~50x slower).
    """
    if encoding not in _TO_RGB:
        raise ImageFormatError(f"cannot convert {encoding!r} to rgb8 (colour or mono only)")
    channels, code = _TO_RGB[encoding]
    shape_ok = (
        array.ndim == 2 if channels == 1 else (array.ndim == 3 and array.shape[2] == channels)
    )
    if not shape_ok:
        raise ImageFormatError(f"{encoding} array has shape {array.shape}")
    expected = pixel_format(encoding).dtype
    if array.dtype.newbyteorder("=") != expected:
        raise ImageFormatError(f"{encoding} needs dtype {expected}, got {array.dtype}")
    if expected == np.uint16:
        # (x + 128) // 257 == round(x / 257) for every uint16 (no ties occur).
        array = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    array = np.ascontiguousarray(array)
    return array if code is None else cv2.cvtColor(array, code)


class ImageConverter(Protocol):
    """What the node uses to convert images, whichever implementation is behind it."""

    name: str

    def image_to_numpy(self, msg: Image) -> np.ndarray: ...

    def numpy_to_image(
        self, array: np.ndarray, encoding: str, header: Header | None = None
    ) -> Image: ...


class NumpyConverter:
    """The numpy codec of this module."""

    name = "numpy"

    def image_to_numpy(self, msg: Image) -> np.ndarray:
        return image_to_numpy(msg)

    def numpy_to_image(
        self, array: np.ndarray, encoding: str, header: Header | None = None
    ) -> Image:
        return numpy_to_image(array, encoding, header)


class CvBridgeConverter:
    """cv_bridge behind the same interface and the same checks.

    ``imgmsg_to_cv2(msg, desired_encoding="passthrough")`` returns the same layout as the numpy
    codec (H x W or H x W x C); this wrapper validates the message first (cv_bridge's Python side
    does not compare len(data) with step x height, and mis-reads a step that is not a whole
    number of pixels, which goes to the numpy codec) and copies the result to native order and
    C-contiguity (cv_bridge returns a non-native dtype for byte-swapped data, and a view of
    ``msg.data`` for unpadded rows), so both converters return equal, independent arrays.
    """

    name = "cv_bridge"

    def __init__(self, cv_bridge_module: Any) -> None:
        self._bridge = cv_bridge_module.CvBridge()

    def image_to_numpy(self, msg: Image) -> np.ndarray:
        fmt = validate_image(msg)
        if msg.step % fmt.bytes_per_pixel:
            # cv_bridge views rows as step // bytes_per_pixel whole pixels: rows would shear.
            return image_to_numpy(msg)
        out = self._bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        # Always copy: for unpadded rows cv_bridge returns a view of msg.data.
        return np.array(out, dtype=fmt.dtype, order="C", copy=True)

    def numpy_to_image(
        self, array: np.ndarray, encoding: str, header: Header | None = None
    ) -> Image:
        _, fmt = _check_array(array, encoding)
        # cv_bridge writes the raw bytes and labels them native: hand it native data.
        native = np.ascontiguousarray(array, dtype=fmt.dtype)
        return self._bridge.cv2_to_imgmsg(native, encoding=encoding, header=header)


def make_converter(prefer: str = "auto") -> ImageConverter:
    """cv_bridge when importable and `prefer` is "auto" or "cv_bridge", else the numpy codec.

    prefer="numpy" never imports cv_bridge; prefer="cv_bridge" raises ImportError with a hint
    when it is missing.
    """
    if prefer not in ("auto", "cv_bridge", "numpy"):
        raise ValueError(f"prefer must be 'auto', 'cv_bridge' or 'numpy', got {prefer!r}")
    if prefer == "numpy":
        return NumpyConverter()
    try:
        module = importlib.import_module("cv_bridge")
    except ImportError as exc:
        if prefer == "cv_bridge":
            raise ImportError(
                "image converter 'cv_bridge' requested but cv_bridge is not importable "
                "(install ros-$ROS_DISTRO-cv-bridge, or use 'auto'/'numpy')"
            ) from exc
        return NumpyConverter()
    return CvBridgeConverter(module)
