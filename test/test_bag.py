"""`ssma-dataset from-bag` (ssma_ros/recording/bag.py): rosbag2 (sqlite3, MCAP) -> dataset folder.

Pairs and pixels must be those the node would pair and decode.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import bag_writer as bw  # noqa: E402

from ssma_ros.recording.cli import main  # noqa: E402

H, W = 24, 32
RGB_ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]
FRAMES = 12
#: Frames whose aux does not pair: none recorded (3); stamped 80 ms late with 50 ms slop (the
#: last frame: earlier, it would pair with the next rgb, 20 ms away, as the node would pair it).
NO_AUX, LATE_AUX = 3, FRAMES - 1


def t_ns(k: int) -> int:
    return 1_700_000_000_000_000_000 + k * 100_000_000  # 10 Hz


def scene(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame k: an RGB image and a depth map in metres (NaN holes), different per frame."""
    rng = np.random.default_rng(k)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 20.0, (H, W)).astype(np.float32)
    depth[rng.random((H, W)) < 0.1] = np.nan
    return rgb, depth


def rgb_message(k: int, rgb: np.ndarray, encoding: str):
    """Frame k's rgb as `encoding`, and the RGB image the node decodes from it."""
    if encoding == "mono8":
        gray = rgb[:, :, 0]
        return bw.image(gray, encoding, t_ns(k)), np.repeat(gray[:, :, None], 3, axis=2)
    layout = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1]}
    alpha = np.full((H, W, 1), 255, np.uint8)
    layout["rgba8"] = np.concatenate([rgb, alpha], axis=2)
    layout["bgra8"] = np.concatenate([rgb[:, :, ::-1], alpha], axis=2)
    # Padded rows on some frames: the decoder must honour step.
    return bw.image(layout[encoding], encoding, t_ns(k), pad=4 * (k % 2)), rgb


def aux_message(k: int, depth: np.ndarray, kind: str, stamp: int):
    """Frame k's aux in `kind`, and the array aux/*.png must hold."""
    mm = np.nan_to_num(np.round(depth * 1000), nan=0).astype(np.uint16)
    if kind == "16UC1":
        return bw.image(mm, "16UC1", stamp, big_endian=k % 2 == 1), mm
    if kind == "32FC1":
        return bw.image(depth, "32FC1", stamp, big_endian=k % 3 == 0), mm
    if kind == "mono16":
        return bw.image(mm, "mono16", stamp), mm
    if kind == "mono8":
        ir = (mm % 256).astype(np.uint8)
        return bw.image(ir, "mono8", stamp, pad=3), ir
    assert kind == "compressedDepth"
    return bw.compressed_depth(mm, stamp), mm


def record(path: Path, storage: str, aux_kind: str, compressed_rgb: str | None = None):
    """Write a bag; returns it and {rgb stamp: (expected rgb, expected aux png, aux stamp)}."""
    messages, expected = [], {}
    for k in range(FRAMES):
        rgb, depth = scene(k)
        if compressed_rgb:
            msg = bw.compressed(rgb[:, :, ::-1], compressed_rgb, t_ns(k))
            want_rgb = cv2.cvtColor(cv2.imdecode(np.asarray(msg.data), cv2.IMREAD_COLOR), 4)
        else:
            msg, want_rgb = rgb_message(k, rgb, RGB_ENCODINGS[k % len(RGB_ENCODINGS)])
        # Received 30 ms after its stamp; aux 2-6 ms after rgb, and late enough that it often
        # arrives after the next rgb frame.
        messages.append(("/cam/rgb", t_ns(k) + 30_000_000, msg))
        if k == NO_AUX:
            continue
        stamp = t_ns(k) + (80_000_000 if k == LATE_AUX else (2 + k % 5) * 1_000_000)
        aux, want_aux = aux_message(k, depth, aux_kind, stamp)
        messages.append(("/cam/aux", stamp + 120_000_000, aux))
        if k != LATE_AUX:
            expected[t_ns(k)] = (want_rgb, want_aux, stamp)
    messages.append(("/cam/info", t_ns(0), bw.camera_info(t_ns(0), W, H)))
    return bw.write_bag(path, storage, messages), expected


