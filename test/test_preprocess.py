"""The shared per-frame preprocessing: spec round-trip, shapes, resizing rules, errors."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.preprocess import AuxSpec, Preprocess, resize_nearest

SPECS = [
    Preprocess(48, 64),
    Preprocess(
        48,
        64,
        rgb_order="bgr",
        aux_spec=AuxSpec("depth", "hha", depth_range_m=(0.3, 8.0), hha_camera_height_m=0.6),
    ),
    Preprocess(
        32,
        32,
        aux_spec=AuxSpec(
            "infrared", "intensity", intensity_mode="percentile", intensity_percentiles=(2, 98)
        ),
    ),
    Preprocess(
        32,
        48,
        aux_spec=AuxSpec(
            "infrared", "intensity", intensity_range=(25315, 32315), mean=(0.4, 0.4, 0.4)
        ),
    ),
    Preprocess(32, 48, aux_spec=AuxSpec("nir", "evi", evi_range=(-0.5, 1.0))),
    Preprocess(32, 48, aux_spec=None),
]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trips_through_json(spec):
    text = json.dumps(spec.to_dict())
    restored = Preprocess.from_dict(json.loads(text))
    assert restored == spec
    assert restored.to_dict() == spec.to_dict()


def test_from_dict_rejects_unknown_keys_and_versions():
    d = Preprocess(8, 8).to_dict()
    with pytest.raises(ValueError, match="version"):
        Preprocess.from_dict({**d, "version": 99})
    with pytest.raises(ValueError, match="unknown preprocess keys"):
        Preprocess.from_dict({**d, "resize": "bicubic"})
    with pytest.raises(ValueError, match="unknown aux keys"):
        Preprocess.from_dict({**d, "aux": {**d["aux"], "depth_units": "mm"}})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"modality": "infrared", "encoding": "jet"},
        {"modality": "radar", "encoding": "jet"},
        {"depth_range_m": (0.0, 10.0)},
        {"depth_range_m": (5.0, 1.0)},
        {"intensity_mode": "auto"},
        {"intensity_percentiles": (50, 10)},
        {"hha_window": 4},
        {"std": (0.5, 0.0, 0.5)},
    ],
)
def test_aux_spec_validation(kwargs):
    with pytest.raises(ValueError):
        AuxSpec(**kwargs)


def test_spec_validation():
    with pytest.raises(ValueError):
        Preprocess(0, 10)
    with pytest.raises(ValueError):
        Preprocess(10, 10, rgb_order="rgba")


# -- RGB ------------------------------------------------------------------------------------------


def test_rgb_normalisation_shape_and_channel_order():
    pre = Preprocess(6, 8, rgb_mean=(0.5, 0.25, 0.0), rgb_std=(0.5, 0.25, 1.0))
    image = np.zeros((12, 16, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 51
    x = pre.rgb(image)
    assert x.shape == (1, 3, 6, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, -1.0, 0.2], atol=1e-6)
    bgr = Preprocess(6, 8, rgb_order="bgr").rgb(image)
    np.testing.assert_allclose(
        bgr[0, 0], Preprocess(6, 8).rgb(image[..., ::-1].copy())[0, 0], atol=1e-6
    )
    grey = pre.rgb(np.full((6, 8), 255, np.uint8))
    np.testing.assert_allclose(grey[0, :, 0, 0], [1.0, 3.0, 1.0], atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    batch=arrays(np.uint8, st.tuples(st.integers(1, 3), st.just(5), st.just(7), st.just(3))),
    mean=st.tuples(*[st.floats(0.0, 1.0)] * 3),
    std=st.tuples(*[st.floats(0.05, 2.0)] * 3),
)
def test_normalisation_is_the_arithmetic_channel_first(batch, mean, std):
    pre = Preprocess(5, 7, rgb_mean=mean, rgb_std=std)
    expected = (batch.astype(np.float64) / 255.0 - np.array(mean)) / np.array(std)
    x = pre.normalise_rgb(batch)
    assert x.shape == (batch.shape[0], 3, 5, 7) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, expected.transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4, 3), np.float32),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((4, 4, 3, 1), np.uint8),
    ],
)
def test_rgb_rejects_wrong_dtype_and_channels(image):
    with pytest.raises(ValueError):
        Preprocess(4, 4).rgb(image)


# -- aux ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["jet", "metric"])
def test_depth_units_are_handled_by_the_sensor_encoding(encoding):
    pre = Preprocess(16, 16, aux_spec=AuxSpec("depth", encoding, depth_range_m=(0.5, 10.0)))
    mm = np.random.default_rng(2).integers(0, 10000, (16, 16)).astype(np.uint16)
    metres = np.where(mm == 0, np.nan, mm / 1000.0).astype(np.float32)
    np.testing.assert_array_equal(pre.aux(mm, "16UC1"), pre.aux(metres, "32FC1"))


@settings(max_examples=40, deadline=None)
@given(
    encoding=st.sampled_from(["jet", "metric"]),
    low=st.floats(0.1, 5.0),
    span=st.floats(0.5, 60.0),
    mean=st.floats(0.0, 1.0),
    std=st.floats(0.05, 2.0),
    depth=arrays(np.uint16, st.tuples(st.integers(1, 20), st.integers(1, 20))),
)
def test_16bit_depth_lookup_table_equals_encoding_then_normalising(
    encoding, low, span, mean, std, depth
):
    """aux() looks 16UC1 codes up in a table; it must give exactly what the arithmetic gives."""
    pre = Preprocess(
        12,
        10,
        aux_spec=AuxSpec(
            "depth",
            encoding,
            depth_range_m=(low, low + span),
            mean=(mean, 0.5, 0.2),
            std=(std, 0.5, 1.0),
        ),
    )
    np.testing.assert_array_equal(
        pre.aux(depth, "16UC1"), pre.normalise_aux(pre.encode_aux(depth, "16UC1"))
    )


def test_depth_is_resized_nearest_before_encoding():
    pre = Preprocess(16, 20, aux_spec=AuxSpec("depth", "jet", depth_range_m=(1.0, 5.0)))
    depth = np.zeros((7, 9), np.uint16)  # checkerboard of invalid and 2 m
    depth[::2, ::2] = depth[1::2, 1::2] = 2000
    depth[:, 6:] = 5000  # and a 2 m / 5 m edge
    colours = {tuple(c) for c in pre.encode_aux(depth, "16UC1").reshape(-1, 3)}
    two, five = tuple(pre.encode_aux(np.full((1, 1), 2000, np.uint16), "16UC1")[0, 0]), (128, 0, 0)
    assert colours == {(0, 0, 0), two, five}  # no blended depths, no half-invalid pixels


def test_blank_aux_is_the_encoding_of_an_all_invalid_frame():
    for encoding in ("jet", "metric", "hha"):
        pre = Preprocess(
            12, 16, aux_spec=AuxSpec("depth", encoding, mean=(0.2, 0.3, 0.4), std=(0.5, 0.25, 0.1))
        )
        blank = pre.blank_aux()
        invalid = pre.aux(np.zeros((24, 32), np.uint16), "16UC1", CameraIntrinsics(20, 20, 16, 12))
        np.testing.assert_array_equal(blank, invalid)
        np.testing.assert_allclose(blank[0, :, 0, 0], [-0.4, -1.2, -4.0], rtol=1e-6)
    assert Preprocess(4, 4).blank_aux(batch=3).shape == (3, 3, 4, 4)


def test_hha_uses_intrinsics_scaled_to_the_network_size():
    # A floor seen by a level camera 1.5 m high at 96x128, served at 48x64.
    cam = CameraIntrinsics(100.0, 100.0, 63.5, 47.5)
    yn = (np.arange(96) - cam.cy) / cam.fy
    with np.errstate(divide="ignore"):
        floor = np.where(yn > 0.02, 1.5 / yn, 0.0)
    depth = np.repeat((floor * 1000).astype(np.uint16)[:, None], 128, axis=1)
    pre = Preprocess(
        48,
        64,
        aux_spec=AuxSpec("depth", "hha", depth_range_m=(0.5, 80.0), hha_camera_height_m=1.5),
    )
    out = pre.encode_aux(depth, "16UC1", cam)
    floor_angles = out[30:, 4:-4, 2]
    assert abs(np.median(floor_angles) - 38) <= 1
    assert np.median(out[30:, 4:-4, 1]) <= 3  # height above ground ~ 0 with the given mount height
    with pytest.raises(ValueError, match="intrinsics"):
        pre.aux(depth, "16UC1")


def test_infrared_fixed_and_percentile():
    thermal = np.linspace(29000, 30000, 64).astype(np.uint16).reshape(8, 8)
    fixed = Preprocess(
        8, 8, aux_spec=AuxSpec("infrared", "intensity", intensity_range=(29000, 30000))
    )
    np.testing.assert_allclose(
        fixed.encode_aux(thermal, "mono16")[..., 0],
        np.rint(255 * (thermal.astype(float) - 29000) / 1000.0),
        atol=1,
    )
    full = Preprocess(8, 8, aux_spec=AuxSpec("infrared", "intensity"))
    assert full.encode_aux(thermal, "mono16").max() < 120  # 0..65535 stretch: low contrast
    ir8 = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(full.encode_aux(ir8, "mono8")[..., 0], ir8)
    stretched = Preprocess(
        8, 8, aux_spec=AuxSpec("infrared", "intensity", intensity_mode="percentile")
    )
    out = stretched.encode_aux(thermal, "mono16")
    assert out.min() == 0 and out.max() == 255


def test_evi_needs_rgb_and_matches_the_formula():
    pre = Preprocess(4, 4, aux_spec=AuxSpec("nir", "evi"))
    nir = np.full((8, 8), 128, np.uint8)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 26
    out = pre.encode_aux(nir, "mono8", rgb=rgb)
    n, r = 128 / 255, 26 / 255
    evi = 2.5 * (n - r) / (n + 6 * r + 1)
    assert out.shape == (4, 4, 3)
    assert abs(int(out[0, 0, 0]) - round(1 + 254 * (evi + 1) / 2)) <= 1
    with pytest.raises(ValueError, match="RGB"):
        pre.aux(nir, "mono8")


@pytest.mark.parametrize(
    "spec, raw, encoding, match",
    [
        (AuxSpec("depth", "jet"), np.zeros((4, 4), np.uint8), "mono8", "does not fit"),
        (AuxSpec("depth", "jet"), np.zeros((4, 4), np.uint16), "rgb8", "does not fit"),
        (AuxSpec("depth", "jet"), np.zeros((4, 4), np.float32), "16UC1", "uint16"),
        (AuxSpec("depth", "jet"), np.zeros((4, 4), np.float64), "32FC1", "float32"),
        (AuxSpec("depth", "jet"), np.zeros((4, 4, 3), np.uint16), "16UC1", "single-channel"),
        (AuxSpec("infrared", "intensity"), np.zeros((4, 4), np.uint16), "16UC1", "does not fit"),
        (AuxSpec("infrared", "intensity"), np.zeros((4, 4), np.uint8), "mono16", "uint16"),
    ],
)
def test_aux_errors_are_clear(spec, raw, encoding, match):
    with pytest.raises(ValueError, match=match):
        Preprocess(4, 4, aux_spec=spec).aux(raw, encoding)


def test_rgb_only_spec_has_no_aux():
    pre = Preprocess(4, 4, aux_spec=None)
    with pytest.raises(ValueError, match="no aux"):
        pre.blank_aux()
    with pytest.raises(ValueError, match="no aux"):
        pre.aux(np.zeros((4, 4), np.uint16), "16UC1")


# -- labels and nearest resizing ------------------------------------------------------------------


def test_label_resize_keeps_ids():
    label = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = Preprocess(6, 8).label(label)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(label, 2, axis=0), 2, axis=1))
    with pytest.raises(ValueError):
        Preprocess(6, 8).label(label.astype(np.int32))


def test_resize_nearest_samples_pixel_centres():
    image = np.arange(8).reshape(1, 8)
    np.testing.assert_array_equal(resize_nearest(image, 1, 4), [[1, 3, 5, 7]])
    np.testing.assert_array_equal(resize_nearest(image, 1, 3), [[math.floor(8 / 6), 4, 6]])


@pytest.mark.parametrize(
    "shape,size", [((6, 8), (12, 16)), ((12, 16, 3), (6, 8)), ((5, 7), (9, 4))]
)
def test_resize_nearest_output_is_row_major(shape, size):
    """Row-major like its input, so the message codec and OpenCV take it without a copy."""
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    out = resize_nearest(image, *size)
    assert out.shape[:2] == size and out.flags.c_contiguous
    rows = ((np.arange(size[0]) + 0.5) * shape[0] / size[0]).astype(int)
    cols = ((np.arange(size[1]) + 0.5) * shape[1] / size[1]).astype(int)
    np.testing.assert_array_equal(out, image[np.ix_(rows, cols)])


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    fy=st.integers(1, 4),
    fx=st.integers(1, 4),
    up_y=st.booleans(),
    up_x=st.booleans(),
    dtype=st.sampled_from(
        [np.uint8, np.int8, np.uint16, np.int16, np.float32, np.float64, np.int32, bool]
    ),
    channels=st.sampled_from([None, 1, 3, 4]),
    data=st.data(),
)
def test_resize_nearest_samples_pixel_centres_for_any_size_and_dtype(
    h, w, fy, fx, up_y, up_x, dtype, channels, data
):
    """Whole-number factors take OpenCV's path, the others numpy's: both pick the same pixels."""
    height = h * fy if up_y else max(1, h // fy)
    width = w * fx if up_x else max(1, w // fx)
    shape = (h, w) if channels is None else (h, w, channels)
    image = data.draw(arrays(dtype, shape))
    out = resize_nearest(image, height, width)
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(int), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(int), w - 1)
    expected = image[np.ix_(rows, cols)]
    assert out.shape == expected.shape and out.dtype == image.dtype and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)  # NaN equals NaN here


def test_runtime_modules_import_only_numpy_and_opencv():
    """The node imports encodings/preprocess: no torch, readers or class configs with them."""
    code = (
        "import sys, ssma_ros.data.preprocess, ssma_ros.data.encodings\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'yaml')\n"
        "       or m.startswith(('ssma_ros.data.readers', 'ssma_ros.data.synthetic'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1]
    )
