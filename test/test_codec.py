"""The numpy Image codec: round trips, step padding, byte order, rejection, cv_bridge switch."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ssma_ros.serve import codec
from ssma_ros.serve.codec import ImageFormatError, image_to_numpy, numpy_to_image, to_rgb8

ENCODINGS = {  # encoding: (dtype, channels), written out independently of the codec's tables
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}


def random_array(rng: np.random.Generator, encoding: str, height: int, width: int) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        values = rng.standard_normal(shape).astype(dtype) * 1e3
        values.flat[:: max(1, values.size // 3)] = np.nan  # NaN is valid depth data
        return values
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def hand_made_image(array: np.ndarray, encoding: str, pad: int, big_endian: bool) -> Image:
    """An Image built without the codec: padded rows (garbage padding), chosen byte order."""
    wire = array.dtype.newbyteorder(">" if big_endian else "<")
    rows = array.astype(wire).reshape(array.shape[0], -1)
    garbage = bytes([0xAB]) * pad
    data = b"".join(row.tobytes() + garbage for row in rows)
    msg = Image(
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=len(data) // array.shape[0],
    )
    msg.data = data
    return msg


def assert_same(decoded: np.ndarray, expected: np.ndarray) -> None:
    assert decoded.shape == expected.shape
    assert decoded.dtype == expected.dtype.newbyteorder("=")
    assert decoded.dtype.isnative
    assert decoded.flags.c_contiguous and decoded.flags.owndata
    np.testing.assert_array_equal(decoded, expected)  # NaN == NaN here


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(sorted(ENCODINGS)),
    height=st.integers(1, 7),
    width=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_every_encoding(encoding, height, width, seed):
    array = random_array(np.random.default_rng(seed), encoding, height, width)
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = numpy_to_image(array, encoding, header)
    dtype, channels = ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (height, width, encoding)
    assert msg.step == width * channels * np.dtype(dtype).itemsize
    assert len(msg.data) == msg.step * height
    assert msg.is_bigendian == (sys.byteorder == "big")
    assert msg.header.frame_id == "camera_optical" and msg.header.stamp.nanosec == 345
    assert_same(image_to_numpy(msg), array)


@settings(max_examples=80, deadline=None)
@given(
    encoding=st.sampled_from(sorted(ENCODINGS)),
    height=st.integers(1, 6),
    width=st.integers(1, 8),
    pad=st.integers(0, 13),
    big_endian=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_decodes_padded_rows_and_either_byte_order(encoding, height, width, pad, big_endian, seed):
    array = random_array(np.random.default_rng(seed), encoding, height, width)
    msg = hand_made_image(array, encoding, pad, big_endian)
    assert_same(image_to_numpy(msg), array)


def test_big_endian_mono16_values():
    msg = Image(height=1, width=2, encoding="16UC1", is_bigendian=1, step=4)
    msg.data = bytes([0x01, 0x02, 0xFF, 0x00])
    np.testing.assert_array_equal(image_to_numpy(msg), [[0x0102, 0xFF00]])
    msg.is_bigendian = 0
    np.testing.assert_array_equal(image_to_numpy(msg), [[0x0201, 0x00FF]])


def test_decoded_array_does_not_alias_the_message():
    msg = numpy_to_image(np.zeros((2, 3), np.uint8), "mono8")
    decoded = image_to_numpy(msg)
    msg.data[0] = 7
    assert decoded[0, 0] == 0


@settings(max_examples=40, deadline=None)
@given(
    encoding=st.sampled_from(sorted(ENCODINGS)),
    height=st.integers(1, 5),
    width=st.integers(1, 6),
    pad=st.integers(0, 5),
    data=st.data(),
)
def test_truncated_or_overlong_data_rejected(encoding, height, width, pad, data):
    array = random_array(np.random.default_rng(0), encoding, height, width)
    msg = hand_made_image(array, encoding, pad, False)
    full = bytes(msg.data)
    cut = data.draw(st.integers(0, len(full) - 1), label="kept bytes")
    msg.data = full[:cut]
    with pytest.raises(ImageFormatError, match=rf"truncated data: {cut} bytes < step {msg.step}"):
        image_to_numpy(msg)
    msg.data = full + b"\0"
    with pytest.raises(ImageFormatError, match=rf"inconsistent data: {len(full) + 1} bytes >"):
        image_to_numpy(msg)


def test_step_smaller_than_a_row_rejected():
    msg = numpy_to_image(np.zeros((2, 3, 3), np.uint8), "rgb8")
    msg.step = 8
    with pytest.raises(
        ImageFormatError, match=re.escape("step 8 < width 3 x 3 bytes per pixel = 9 (rgb8)")
    ):
        image_to_numpy(msg)


def test_unknown_encoding_and_empty_image_rejected():
    msg = numpy_to_image(np.zeros((2, 3), np.uint8), "mono8")
    msg.encoding = "yuv422"
    with pytest.raises(ImageFormatError, match="unsupported encoding 'yuv422'"):
        image_to_numpy(msg)
    empty = Image(height=0, width=4, encoding="mono8", step=4)
    with pytest.raises(ImageFormatError, match="empty image: 4x0"):
        image_to_numpy(empty)


def test_encoder_rejects_arrays_that_do_not_fit_the_encoding():
    with pytest.raises(ImageFormatError, match="rgb8 needs dtype uint8, got float32"):
        numpy_to_image(np.zeros((2, 2, 3), np.float32), "rgb8")
    with pytest.raises(ImageFormatError, match=r"rgba8 needs shape HxWx4, got \(2, 2, 3\)"):
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), "rgba8")
    with pytest.raises(ImageFormatError, match="32FC1 needs dtype float32, got float64"):
        numpy_to_image(np.zeros((2, 2)), "32FC1")
    with pytest.raises(ImageFormatError, match="empty image"):
        numpy_to_image(np.zeros((0, 2), np.uint8), "mono8")


def test_encoder_accepts_non_native_and_non_contiguous_arrays():
    values = np.arange(12, dtype=np.uint16).reshape(3, 4)
    swapped = values.astype(">u2")
    assert_same(image_to_numpy(numpy_to_image(swapped, "16UC1")), values)
    strided = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)[::2, ::-1]
    assert_same(image_to_numpy(numpy_to_image(strided, "bgr8")), np.ascontiguousarray(strided))


def test_to_rgb8_for_each_colour_and_mono_encoding():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (3, 4, 1), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb8(rgb, "rgb8"), rgb)
    np.testing.assert_array_equal(to_rgb8(rgb[:, :, [2, 1, 0]], "bgr8"), rgb)
    np.testing.assert_array_equal(to_rgb8(np.concatenate([rgb, alpha], 2), "rgba8"), rgb)
    np.testing.assert_array_equal(
        to_rgb8(np.concatenate([rgb[:, :, [2, 1, 0]], alpha], 2), "bgra8"), rgb
    )
    mono = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    out = to_rgb8(mono, "mono8")
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, np.stack([mono] * 3, axis=2))
    with pytest.raises(ImageFormatError, match="encoding '8UC3' is not a colour image"):
        to_rgb8(rgb, "8UC3")
    with pytest.raises(ImageFormatError, match=r"bgra8 array has shape \(3, 4, 3\)"):
        to_rgb8(rgb, "bgra8")
    with pytest.raises(ImageFormatError, match="mono8 needs dtype uint8, got uint16"):
        to_rgb8(mono.astype(np.uint16), "mono8")
    assert to_rgb8(rgb, "rgb8") is rgb  # already rgb8: no copy (the decoders' arrays are fresh)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert not np.shares_memory(to_rgb8(bgr, "bgr8"), bgr)
    assert not np.shares_memory(to_rgb8(rgb[:, ::2], "rgb8"), rgb)  # made contiguous: a copy


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "8UC1", "32FC1", "16SC1"])
def test_depth_like_encodings_are_not_rgb(encoding):
    """Fault 10: 16UC1, mono16 and 8UC1 were segmented as if they were colour images."""
    dtype = codec.pixel_format(encoding).dtype
    with pytest.raises(ImageFormatError, match=f"encoding '{encoding}' is not a colour image"):
        to_rgb8(np.zeros((3, 4), dtype), encoding)


class ImportRecorder:
    """A meta-path finder that records which modules something tried to import."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)
        return None