def read_dataset(out: Path) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    with (out / "index.csv").open() as f:
        rows = list(csv.DictReader(f))
    found = {}
    for row in rows:
        rgb = cv2.cvtColor(cv2.imread(str(out / "rgb" / f"{row['name']}.png")), 4)
        aux = cv2.imread(str(out / "aux" / f"{row['name']}.png"), cv2.IMREAD_UNCHANGED)
        found[int(row["rgb_stamp_ns"])] = (rgb, aux, int(row["aux_stamp_ns"]))
    return found


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("aux_kind", ["16UC1", "32FC1", "mono8", "mono16", "compressedDepth"])
def test_from_bag_pairs_and_decodes_as_the_node(tmp_path, storage, aux_kind, capsys):
    bag, expected = record(tmp_path / "rec", storage, aux_kind)
    out = tmp_path / "data"
    argv = [str(bag), "--rgb", "/cam/rgb", "--aux", "/cam/aux", "--camera-info", "/cam/info"]
    assert main(["from-bag", *argv, "--out", str(out), "--no-progress"]) == 0
    assert f"{len(expected)} pairs written" in capsys.readouterr().out
    found = read_dataset(out)
    assert sorted(found) == sorted(expected)  # NO_AUX and LATE_AUX unpaired
    for stamp, (rgb, aux, aux_stamp) in expected.items():
        got_rgb, got_aux, got_aux_stamp = found[stamp]
        np.testing.assert_array_equal(got_rgb, rgb)
        assert got_aux.dtype == aux.dtype
        np.testing.assert_array_equal(got_aux, aux)
        assert got_aux_stamp == aux_stamp
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    depth = aux_kind not in ("mono8", "mono16")
    assert meta["aux"] == {
        "kind": "depth" if depth else "intensity",
        "encoding": "16UC1" if depth else aux_kind,
    }
    info = yaml.safe_load((out / "camera_info.yaml").read_text())
    assert info["camera_matrix"]["data"][:3] == [50.0, 0.0, W / 2]
    assert (info["image_width"], info["image_height"]) == (W, H)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_rgb_and_every_nth_pair(tmp_path, fmt):
    bag, expected = record(tmp_path / "rec", "mcap", "16UC1", compressed_rgb=fmt)
    out = tmp_path / "data"
    argv = ["from-bag", str(bag), "--rgb", "/cam/rgb", "--aux", "/cam/aux", "--out", str(out)]
    assert main([*argv, "--every", "3", "--no-progress"]) == 0
    found = read_dataset(out)
    kept = sorted(expected)[::3]  # every third pair, in pairing order
    assert sorted(found) == kept
    for stamp in kept:
        np.testing.assert_array_equal(found[stamp][0], expected[stamp][0])
    assert not (out / "camera_info.yaml").exists()


def test_slop_decides_what_pairs(tmp_path):
    bag, expected = record(tmp_path / "rec", "sqlite3", "16UC1")
    out = tmp_path / "data"
    argv = ["from-bag", str(bag), "--rgb", "/cam/rgb", "--aux", "/cam/aux", "--out", str(out)]
    assert main([*argv, "--slop", "0.1", "--no-progress"]) == 0
    assert t_ns(LATE_AUX) in read_dataset(out)  # 80 ms apart pairs within 100 ms


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_input_gets_one_line_naming_the_file(tmp_path, capsys):
    bag, _ = record(tmp_path / "rec", "mcap", "16UC1")
    out = str(tmp_path / "data")
    base = ["from-bag", str(bag), "--rgb", "/cam/rgb", "--out", out, "--no-progress"]
    assert main([*base, "--aux", "/cam/depth"]) == 1
    line = one_error_line(capsys)
    assert str(bag) in line and "no topic /cam/depth (--aux)" in line and "/cam/aux" in line
    assert main([*base, "--aux", "/cam/info"]) == 1
    assert "holds ['sensor_msgs/msg/CameraInfo']" in one_error_line(capsys)
    assert main([*base, "--aux", "/cam/aux", "--camera-info", "/cam/rgb"]) == 1
    assert "needs one of ['sensor_msgs/msg/CameraInfo']" in one_error_line(capsys)
    missing = tmp_path / "nothing.mcap"
    assert main(["from-bag", str(missing), "--rgb", "a", "--aux", "b", "--out", out]) == 1
    assert f"{missing}: no such bag" in one_error_line(capsys)
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not a bag at all")
    assert main(["from-bag", str(junk), "--rgb", "a", "--aux", "b", "--out", out]) == 1
    assert f"{junk}: not a readable rosbag2" in one_error_line(capsys)
    assert main([*base, "--aux", "/cam/aux"]) == 0
    capsys.readouterr()
    assert main([*base, "--aux", "/cam/aux"]) == 1
    assert "already holds a dataset" in one_error_line(capsys)
    assert main([*base, "--aux", "/cam/aux", "--every", "4", "--overwrite"]) == 0
    assert len(list((tmp_path / "data" / "rgb").glob("*.png"))) == 3  # old frames gone
    capsys.readouterr()
    (tmp_path / "data" / "labels").mkdir()
    assert main([*base, "--aux", "/cam/aux", "--overwrite"]) == 1
    assert "has labels/" in one_error_line(capsys)


