"""The organised semantic PointCloud2: geometry, alignment with the mask, layout, round trip."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from cloud_reader import cloud_to_numpy
from sensor_msgs.msg import CameraInfo, PointCloud2, PointField
from std_msgs.msg import Header

from ssma_ros.data.encodings import CameraIntrinsics, depth_to_metres
from ssma_ros.serve.cloud import (
    CameraGeometry,
    CameraInfoError,
    NoCameraInfo,
    Rays,
    camera_rays,
    intrinsics_from_camera_info,
    pack_rgb,
    semantic_cloud,
)
from ssma_ros.serve.codec import image_to_numpy, numpy_to_image

H, W = 6, 8
CAM = CameraIntrinsics(fx=5.0, fy=4.0, cx=3.5, cy=2.5)
RAYS = Rays.pinhole(CAM, W, H)


def camera_info(width=W, height=H, fx=5.0, fy=4.0, cx=3.5, cy=2.5) -> CameraInfo:
    msg = CameraInfo(width=width, height=height)
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.p = [fx + 1, 0.0, cx + 1, 0.0, 0.0, fy + 1, cy + 1, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def header() -> Header:
    h = Header(frame_id="camera_depth_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 42, 7
    return h


def scene(seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 9.0, (H, W)).astype(np.float32)
    depth[1, 2] = np.nan
    depth[3, 4] = 0.0
    depth[0, 7] = np.inf
    depth[5, 0] = -1.0
    mask = rng.integers(0, 20, (H, W), dtype=np.uint8)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return depth, mask, rgb


def test_intrinsics_from_camera_info():
    assert intrinsics_from_camera_info(camera_info()) == CAM
    assert intrinsics_from_camera_info(camera_info(), W, H) == CAM
    assert intrinsics_from_camera_info(camera_info(), matrix="P") == CameraIntrinsics(
        6.0, 5.0, 4.5, 3.5
    )
    with pytest.raises(ValueError, match="uncalibrated"):
        intrinsics_from_camera_info(CameraInfo(width=W, height=H))
    with pytest.raises(ValueError, match="zero size"):
        intrinsics_from_camera_info(camera_info(width=0, height=0), W, H)
    with pytest.raises(ValueError, match="'K' or 'P'"):
        intrinsics_from_camera_info(camera_info(), matrix="R")


def test_points_are_the_back_projection_of_their_pixel():
    depth, mask, rgb = scene()
    msg = semantic_cloud(header(), depth, RAYS, mask, rgb)
    points = cloud_to_numpy(msg)
    assert points.shape == (H, W)
    for v, u in [(0, 0), (2, 5), (5, 7), (4, 1)]:
        z = depth[v, u]
        expected = ((u - CAM.cx) * z / CAM.fx, (v - CAM.cy) * z / CAM.fy, z)
        got = (points["x"][v, u], points["y"][v, u], points["z"][v, u])
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        # Re-projecting the point lands on its own pixel: the cloud is pixel-aligned.
        x, y, z = got
        assert abs(CAM.fx * x / z + CAM.cx - u) < 1e-4 and abs(CAM.fy * y / z + CAM.cy - v) < 1e-4


def test_invalid_depth_gives_nan_points_and_labels_equal_the_mask():
    depth, mask, rgb = scene()
    msg = semantic_cloud(header(), depth, RAYS, mask, rgb)
    points = cloud_to_numpy(msg)
    invalid = ~(np.isfinite(depth) & (depth > 0))
    assert invalid.sum() == 4
    for name in ("x", "y", "z"):
        assert np.all(np.isnan(points[name][invalid]))
        assert np.all(np.isfinite(points[name][~invalid]))
    np.testing.assert_array_equal(points["label"], mask)  # also where depth is invalid
    packed = points["rgb"].view(np.uint32)
    np.testing.assert_array_equal(
        np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=2), rgb
    )
    assert np.all(packed >> 24 == 0)


def test_message_layout_is_consistent():
    depth, mask, rgb = scene()
    msg = semantic_cloud(header(), depth, RAYS, mask, rgb)
    assert isinstance(msg, PointCloud2)
    assert (msg.height, msg.width) == (H, W) and not msg.is_dense
    assert msg.header.frame_id == "camera_depth_optical_frame"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (42, 7)
    fields = {f.name: f for f in msg.fields}
    assert list(fields) == ["x", "y", "z", "rgb", "label"]
    assert [fields[n].datatype for n in fields] == [PointField.FLOAT32] * 4 + [PointField.UINT32]
    assert all(f.count == 1 for f in msg.fields)
    sizes = {PointField.FLOAT32: 4, PointField.UINT32: 4}
    assert max(f.offset + sizes[f.datatype] for f in msg.fields) <= msg.point_step
    offsets = sorted(f.offset for f in msg.fields)
    assert len(set(offsets)) == len(offsets)
    assert msg.row_step == msg.point_step * W and len(msg.data) == msg.row_step * H
    # Read one point straight from the bytes (not via cloud_to_numpy): point (v, u) is at
    # v * row_step + u * point_step, i.e. index v * width + u as the Nav2 layer assumes.
    v, u = 4, 6
    base = v * msg.row_step + u * msg.point_step
    order = ">" if msg.is_bigendian else "<"
    raw = bytes(msg.data)
    z = struct.unpack_from(order + "f", raw, base + fields["z"].offset)[0]
    label = struct.unpack_from(order + "I", raw, base + fields["label"].offset)[0]
    assert z == pytest.approx(float(depth[v, u])) and label == mask[v, u]


def test_cloud_without_colour_has_no_rgb_field():
    depth, mask, _ = scene()
    msg = semantic_cloud(header(), depth, RAYS, mask)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "label"]
    assert msg.point_step == 16
    np.testing.assert_array_equal(cloud_to_numpy(msg)["label"], mask)


def test_intrinsics_are_scaled_to_the_depth_resolution():
    info = camera_info(width=2 * W, height=2 * H, fx=10, fy=8, cx=7.5, cy=5.5)
    full = intrinsics_from_camera_info(info)
    half = intrinsics_from_camera_info(info, W, H)
    assert (half.fx, half.fy) == (5.0, 4.0)
    # A 3D point projects to continuous pixel coordinates that scale about pixel edges:
    # (u' + 0.5) = (u + 0.5) * s (pixel u covers [u - 0.5, u + 0.5]).
    x, y, z = 0.7, -0.3, 2.0
    u_full, v_full = full.fx * x / z + full.cx, full.fy * y / z + full.cy
    u_half, v_half = half.fx * x / z + half.cx, half.fy * y / z + half.cy
    assert u_half + 0.5 == pytest.approx((u_full + 0.5) / 2)
    assert v_half + 0.5 == pytest.approx((v_full + 0.5) / 2)
    # The cloud of a half-resolution depth image stays pixel-aligned: each point re-projects
    # with the scaled intrinsics onto its own pixel.
    depth, mask, _ = scene()
    points = cloud_to_numpy(semantic_cloud(header(), depth, Rays.pinhole(half, W, H), mask))
    valid = np.isfinite(points["z"])
    u = half.fx * points["x"] / points["z"] + half.cx
    np.testing.assert_allclose(u[valid], np.broadcast_to(np.arange(W), (H, W))[valid], atol=1e-4)
    with pytest.raises(ValueError, match="different aspect ratio"):
        intrinsics_from_camera_info(info, W, 2 * H)


def test_depth_image_to_cloud_end_to_end():
    """A 16UC1 depth Image through the codec and into the cloud."""
    depth_mm = np.full((H, W), 2000, np.uint16)
    depth_mm[0, 0] = 0
    depth = depth_to_metres(image_to_numpy(numpy_to_image(depth_mm, "16UC1")), "16UC1")
    assert depth.dtype == np.float32
    points = cloud_to_numpy(semantic_cloud(header(), depth, RAYS, np.ones((H, W), np.uint8)))
    assert np.isnan(points["z"][0, 0]) and np.all(points["z"].ravel()[1:] == pytest.approx(2.0))


def test_cloud_to_numpy_reads_big_endian_and_padded_layouts():
    msg = PointCloud2(height=1, width=2, is_bigendian=True, point_step=12, row_step=30)
    msg.fields = [
        PointField(name="z", offset=4, datatype=PointField.FLOAT32, count=1),
        PointField(name="label", offset=0, datatype=PointField.UINT16, count=1),
    ]
    point0 = struct.pack(">HHf4x", 9, 0, 1.25)
    point1 = struct.pack(">HHf4x", 3, 0, -2.5)
    msg.data = point0 + point1 + bytes(6)  # row padded to row_step
    points = cloud_to_numpy(msg)
    assert points["z"].tolist() == [[1.25, -2.5]] and points["label"].tolist() == [[9, 3]]
    assert points.dtype["z"].isnative
    msg.data = bytes(29)
    with pytest.raises(ValueError, match="expected height 1 x row_step 30"):
        cloud_to_numpy(msg)


def test_mismatched_inputs_rejected():
    depth, mask, rgb = scene()
    with pytest.raises(ValueError, match="sizes differ"):
        semantic_cloud(header(), depth, RAYS, mask[:, :-1])
    with pytest.raises(ValueError, match="rgb must be"):
        semantic_cloud(header(), depth, RAYS, mask, rgb[:-1])
    with pytest.raises(ValueError, match="float32"):
        semantic_cloud(header(), depth.astype(np.float64), RAYS, mask)
    with pytest.raises(ValueError, match="integer class ids"):
        semantic_cloud(header(), depth, RAYS, mask.astype(np.float32))


def test_pack_rgb_bits():
    packed = pack_rgb(np.array([[[1, 2, 3], [255, 255, 255]]], np.uint8))
    assert packed.dtype == np.float32
    assert packed.view(np.uint32).tolist() == [[0x010203, 0xFFFFFF]]


# -- distortion and the ray table (fault 13) --------------------------------------------------

BIG_W, BIG_H = 64, 48
K_BIG = np.array([[60.0, 0.0, 31.7], [0.0, 58.0, 24.2], [0.0, 0.0, 1.0]])
DISTORTIONS = {
    "plumb_bob": [-0.28, 0.09, 0.0012, -0.0008, -0.015],
    "rational_polynomial": [0.35, -0.12, 0.001, -0.0005, 0.01, 0.62, -0.08, 0.03],
    "equidistant": [0.05, -0.01, 0.002, -0.0004],
}


def distorted_info(model: str, d, width=BIG_W, height=BIG_H) -> CameraInfo:
    msg = CameraInfo(width=width, height=height, distortion_model=model)
    msg.k = K_BIG.ravel().tolist()
    msg.d = list(d)
    return msg


def reproject(points: np.ndarray, model: str, d) -> np.ndarray:
    """Project cloud points with the camera's K and D: each should land on its own pixel."""
    xyz = np.stack([points["x"], points["y"], points["z"]], -1).reshape(-1, 1, 3)
    xyz = xyz.astype(np.float64)
    if model == "equidistant":
        uv, _ = cv2.fisheye.projectPoints(xyz, np.zeros(3), np.zeros(3), K_BIG, np.array(d))
    else:
        uv, _ = cv2.projectPoints(xyz, np.zeros(3), np.zeros(3), K_BIG, np.array(d))
    return uv.reshape(points.shape + (2,))


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_cloud_undoes_the_camera_info_distortion(model):
    """Fault 13: distortion in camera_info was silently ignored by ~/cloud."""
    d = DISTORTIONS[model]
    depth = np.random.default_rng(1).uniform(0.5, 8.0, (BIG_H, BIG_W)).astype(np.float32)
    mask = np.zeros((BIG_H, BIG_W), np.uint8)
    geometry = CameraGeometry()
    geometry.update(distorted_info(model, d))
    points = cloud_to_numpy(semantic_cloud(header(), depth, geometry.rays(BIG_W, BIG_H), mask))
    uv = reproject(points, model, d)
    u, v = np.meshgrid(np.arange(BIG_W), np.arange(BIG_H))
    np.testing.assert_allclose(uv[..., 0], u, atol=2e-3)
    np.testing.assert_allclose(uv[..., 1], v, atol=2e-3)
    np.testing.assert_allclose(points["z"], depth)