def test_numpy_converter_never_imports_cv_bridge(monkeypatch):
    monkeypatch.delitem(sys.modules, "cv_bridge", raising=False)
    recorder = ImportRecorder()
    monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
    converter = codec.make_converter("numpy")
    assert converter.name == "numpy"
    assert "cv_bridge" not in recorder.names and "cv_bridge" not in sys.modules


def test_missing_cv_bridge(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv_bridge", None)  # import raises ImportError
    assert codec.make_converter("auto").name == "numpy"
    with pytest.raises(ImportError, match="'cv_bridge' requested but cv_bridge is not importable"):
        codec.make_converter("cv_bridge")
    with pytest.raises(ValueError, match="prefer must be"):
        codec.make_converter("opencv")


def fake_cv_bridge_module(calls: list) -> types.ModuleType:
    """A stand-in for cv_bridge that behaves like its Python imgmsg_to_cv2/cv2_to_imgmsg."""
    module = types.ModuleType("cv_bridge")

    class CvBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
            calls.append(("imgmsg_to_cv2", msg.encoding, desired_encoding))
            dtype, channels = ENCODINGS[msg.encoding]
            dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
            im = np.ndarray(
                shape=(msg.height, msg.step // dtype.itemsize // channels, channels),
                dtype=dtype,
                buffer=msg.data,
            )
            im = np.ascontiguousarray(im[: msg.height, : msg.width, :])  # a view when unpadded
            if msg.is_bigendian == (sys.byteorder == "little"):
                im = im.byteswap().view(im.dtype.newbyteorder())  # native bytes, same values
            return im[:, :, 0] if channels == 1 else im

        def cv2_to_imgmsg(self, cvim, encoding="passthrough", header=None):
            calls.append(("cv2_to_imgmsg", encoding))
            msg = Image(
                height=cvim.shape[0],
                width=cvim.shape[1],
                encoding=encoding,
                is_bigendian=int(sys.byteorder == "big"),
            )
            if header is not None:
                msg.header = header
            msg.data = cvim.tobytes()
            msg.step = len(msg.data) // msg.height
            return msg

    module.CvBridge = CvBridge
    return module


@pytest.mark.parametrize("prefer", ["auto", "cv_bridge"])
def test_cv_bridge_used_when_importable_and_gives_the_same_arrays(monkeypatch, prefer):
    calls: list = []
    monkeypatch.setitem(sys.modules, "cv_bridge", fake_cv_bridge_module(calls))
    converter = codec.make_converter(prefer)
    assert converter.name == "cv_bridge"
    rng = np.random.default_rng(5)
    for encoding in ("rgb8", "16UC1", "32FC1"):
        array = random_array(rng, encoding, 3, 5)
        bpp = array.itemsize * (array.shape[2] if array.ndim == 3 else 1)
        for big_endian, pad in [(False, 0), (True, 0), (False, 2 * bpp), (True, 3)]:
            msg = hand_made_image(array, encoding, pad, big_endian)
            ours, theirs = image_to_numpy(msg), converter.image_to_numpy(msg)
            assert_same(theirs, ours)
        encoded = converter.numpy_to_image(array, encoding, Header(frame_id="f"))
        assert encoded.header.frame_id == "f"
        assert_same(image_to_numpy(encoded), array)
    assert ("imgmsg_to_cv2", "16UC1", "passthrough") in calls
    assert ("cv2_to_imgmsg", "32FC1") in calls
    bad = numpy_to_image(np.zeros((2, 2), np.uint8), "mono8")
    bad.data = bytes(3)
    n_calls = len(calls)
    with pytest.raises(ImageFormatError, match="truncated data"):
        converter.image_to_numpy(bad)
    assert len(calls) == n_calls  # rejected before cv_bridge sees it