def test_unpairable_and_undecodable_frames(tmp_path, capsys):
    # aux at another size never fits: every pair is skipped and the error says why.
    messages = []
    for k in range(3):
        rgb, depth = scene(k)
        messages.append(("/rgb", t_ns(k), bw.image(rgb, "rgb8", t_ns(k))))
        small = np.zeros((H // 2, W // 2), np.uint16)
        messages.append(("/aux", t_ns(k) + 1, bw.image(small, "16UC1", t_ns(k))))
    bag = bw.write_bag(tmp_path / "rec", "sqlite3", messages)
    argv = ["from-bag", str(bag), "--rgb", "/rgb", "--aux", "/aux", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 1
    line = one_error_line(capsys)
    assert str(bag) in line and "skipped 3 size_mismatch" in line and "rgb is 32x24" in line
    # An aux encoding the node does not take, e.g. a colour image on the depth topic.
    messages = [m for m in messages if m[0] == "/rgb"]
    messages += [("/aux", t_ns(k) + 1, bw.image(scene(k)[0], "rgb8", t_ns(k))) for k in range(3)]
    bag = bw.write_bag(tmp_path / "rec2", "mcap", messages)
    argv = ["from-bag", str(bag), "--rgb", "/rgb", "--aux", "/aux", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "b")]) == 1
    assert "aux encoding 'rgb8' cannot feed a depth or infrared model" in one_error_line(capsys)


def test_compressed_depth_32fc1_and_all_invalid_depth(tmp_path, capsys):
    import struct

    from ssma_ros.recording.bag import COMPRESSED, as_image

    # image_transport's 32FC1 compressedDepth: v = A / depth + B in a 16-bit PNG, 0 = invalid.
    depth = np.array([[0.5, 1.0], [2.0, np.nan]], np.float32)
    quant_a, quant_b = 100.0, 10.0
    v = np.where(np.isnan(depth), 0, np.round(quant_a / np.nan_to_num(depth, nan=1) + quant_b))
    ok, png = cv2.imencode(".png", v.astype(np.uint16))
    msg = bw.T["sensor_msgs/msg/CompressedImage"](
        header=bw.header(0),
        format="32FC1; compressedDepth png",
        data=np.frombuffer(struct.pack("<iff", 0, quant_a, quant_b) + png.tobytes(), np.uint8),
    )
    image = as_image(msg, COMPRESSED)
    assert image.encoding == "32FC1"
    from ssma_ros.serve.codec import image_to_numpy

    np.testing.assert_allclose(image_to_numpy(image), depth, rtol=1e-6)
    # Depth without a valid pixel: the node serves such a frame from RGB alone, not fused.
    messages = []
    for k in range(2):
        messages.append(("/rgb", t_ns(k), bw.image(scene(k)[0], "rgb8", t_ns(k))))
        messages.append(
            ("/aux", t_ns(k) + 1, bw.image(np.zeros((H, W), np.uint16), "16UC1", t_ns(k)))
        )
    bag = bw.write_bag(tmp_path / "rec", "mcap", messages)
    argv = ["from-bag", str(bag), "--rgb", "/rgb", "--aux", "/aux", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 1
    assert "skipped 2 aux_all_invalid" in one_error_line(capsys)