def test_distorted_rays_of_a_resized_image_land_on_the_resized_pixels():
    model, d = "plumb_bob", DISTORTIONS["plumb_bob"]
    info = distorted_info(model, d)
    half = camera_rays(info, BIG_W // 2, BIG_H // 2)
    z = np.ones((BIG_H // 2, BIG_W // 2, 1))
    xyz = np.concatenate([half.x[..., None] * z, half.y[..., None] * z, z], -1).reshape(-1, 1, 3)
    uv, _ = cv2.projectPoints(xyz, np.zeros(3), np.zeros(3), K_BIG, np.array(d))
    uv = uv.reshape(BIG_H // 2, BIG_W // 2, 2)
    u, v = np.meshgrid(np.arange(BIG_W // 2), np.arange(BIG_H // 2))
    np.testing.assert_allclose(uv[..., 0], (u + 0.5) * 2 - 0.5, atol=2e-3)
    np.testing.assert_allclose(uv[..., 1], (v + 0.5) * 2 - 0.5, atol=2e-3)


def test_zero_distortion_keeps_the_separable_pinhole_rays():
    info = distorted_info("plumb_bob", [0.0] * 5)
    rays = camera_rays(info, BIG_W, BIG_H)
    assert rays.x.shape == (1, BIG_W) and rays.y.shape == (BIG_H, 1)
    assert camera_rays(distorted_info("", []), BIG_W, BIG_H).x.shape == (1, BIG_W)


def test_ray_table_is_computed_once_per_camera_info(monkeypatch):
    """Drivers republish an identical camera_info with every frame: no recomputation."""
    from ssma_ros.serve import cloud

    calls = []
    real = cloud.camera_rays
    monkeypatch.setattr(cloud, "camera_rays", lambda *a: calls.append(a[1:]) or real(*a))
    geometry = CameraGeometry()
    for _ in range(5):
        geometry.update(distorted_info("plumb_bob", DISTORTIONS["plumb_bob"]))  # new message
        first = geometry.rays(BIG_W, BIG_H)
    assert len(calls) == 1
    geometry.update(distorted_info("plumb_bob", [-0.2, 0.05, 0.0, 0.0, 0.0]))  # recalibrated
    assert geometry.rays(BIG_W, BIG_H) is not first and len(calls) == 2
    geometry.rays(BIG_W // 2, BIG_H // 2)  # another image size
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (None, "no camera_info received yet on /cam/camera_info"),
        (
            CameraInfo(width=BIG_W, height=BIG_H),
            r"fx, fy must be finite and > 0 \(uncalibrated camera\?\)",
        ),
        (distorted_info("fisheye624", [0.1] * 12), "distortion_model 'fisheye624' is not supp"),
        (distorted_info("plumb_bob", [0.1, 0.2, 0.0]), "plumb_bob needs 4 or 5 coefficients"),
        (distorted_info("plumb_bob", [float("nan")] * 5), "D has non-finite coefficients"),
        (distorted_info("plumb_bob", [0.0] * 5, width=BIG_W, height=BIG_W), "aspect ratio"),
        (
            SimpleNamespace(width=None, height=BIG_H, k=K_BIG.ravel(), d=[], distortion_model=""),
            "malformed camera_info: int",
        ),
        (
            SimpleNamespace(width=BIG_W, height=BIG_H, k=[1.0] * 4, d=[], distortion_model=""),
            "camera_info K: expected 9, 12 or 16 matrix entries, got 4",
        ),
    ],
)
def test_a_bad_camera_info_says_what_is_wrong_with_it(info, message):
    """Fault 13: a bad camera_info was reported as 'no camera_info received yet'."""
    geometry = CameraGeometry("/cam/camera_info")
    if info is not None:
        geometry.update(info)
    for _ in range(2):  # the verdict on one camera_info is cached, and raised again
        with pytest.raises(CameraInfoError, match=message) as error:
            geometry.rays(BIG_W, BIG_H)
        assert (info is None) == isinstance(error.value, NoCameraInfo)


def test_intrinsics_for_the_model_come_from_the_same_camera_info():
    geometry = CameraGeometry()
    geometry.update(distorted_info("plumb_bob", DISTORTIONS["plumb_bob"]))
    cam = geometry.intrinsics(BIG_W // 2, BIG_H // 2)
    assert (cam.fx, cam.fy) == (30.0, 29.0)


def test_a_distortion_the_cloud_cannot_undo_leaves_the_intrinsics_usable():
    """An unsupported distortion fails ~/cloud only: HHA models still need K from it."""
    geometry = CameraGeometry()
    geometry.update(distorted_info("fisheye624", [0.1] * 12))
    for _ in range(2):
        assert geometry.intrinsics(BIG_W, BIG_H).fx == 60.0
        with pytest.raises(CameraInfoError, match="fisheye624"):
            geometry.rays(BIG_W, BIG_H)
