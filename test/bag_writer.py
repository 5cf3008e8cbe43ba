"""Write rosbag2 files (sqlite3 or MCAP) with rosbags' writer, for the from-bag tests.

Image bytes are laid out here from the arrays (row padding and byte order included), not with
the codec under test.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.LATEST)
T = TYPESTORE.types
STORAGE = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
DTYPES = {"rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4)}
DTYPES |= {"mono8": ("u1", 1), "mono16": ("u2", 1), "16UC1": ("u2", 1), "32FC1": ("f4", 1)}


def header(stamp_ns: int, frame_id: str = "camera") -> Any:
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def image(
    array: np.ndarray, encoding: str, stamp_ns: int, big_endian: bool = False, pad: int = 0
) -> Any:
    """Build a sensor_msgs/Image of `array` (H x W or H x W x C, in the encoding order)."""
    kind, channels = DTYPES[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if big_endian else "<")
    h, w = array.shape[:2]
    rows = np.ascontiguousarray(array.astype(dtype)).reshape(h, -1).view(np.uint8)
    data = np.zeros((h, rows.shape[1] + pad), np.uint8)
    data[:, : rows.shape[1]] = rows
    return T["sensor_msgs/msg/Image"](
        header=header(stamp_ns),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=rows.shape[1] + pad,
        data=data.reshape(-1),
    )


def compressed(array_bgr: np.ndarray, fmt: str, stamp_ns: int) -> Any:
    """Build a sensor_msgs/CompressedImage ("jpeg" or "png") of a BGR (or mono) array."""
    ok, buf = cv2.imencode(f".{'jpg' if fmt == 'jpeg' else fmt}", array_bgr)
    assert ok
    return T["sensor_msgs/msg/CompressedImage"](
        header=header(stamp_ns), format=f"bgr8; {fmt} compressed bgr8", data=buf.reshape(-1)
    )


def compressed_depth(depth_mm: np.ndarray, stamp_ns: int) -> Any:
    """image_transport's compressedDepth of 16UC1 millimetres: 12-byte header + 16-bit PNG."""
    ok, buf = cv2.imencode(".png", depth_mm.astype(np.uint16))
    assert ok
    data = struct.pack("<iff", 0, 0.0, 0.0) + buf.tobytes()
    return T["sensor_msgs/msg/CompressedImage"](
        header=header(stamp_ns),
        format="16UC1; compressedDepth png",
        data=np.frombuffer(data, np.uint8),
    )


def camera_info(stamp_ns: int, width: int, height: int, fx: float = 50.0) -> Any:
    k = np.array([fx, 0, width / 2, 0, fx, height / 2, 0, 0, 1], np.float64)
    p = np.array([fx, 0, width / 2, 0, 0, fx, height / 2, 0, 0, 0, 1, 0], np.float64)
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k,
        r=np.eye(3).reshape(-1),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def write_bag(path: Path, storage: str, messages: list[tuple[str, int, Any]]) -> Path:
    """Write (topic, receive time ns, message) in receive-time order; one connection per topic."""
    with Writer(path, version=9, storage_plugin=STORAGE[storage]) as writer:
        connections = {}
        for topic, t, msg in sorted(messages, key=lambda m: m[1]):
            if topic not in connections:
                connections[topic] = writer.add_connection(
                    topic, msg.__msgtype__, typestore=TYPESTORE
                )
            writer.write(connections[topic], t, TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
    return path
