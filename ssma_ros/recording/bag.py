"""rosbag2 (sqlite3 or MCAP) -> a dataset folder, without ROS: `ssma-dataset from-bag`.

Messages are read with the `rosbags` library in the order the bag stores them (receive time, as
the node's subscriptions would have seen them), paired by the node's own built-in synchroniser
(`serve.sync.ApproximateTimeSync`, the same pairing as message_filters) with the node's slop and
queue size, and decoded by the node's own decoder (`serve.decode.FrameDecoder` over its codec):
every encoding the node accepts (rgb: rgb8, bgr8, rgba8, bgra8, mono8; aux: depth 16UC1, 32FC1
or infrared mono8, mono16), and sensor_msgs/CompressedImage (jpeg/png, and image_transport's
compressedDepth png), decompressed first. Pairs the node would not fuse (undecodable, aux not
registered to rgb, depth without a valid pixel) are skipped and counted. The folder:

    OUT/rgb/000000.png        8-bit colour
    OUT/aux/000000.png        depth: 16-bit millimetres (0 = invalid); infrared: the raw mono8 or
                              mono16 values
    OUT/index.csv             name, rgb and aux stamps (ns), encodings, per pair
    OUT/dataset.yaml          what the aux images are (kind, encoding), the bag and topics
    OUT/camera_info.yaml      the first camera_info (camera_calibration_parsers layout), if asked

`labels/` (class-id PNGs) and a classes YAML are added by the user; `data.readers.folder` reads
the result.
"""

from __future__ import annotations

import csv
import struct
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import yaml

from ssma_ros.data.encodings import DEPTH_ENCODINGS, INTENSITY_ENCODINGS, depth_to_metres
from ssma_ros.serve.codec import ImageFormatError
from ssma_ros.serve.decode import FrameDecoder
from ssma_ros.serve.sync import ApproximateTimeSync, stamp_ns

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
INDEX = "index.csv"
META = "dataset.yaml"
INDEX_HEADER = ["name", "rgb_stamp_ns", "aux_stamp_ns", "rgb_encoding", "aux_encoding"]
#: Node defaults (config/segment.yaml): the most two stamps of a pair may differ, queue per input.
DEFAULT_SLOP = 0.05
DEFAULT_QUEUE = 10
#: image_transport's compressedDepth header: int32 format, float32 depthQuantA, depthQuantB.
_DEPTH_HEADER = struct.Struct("<iff")


class BagError(ValueError):
    """A bag that cannot be turned into a dataset; the message names the file."""


@dataclass
class Extraction:
    """What `extract` did."""

    out: Path
    messages: dict[str, int]  # read per role (rgb, aux, camera_info)
    pairs: int = 0  # formed by the synchroniser
    written: int = 0  # pairs written (every N-th pair, minus bad ones)
    skipped: Counter = field(default_factory=Counter)  # bad pairs by reason
    first_errors: dict[str, str] = field(default_factory=dict)  # one example per reason
    aux_kind: str | None = None  # "depth" or "intensity"

    def summary(self) -> str:
        text = (
            f"{self.written} pairs written to {self.out} ({self.pairs} paired from "
            f"{self.messages.get('rgb', 0)} rgb and {self.messages.get('aux', 0)} aux messages)"
        )
        for reason, count in sorted(self.skipped.items()):
            text += f"; skipped {count} {reason} (first: {self.first_errors[reason]})"
        return text


#: The aux encodings a dataset may hold: a depth or an infrared model's (serve.decode).
AUX_ENCODINGS = DEPTH_ENCODINGS + INTENSITY_ENCODINGS


def as_image(msg: Any, msgtype: str) -> Any:
    """Give a message as a (duck-typed) sensor_msgs/Image, for the node's decoder.

    An Image is itself; a CompressedImage is decompressed: jpeg/png colour as bgr8, png grey as
    mono8/mono16, compressedDepth as 16UC1/32FC1.
    """
    if msgtype != COMPRESSED:
        return msg
    fmt = str(msg.format)
    if "compressedDepth" in fmt:
        array, encoding = _compressed_depth(msg)
    else:
        array = _imdecode(msg, cv2.IMREAD_UNCHANGED)
        if array.ndim == 3 and array.shape[2] == 4:
            array = cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
        encoding = "bgr8" if array.ndim == 3 else "mono8" if array.dtype == np.uint8 else "mono16"
    array = np.ascontiguousarray(array)
    return SimpleNamespace(
        header=msg.header,
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=int(sys.byteorder == "big"),
        step=array.shape[1] * array.itemsize * (array.shape[2] if array.ndim == 3 else 1),
        data=array.reshape(-1).view(np.uint8),
        format=fmt,
    )


def aux_png(aux: np.ndarray, encoding: str) -> np.ndarray:
    """Give the array stored in aux/*.png.

    Depth as uint16 millimetres (0 = invalid or beyond 65.535 m), infrared as it came.
    """
    if encoding == "16UC1":
        return aux
    if encoding == "32FC1":
        mm = np.round(np.nan_to_num(depth_to_metres(aux, encoding), nan=0.0) * 1000.0)
        mm[mm > np.iinfo(np.uint16).max] = 0
        return mm.astype(np.uint16)
    return aux


