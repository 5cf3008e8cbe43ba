"""Modality encodings: units, invalid values, ranges, HHA geometry, IR stretches, EVI."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssma_ros.data import encodings as enc
from ssma_ros.data.encodings import CameraIntrinsics

# -- depth units ---------------------------------------------------------------------------------


def test_16uc1_millimetres_to_metres_with_zero_invalid():
    raw = np.array([[0, 1000, 65535], [1, 250, 0]], np.uint16)
    metres = enc.depth_to_metres(raw, "16UC1")
    assert metres.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(metres), raw == 0)
    np.testing.assert_allclose(metres[raw > 0], raw[raw > 0] / 1000.0, rtol=1e-6)


def test_32fc1_metres_every_invalid_value_becomes_nan():
    raw = np.array([[0.0, np.nan, np.inf], [-np.inf, -1.0, 2.5]], np.float32)
    metres = enc.depth_to_metres(raw, "32FC1")
    expected = np.full(raw.shape, np.nan, np.float32)
    expected[1, 2] = 2.5
    np.testing.assert_array_equal(metres, expected)
    assert not np.isnan(raw[1, 2]) and raw[0, 0] == 0  # the input is not modified


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["16UC1", "32FC1"]),
    st.lists(
        st.sampled_from([0.0, np.nan, np.inf, -np.inf, -1.0, 0.4, 2.5, 65.535]),
        min_size=1,
        max_size=6,
    ),
)
def test_has_valid_depth_agrees_with_depth_to_metres(encoding, values):
    raw = np.array(values, np.float32)[None]
    if encoding == "16UC1":
        raw = np.where(np.isfinite(raw) & (raw > 0), raw * 1000, 0).astype(np.uint16)
    assert enc.has_valid_depth(raw, encoding) == bool(
        np.isfinite(enc.depth_to_metres(raw, encoding)).any()
    )


@pytest.mark.parametrize(
    "raw, encoding",
    [
        (np.zeros((2, 2), np.float32), "16UC1"),
        (np.zeros((2, 2), np.float64), "32FC1"),
        (np.zeros((2, 2), np.uint16), "mono16"),
        (np.zeros((2, 2, 3), np.uint16), "16UC1"),
    ],
)
def test_depth_to_metres_rejects_wrong_dtype_encoding_or_shape(raw, encoding):
    with pytest.raises(ValueError):
        enc.depth_to_metres(raw, encoding)


# -- jet and metric depth -------------------------------------------------------------------------


def test_jet_ends_middle_clipping_and_invalid_black():
    depth = np.array([[1.0, 3.0, 5.0, 0.2, 9.0, np.nan]], np.float32)
    out = enc.jet(depth, 1.0, 5.0)
    assert out.shape == (1, 6, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [0, 0, 128])  # near: dark blue
    np.testing.assert_array_equal(out[0, 1], [128, 255, 128])  # middle: green
    np.testing.assert_array_equal(out[0, 2], [128, 0, 0])  # far: dark red
    np.testing.assert_array_equal(out[0, 3], out[0, 0])  # below the range clips to near
    np.testing.assert_array_equal(out[0, 4], out[0, 2])  # beyond the range clips to far
    np.testing.assert_array_equal(out[0, 5], [0, 0, 0])  # invalid


def test_jet_never_black_for_valid_depth():
    depth = np.linspace(0.0, 60.0, 5000, dtype=np.float32)[None]
    assert (enc.jet(depth, 0.5, 40.0).max(axis=2) > 0).all()


def test_metric_depth_keeps_zero_for_invalid_only():
    depth = np.array([[0.5, 40.0, 20.25, 100.0, np.nan]], np.float32)
    out = enc.metric_depth(depth, 0.5, 40.0)
    np.testing.assert_array_equal(out[0, :, 0], [1, 255, 128, 255, 0])
    assert (out == out[:, :, :1]).all()  # grey replicated to 3 channels


@pytest.mark.parametrize("low, high", [(5.0, 5.0), (5.0, 1.0), (0.0, np.inf)])
def test_depth_encodings_reject_bad_ranges(low, high):
    depth = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError):
        enc.jet(depth, low, high)
    with pytest.raises(ValueError):
        enc.metric_depth(depth, low, high)


# -- HHA ------------------------------------------------------------------------------------------

CAMERA = CameraIntrinsics(100.0, 100.0, 63.5, 47.5)


def plane_scene(
    pitch_deg: float, camera_height: float = 1.5, wall_depth: float | None = None
) -> np.ndarray:
    """Depth of a floor plane seen by a camera pitched down, optionally a wall facing it."""
    h, w = 96, 128
    yn = (np.arange(h) - CAMERA.cy) / CAMERA.fy
    theta = math.radians(pitch_deg)
    down = yn * math.cos(theta) + math.sin(theta)  # downward component of each ray (z = 1)
    with np.errstate(divide="ignore"):
        floor = np.where(down > 1e-3, camera_height / down, np.inf)
    depth = np.repeat(floor[:, None], w, axis=1).astype(np.float32)
    if wall_depth is not None:
        depth = np.minimum(depth, np.float32(wall_depth))  # fronto-parallel wall (level camera)
    depth[depth > 30] = np.nan
    return depth


def test_hha_level_floor_and_wall_angles_heights_and_disparity():
    depth = plane_scene(0.0, 1.5, wall_depth=6.0)
    out = enc.hha(depth, CAMERA, 0.5, 30.0, max_height_m=5.0)
    floor_rows, wall_rows = slice(80, 96), slice(0, 40)
    # Angle to "up": floor 0 deg, wall 90 deg, plus Gupta's 38 offset (edges excluded).
    assert abs(np.median(out[floor_rows, 10:-10, 2]) - 38) <= 1
    assert abs(np.median(out[wall_rows, 10:-10, 2]) - 128) <= 1
    # Height above the floor: 0 on the floor; on the wall it grows upwards (row 0 is highest).
    assert np.median(out[floor_rows, :, 1]) <= 2
    wall_height = 1.5 + (CAMERA.cy - 0) / CAMERA.fy * 6.0  # metres at the top row
    assert abs(int(out[0, 64, 1]) - 255 * wall_height / 5.0) <= 4
    assert out[0, 64, 1] > out[30, 64, 1]
    # Disparity: nearer is larger.
    assert out[95, 64, 0] > out[60, 64, 0] > 0


def test_hha_estimates_gravity_for_a_pitched_camera():
    depth = plane_scene(20.0, 1.2)
    out = enc.hha(depth, CAMERA, 0.5, 30.0)
    valid = out[:, 5:-5, 2] > 0
    angles = out[:, 5:-5, 2][valid].astype(float)
    # Assuming camera y-down would put the floor at 20 + 38 = 58; the estimate removes the tilt.
    assert abs(np.median(angles) - 38) <= 2


def test_hha_invalid_pixels_are_black_and_camera_height_fixes_the_ground():
    depth = plane_scene(0.0, 1.5)
    depth[50:60, 50:60] = np.nan
    out = enc.hha(depth, CAMERA, 0.5, 30.0, max_height_m=3.0, camera_height_m=1.5)
    assert (out[50:60, 50:60] == 0).all()
    assert (out[:40] == 0).all()  # above the horizon: no floor, no depth
    assert np.median(out[80:, :, 1]) <= 2  # floor at height 0 relative to a 1.5 m camera


def test_estimate_up_falls_back_to_the_camera_axis_without_horizontal_surfaces():
    wall = np.full((40, 50), 4.0, np.float32)
    points = enc.backproject(wall, CAMERA)
    normals, ok = enc.surface_normals(points, 5)
    np.testing.assert_allclose(
        normals[:, ok].mean(axis=1), [0, 0, -1], atol=1e-3
    )  # facing the camera
    np.testing.assert_allclose(enc.estimate_up(normals, ok), [0, -1, 0])


def test_hha_validates_its_parameters():
    depth = plane_scene(0.0)
    with pytest.raises(ValueError):
        enc.hha(depth, CAMERA, 0.0, 30.0)
    with pytest.raises(ValueError):
        enc.hha(depth, CAMERA, 0.5, 30.0, window=4)


# -- infrared / thermal ---------------------------------------------------------------------------


def test_intensity_mono8_full_range_is_identity_replicated():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = enc.intensity(image, value_range=enc.full_range("mono8"))
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[:, :, 0], image)
    assert (out == out[:, :, :1]).all()


def test_intensity_mono16_fixed_range_scales_and_clips():
    image = np.array([[29315, 30315, 31315, 20000, 40000]], np.uint16)  # centikelvin
    out = enc.intensity(image, value_range=(29315, 31315))
    np.testing.assert_array_equal(out[0, :, 0], [0, 128, 255, 0, 255])


def test_intensity_percentile_stretch_ignores_outliers_and_survives_flat_frames():
    rng = np.random.default_rng(0)
    image = rng.integers(1000, 2000, (50, 50)).astype(np.uint16)
    image[0, 0], image[0, 1] = 0, 65535  # hot and cold outliers
    out = enc.intensity(image, percentiles=(1.0, 99.0))[:, :, 0]
    assert out[0, 0] == 0 and out[0, 1] == 255
    body = out[1:, :]
    assert body.min() <= 5 and body.max() >= 250  # the bulk uses the full 8 bits
    flat = enc.intensity(np.full((4, 4), 7, np.uint8), percentiles=(1.0, 99.0))
    assert flat.shape == (4, 4, 3)


def test_intensity_needs_exactly_one_stretch():
    image = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError):
        enc.intensity(image)
    with pytest.raises(ValueError):
        enc.intensity(image, value_range=(0, 255), percentiles=(1, 99))
    with pytest.raises(ValueError):
        enc.full_range("16UC1")


# -- EVI ------------------------------------------------------------------------------------------


def test_evi_formula_on_known_values():
    nir = np.array([[0.5, 0.3]], np.float32)
    rgb = np.array([[[0.1, 0.2, 0.05], [0.3, 0.3, 0.9]]], np.float32)
    index = enc.evi_index(nir, rgb)
    assert index[0, 0] == pytest.approx(2.5 * 0.4 / (0.5 + 0.6 - 0.375 + 1.0), rel=1e-6)
    assert np.isnan(index[0, 1])  # denominator 0.3 + 1.8 - 6.75 + 1 < 0: undefined
    out = enc.evi(nir, rgb)
    assert out[0, 0, 0] == round(1 + 254 * (index[0, 0] + 1) / 2)
    assert (out[0, 1] == 0).all()


def test_evi_scales_integer_inputs_by_their_dtype():
    nir8 = np.array([[255, 0]], np.uint8)
    rgb8 = np.array([[[0, 0, 0], [255, 0, 0]]], np.uint8)
    index = enc.evi_index(nir8, rgb8)
    assert index[0, 0] == pytest.approx(2.5 * 1.0 / 2.0)  # N=1, R=B=0
    assert index[0, 1] == pytest.approx(2.5 * -1.0 / 7.0)  # N=0, R=1
    np.testing.assert_array_equal(
        enc.evi(nir8, rgb8)[0, :, 0], [255, round(1 + 254 * (1 - 2.5 / 7) / 2)]
    )
    with pytest.raises(ValueError):
        enc.evi_index(nir8, rgb8[:, :1])


# -- camera intrinsics ----------------------------------------------------------------------------


def test_camera_scaling_and_construction():
    cam = CameraIntrinsics(500.0, 400.0, 319.5, 239.5)
    half = cam.scaled(0.5, 0.5)
    assert (half.fx, half.fy) == (250.0, 200.0)
    assert (half.cx, half.cy) == (159.5, 119.5)  # the image centre stays the centre
    k = [500.0, 0, 319.5, 0, 400.0, 239.5, 0, 0, 1]
    assert CameraIntrinsics.from_k(k) == cam
    k4 = np.eye(4)
    k4[:3, :3] = np.reshape(k, (3, 3))
    assert CameraIntrinsics.from_k(k4) == cam
    assert CameraIntrinsics.from_dict(cam.to_dict()) == cam
    with pytest.raises(ValueError):
        CameraIntrinsics(0.0, 1.0, 0.0, 0.0)