def _imdecode(msg: Any, flags: int) -> np.ndarray:
    data = np.frombuffer(bytes(msg.data), np.uint8)
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ImageFormatError(f"cannot decode compressed image (format {msg.format!r})")
    return image


def _compressed_depth(msg: Any) -> tuple[np.ndarray, str]:
    """Decode image_transport's compressedDepth: a 12-byte header, then a 16-bit PNG.

    16UC1: the millimetres; 32FC1: quantised inverse depth, v = A / depth + B.
    """
    raw = bytes(msg.data)
    if len(raw) <= _DEPTH_HEADER.size:
        raise ImageFormatError("compressedDepth message too short for its header")
    _, quant_a, quant_b = _DEPTH_HEADER.unpack_from(raw)
    image = cv2.imdecode(np.frombuffer(raw[_DEPTH_HEADER.size :], np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16 or image.ndim != 2:
        raise ImageFormatError(f"compressedDepth payload is not a 16-bit PNG ({msg.format!r})")
    if str(msg.format).split(";")[0].strip() == "32FC1":
        with np.errstate(divide="ignore"):
            depth = np.where(image > 0, quant_a / (image.astype(np.float32) - quant_b), np.nan)
        return depth.astype(np.float32), "32FC1"
    return image, "16UC1"


def camera_info_yaml(msg: Any, name: str = "camera") -> dict[str, Any]:
    """Lay out a CameraInfo message as camera_calibration_parsers' YAML does."""

    def matrix(values: Any, rows: int, cols: int) -> dict[str, Any]:
        return {"rows": rows, "cols": cols, "data": [float(v) for v in values]}

    d = [float(v) for v in msg.d]
    return {
        "image_width": int(msg.width),
        "image_height": int(msg.height),
        "camera_name": name,
        "frame_id": str(msg.header.frame_id),
        "camera_matrix": matrix(msg.k, 3, 3),
        "distortion_model": str(msg.distortion_model),
        "distortion_coefficients": matrix(d, 1, len(d)),
        "rectification_matrix": matrix(msg.r, 3, 3),
        "projection_matrix": matrix(msg.p, 3, 4),
    }


def _open(bag: Path) -> Any:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    if not bag.exists():
        raise BagError(f"{bag}: no such bag (a rosbag2 folder, .db3 or .mcap file)")
    # Bags without message definitions (older rosbag2) are read with the newest standard types.
    return AnyReader([bag], default_typestore=get_typestore(Stores.LATEST))


def extract(
    bag: str | Path,
    rgb_topic: str,
    aux_topic: str,
    out: str | Path,
    camera_info_topic: str | None = None,
    every: int = 1,
    slop: float = DEFAULT_SLOP,
    queue_size: int = DEFAULT_QUEUE,
    overwrite: bool = False,
    progress: bool = True,
) -> Extraction:
    """Write the rgb/aux pairs of `bag` (every `every`-th pair) as a dataset folder `out`."""
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError
    from tqdm import tqdm

    bag, out = Path(bag), Path(out)
    if every < 1:
        raise BagError(f"--every must be >= 1, got {every}")
    if (out / INDEX).exists():
        if not overwrite:
            raise BagError(f"{out}: already holds a dataset ({INDEX}); choose another --out")
        if (out / "labels").exists():
            raise BagError(
                f"{out}: has labels/, which new frames would not match; not overwritten"
            )
        for old in [*(out / "rgb").glob("*.png"), *(out / "aux").glob("*.png")]:
            old.unlink()  # frame names restart at 000000
    roles = {"rgb": rgb_topic, "aux": aux_topic}
    if camera_info_topic:
        roles["camera_info"] = camera_info_topic
    try:
        reader = _open(bag)
        reader.open()
    except (AnyReaderError, ReaderError, OSError) as err:
        raise BagError(f"{bag}: not a readable rosbag2 ({err})") from err
    try:
        connections = _connections(bag, reader, roles)
        result = Extraction(out, dict.fromkeys(roles, 0))
        for sub in ("rgb", "aux"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        writer = _PairWriter(out, every, result)
        sync = ApproximateTimeSync(2, queue_size, slop, writer.write)
        types = {role: conns[0].msgtype for role, conns in connections.items()}
        writer.types = types
        role_of = {c.id: role for role, conns in connections.items() for c in conns}
        total = sum(c.msgcount for conns in connections.values() for c in conns)
        camera_info = None
        selected = [c for conns in connections.values() for c in conns]
        bar = tqdm(total=total, desc=f"from-bag {bag.name}", unit="msg", disable=not progress)
        try:
            for connection, _, raw in _messages(bag, reader, selected):
                role = role_of[connection.id]
                result.messages[role] += 1
                bar.update(1)
                msg = reader.deserialize(raw, connection.msgtype)
                if role == "camera_info":
                    camera_info = camera_info or msg
                else:
                    sync.add(0 if role == "rgb" else 1, stamp_ns(msg), msg)
        finally:
            bar.close()
            writer.close()
    finally:
        reader.close()
    if camera_info_topic and camera_info is None:
        raise BagError(f"{bag}: topic {camera_info_topic} holds no message")
    if camera_info is not None:
        (out / "camera_info.yaml").write_text(
            yaml.safe_dump(camera_info_yaml(camera_info), sort_keys=False)
        )
    meta = {
        "source": {
            "bag": str(bag),
            "rgb_topic": rgb_topic,
            "aux_topic": aux_topic,
            "camera_info_topic": camera_info_topic,
            "slop": slop,
            "queue_size": queue_size,
            "every": every,
        },
        "aux": {"kind": result.aux_kind, "encoding": writer.stored_encoding},
        "pairs": result.written,
    }
    (out / META).write_text(yaml.safe_dump(meta, sort_keys=False))
    if result.pairs == 0:
        raise BagError(
            f"{bag}: no rgb/aux pair within slop {slop} s on {rgb_topic} and {aux_topic} "
            "(raise --slop?)"
        )
    if result.written == 0:
        raise BagError(f"{bag}: no usable pair: {result.summary()}")
    return result


def _connections(bag: Path, reader: Any, roles: dict[str, str]) -> dict[str, list[Any]]:
    allowed = {
        "rgb": (IMAGE, COMPRESSED),
        "aux": (IMAGE, COMPRESSED),
        "camera_info": (CAMERA_INFO,),
    }
    found: dict[str, list[Any]] = {}
    for role, topic in roles.items():
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            images = sorted({c.topic for c in reader.connections if c.msgtype in allowed[role]})
            raise BagError(
                f"{bag}: no topic {topic} (--{role.replace('_', '-')}); "
                f"its {'/'.join(t.rsplit('/', 1)[1] for t in allowed[role])} topics: {images}"
            )
        types = {c.msgtype for c in conns}
        if not types <= set(allowed[role]) or len(types) > 1:
            raise BagError(
                f"{bag}: topic {topic} holds {sorted(types)}, --{role.replace('_', '-')} "
                f"needs one of {list(allowed[role])}"
            )
        found[role] = conns
    return found


def _messages(bag: Path, reader: Any, connections: list[Any]) -> Iterator[tuple[Any, int, bytes]]:
    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    try:
        yield from reader.messages(connections=connections)
    except (AnyReaderError, ReaderError) as err:
        raise BagError(f"{bag}: cannot read its messages ({err})") from err


class _PairWriter:
    """The synchroniser's callback: decodes every `every`-th pair and writes its PNGs and row."""

    def __init__(self, out: Path, every: int, result: Extraction) -> None:
        self.out, self.every, self.result = out, every, result
        self.types: dict[str, str] = {}
        # The node's decoder, for a model of either aux kind.
        self.decoder = FrameDecoder("depth or infrared", AUX_ENCODINGS)
        self.stored_encoding: str | None = None  # of aux/*.png: 16UC1, mono8 or mono16
        self._index = (out / INDEX).open("w", newline="")
        self._csv = csv.writer(self._index)
        self._csv.writerow(INDEX_HEADER)

    def write(self, rgb_msg: Any, aux_msg: Any) -> None:
        result = self.result
        result.pairs += 1
        if (result.pairs - 1) % self.every:
            return
        try:
            decoded = self.decoder.decode(
                as_image(rgb_msg, self.types["rgb"]), as_image(aux_msg, self.types["aux"])
            )
        except ImageFormatError as err:  # a compressed image that does not decompress
            return self._skip("bad_image", str(err))
        if decoded.problem is not None or decoded.aux is None:
            # As the node: undecodable, unregistered or all-invalid aux is not a fused frame.
            problem = decoded.problem
            return self._skip(problem.counter, problem.message)
        rgb, aux, encoding = decoded.rgb, decoded.aux, decoded.aux_encoding
        kind = "depth" if encoding in DEPTH_ENCODINGS else "intensity"
        stored = aux_png(aux, encoding)
        stored_encoding = "16UC1" if kind == "depth" else encoding
        if self.stored_encoding not in (None, stored_encoding):
            return self._skip(
                "encoding_change", f"aux {encoding} after {self.stored_encoding} frames"
            )
        self.stored_encoding, result.aux_kind = stored_encoding, kind
        name = f"{result.written:06d}"
        cv2.imwrite(str(self.out / "rgb" / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(self.out / "aux" / f"{name}.png"), stored)
        self._csv.writerow(
            [name, stamp_ns(rgb_msg), stamp_ns(aux_msg), _encoding(rgb_msg), encoding]
        )
        result.written += 1

    def _skip(self, reason: str, message: str) -> None:
        self.result.skipped[reason] += 1
        self.result.first_errors.setdefault(reason, message)

    def close(self) -> None:
        self._index.close()


def _encoding(msg: Any) -> str:
    return str(getattr(msg, "encoding", None) or msg.format)
