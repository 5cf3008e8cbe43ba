"""Dataset readers on tiny copies written in each dataset's own layout and file formats."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ssma_ros.data.classes import ClassSet, load_class_set
from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.readers import (
    READERS,
    CityscapesReader,
    FreiburgForestReader,
    ScanNetReader,
    SunRGBDReader,
    SynthiaReader,
)
from ssma_ros.data.readers.sunrgbd import sunrgbd_depth


def write(path: Path, image: np.ndarray, rgb: bool = False) -> None:
    """Write like the dataset tools do: colour arrays given in RGB are stored via OpenCV (BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), image), path


def rgb_pattern(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour image (JPEG-friendly) with distinct channels."""
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([20 + 10 * x, 30 + 8 * y, np.full((h, w), 60 + 40 * seed)], axis=2)
    return np.clip(image, 0, 255).astype(np.uint8)


def assert_aligned(s: dict) -> None:
    h, w = s["label"].shape
    assert s["rgb"].shape == (h, w, 3) and s["rgb"].dtype == np.uint8
    assert s["aux"].shape == (h, w)
    assert s["label"].dtype == np.uint8


# -- class sets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n_classes",
    [
        ("cityscapes11", 12),
        ("cityscapes19", 20),
        ("synthia11", 12),
        ("freiburg_forest", 6),
        ("sunrgbd37", 38),
        ("scannet20", 21),
    ],
)
def test_class_sets_load(name, n_classes):
    cs = load_class_set(name)
    assert cs.num_classes == n_classes and cs.palette.shape == (n_classes, 3)
    assert cs.void == (0,) and cs.names[0] == "void"
    assert cs.to_dict()["names"][1] == cs.names[1]


def test_class_set_validation_and_lookup(tmp_path):
    with pytest.raises(ValueError, match="out of range"):
        ClassSet("x", ("void", "a"), np.zeros((2, 3), np.uint8), maps={"m": {5: 7}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nclasses:\n  - [void, [0, 0]]\n")
    with pytest.raises(ValueError):
        load_class_set(bad)
    with pytest.raises(FileNotFoundError):
        load_class_set("no_such_dataset")
    cs = load_class_set("scannet20")
    np.testing.assert_array_equal(cs.lut("nyu40")[[0, 1, 14, 13, 39]], [0, 1, 13, 0, 20])
    with pytest.raises(ValueError, match="no map"):
        cs.lut("labelIds")


def test_registry_names_every_reader():
    assert set(READERS) == {
        "cityscapes",
        "freiburg_forest",
        "sunrgbd",
        "scannet",
        "synthia",
        "folder",
    }


# -- Cityscapes -----------------------------------------------------------------------------------


def make_cityscapes(root: Path) -> None:
    h, w = 4, 6
    for i, (city, stem) in enumerate(
        [("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")]
    ):
        write(
            root / "leftImg8bit/val" / city / f"{stem}_leftImg8bit.png",
            rgb_pattern(h, w, i),
            rgb=True,
        )
        disparity = np.zeros((h, w), np.uint16)
        disparity[0] = [0, 1, 257, 513, 1025, 2049]  # invalid, infinitely far, d = 1, 2, 4, 8 px
        write(root / "disparity/val" / city / f"{stem}_disparity.png", disparity)
        camera = {
            "extrinsic": {
                "baseline": 0.2,
                "pitch": 0.05,
                "roll": 0.0,
                "x": 1.7,
                "y": 0.0,
                "yaw": 0.0,
                "z": 1.2,
            },
            "intrinsic": {"fx": 2000.0 + i, "fy": 2001.0, "u0": 3.0, "v0": 2.0},
        }
        (root / "camera/val" / city).mkdir(parents=True, exist_ok=True)
        (root / "camera/val" / city / f"{stem}_camera.json").write_text(json.dumps(camera))
        labels = np.zeros((h, w), np.uint8)
        labels[1] = [7, 8, 26, 24, 12, 255]  # road, sidewalk, car, person, wall, license plate
        labels[2] = [23, 27, 31, 33, 9, 4]  # sky, truck, train, bicycle, parking, static
        write(root / "gtFine/val" / city / f"{stem}_gtFine_labelIds.png", labels)


def test_cityscapes_reader(tmp_path):
    make_cityscapes(tmp_path)
    reader = CityscapesReader(tmp_path, "val")
    assert len(reader) == 2
    s = reader[0]
    assert_aligned(s)
    assert s["name"] == "cityscapes/val/aachen_000000_000019"
    np.testing.assert_array_equal(s["rgb"], rgb_pattern(4, 6, 0))  # RGB order, lossless PNG
    assert (
        s["aux_kind"] == "depth" and s["aux_encoding"] == "32FC1" and s["aux"].dtype == np.float32
    )
    depth = s["aux"][0]
    assert np.isnan(depth[:2]).all() and np.isnan(s["aux"][1:]).all()
    np.testing.assert_allclose(
        depth[2:], [400.0, 200.0, 100.0, 50.0], rtol=1e-6
    )  # 0.2 m * 2000 px / d
    np.testing.assert_array_equal(s["label"][1], [3, 4, 8, 10, 2, 0])
    np.testing.assert_array_equal(s["label"][2], [1, 8, 8, 11, 0, 0])
    assert s["camera"] == CameraIntrinsics(2000.0, 2001.0, 3.0, 2.0)
    assert reader[1]["camera"].fx == 2001.0 and reader[1]["name"].endswith("bochum_000000_000313")
    nineteen = CityscapesReader(tmp_path, "val", class_set="cityscapes19")[0]["label"]
    np.testing.assert_array_equal(nineteen[1], [1, 2, 14, 12, 4, 0])


def test_cityscapes_reader_reports_missing_files(tmp_path):
    make_cityscapes(tmp_path)
    (tmp_path / "camera/val/bochum/bochum_000000_000313_camera.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        CityscapesReader(tmp_path, "val")
    with pytest.raises(FileNotFoundError):
        CityscapesReader(tmp_path, "test")


# -- Freiburg Forest ------------------------------------------------------------------------------

GT_COLOURS = [
    ((170, 170, 170), 1),
    ((0, 255, 0), 2),
    ((102, 102, 51), 3),
    ((0, 60, 0), 3),  # tree -> vegetation
    ((0, 120, 255), 4),
    ((0, 0, 0), 5),
    ((255, 255, 255), 0),  # void
    ((173, 168, 171), 1),  # JPEG-like deviation from trail
    ((200, 40, 40), 0),  # unknown colour
]


def make_freiburg(root: Path) -> None:
    h, w = 6, 9
    for i, frame in enumerate(["b1-09517", "b2-00113"]):
        base = root / "train"
        write(
            base / "rgb" / f"{frame}_Clipped.jpg", rgb_pattern(h + 2, w + 3, i), rgb=True
        )  # other size
        gt = np.zeros((h, w, 3), np.uint8)
        for x, (colour, _) in enumerate(GT_COLOURS):
            gt[:, x] = colour
        write(base / "GT_color" / f"{frame}_mask.png", gt, rgb=True)
        nir = np.tile(np.arange(0, 240, 20, dtype=np.uint8), (h // 2, 1))[:, : (w + 1) // 2 + 1]
        write(base / "nir_gray" / f"{frame}.tif", nir)  # half size
        write(base / "evi_gray" / f"{frame}.tif", np.full((h, w), 77 + i, np.uint8))
        depth = np.zeros((h // 2, (w + 1) // 2), np.uint8)
        depth[:, ::2] = 200
        write(base / "depth_gray" / f"{frame}.png", depth)
    write(
        root / "train/rgb/b3-00001_Clipped.jpg", rgb_pattern(h, w, 3), rgb=True
    )  # no GT: skipped


def test_freiburg_forest_reader(tmp_path):
    make_freiburg(tmp_path)
    reader = FreiburgForestReader(tmp_path, "train", aux="nir")
    assert len(reader) == 2
    s = reader[0]
    assert_aligned(s)
    assert s["name"] == "freiburg_forest/train/b1-09517"
    np.testing.assert_array_equal(s["label"][0], [i for _, i in GT_COLOURS])
    assert (s["label"] == s["label"][:1]).all()
    assert s["aux_kind"] == "nir" and s["aux_encoding"] == "mono8" and s["aux"].dtype == np.uint8
    assert s["aux"][:, 0].max() < s["aux"][:, -1].min()  # the NIR ramp survives the resize
    assert s["camera"] is None
    evi = FreiburgForestReader(tmp_path, "train", aux="evi")[1]
    assert evi["aux_kind"] == "evi" and (evi["aux"] == 78).all()
    depth = FreiburgForestReader(tmp_path, "train", aux="depth")[0]
    assert depth["aux_kind"] == "depth_gray"
    assert set(np.unique(depth["aux"])) == {0, 200}  # nearest: no blended depths
    with pytest.raises(ValueError):
        FreiburgForestReader(tmp_path, "train", aux="ndvi")


# -- SUN RGB-D ------------------------------------------------------------------------------------


def sunrgbd_encode(mm: np.ndarray) -> np.ndarray:
    mm = mm.astype(np.uint16)
    return ((mm << 3) | (mm >> 13)).astype(np.uint16)


def make_sunrgbd(root: Path) -> None:
    h, w = 5, 7
    scenes = [
        ("kv1/NYUdata/NYU0001", "NYU0001"),
        ("realsense/lg/2014_10_24-15_04_31-1311000035", "0000103"),
    ]
    for i, (scene, name) in enumerate(scenes):
        base = root / scene
        write(base / "image" / f"{name}.jpg", rgb_pattern(h, w, i), rgb=True)
        mm = np.full((h, w), 1500 + 500 * i, np.uint16)
        mm[0, 0] = 0
        mm[0, 1] = 10000
        write(base / "depth_bfx" / f"{name}.png", sunrgbd_encode(mm))
        write(base / "depth" / f"{name}.png", sunrgbd_encode(mm // 2))
        labels = np.zeros((h, w), np.uint16)
        labels[1, :6] = [1, 5, 37, 38, 40, 0]
        write(base / "label" / f"{name}.png", labels)
        (base / "intrinsics.txt").write_text(f"{500 + i} 0 3\n0 {510 + i} 2\n0 0 1\n")
    (root / "kv1/NYUdata/empty_folder").mkdir(parents=True)


def test_sunrgbd_depth_decoding():
    mm = np.array([[0, 1, 1234, 8191, 65535 >> 3]], np.uint16)
    np.testing.assert_allclose(
        sunrgbd_depth(sunrgbd_encode(mm)), [[np.nan, 0.001, 1.234, 8.191, 8.191]], equal_nan=True
    )


def test_sunrgbd_reader(tmp_path):
    make_sunrgbd(tmp_path)
    reader = SunRGBDReader(tmp_path)
    assert len(reader) == 2
    s = reader[0]
    assert_aligned(s)
    assert s["name"] == "sunrgbd/kv1/NYUdata/NYU0001"
    assert np.isnan(s["aux"][0, 0]) and s["aux"][0, 1] == pytest.approx(10.0)
    assert s["aux"][2, 2] == pytest.approx(1.5)
    np.testing.assert_array_equal(s["label"][1, :6], [1, 5, 37, 0, 0, 0])
    assert s["camera"] == CameraIntrinsics(500.0, 510.0, 3.0, 2.0)
    assert reader[1]["aux"][2, 2] == pytest.approx(2.0)
    raw = SunRGBDReader(tmp_path, depth_folder="depth")[0]
    assert raw["aux"][2, 2] == pytest.approx(0.75)
    listing = tmp_path / "val.txt"
    listing.write_text("realsense/lg/2014_10_24-15_04_31-1311000035/\n")
    only = SunRGBDReader(tmp_path, scene_list=listing)
    assert len(only) == 1 and only[0]["camera"].fx == 501.0


# -- ScanNet --------------------------------------------------------------------------------------

TSV = "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyu40class\n" + "\n".join(
    [
        "1\twall\twall\t8277\t1\t12\twall",
        "2\tchair\tchair\t4646\t5\t4\tchair",
        "3\tbooks\tbook\t1678\t23\t2\tbooks",
        "7\tdesk\tdesk\t680\t14\t10\tdesk",
        "1163\tstand\tstand\t6\t39\t6\totherfurniture",
    ]
)


def make_scannet(root: Path) -> None:
    (root / "scannetv2-labels.combined.tsv").write_text(TSV + "\n")
    for scene in ["scene0000_00", "scene0707_01"]:
        base = root / "scans" / scene
        for frame in (0, 20, 40):
            write(
                base / "color" / f"{frame}.jpg", rgb_pattern(8, 12, frame // 20), rgb=True
            )  # colour res
            depth = np.full((4, 6), 1250 + frame, np.uint16)
            depth[0, 0] = 0
            write(base / "depth" / f"{frame}.png", depth)
            raw = np.zeros((4, 6), np.uint16)
            raw[1] = [1, 2, 3, 7, 1163, 999]
            write(
                base / "label-filt" / f"{frame}.png",
                np.repeat(np.repeat(raw, 2, axis=0), 2, axis=1),
            )
        k = np.eye(4)
        k[0, 0], k[1, 1], k[0, 2], k[1, 2] = 577.9, 578.7, 319.5, 239.5
        (base / "intrinsic").mkdir(parents=True, exist_ok=True)
        (base / "intrinsic" / "intrinsic_depth.txt").write_text(
            "\n".join(" ".join(f"{v:.6f}" for v in row) for row in k)
        )


def test_scannet_reader(tmp_path):
    make_scannet(tmp_path)
    reader = ScanNetReader(tmp_path, frame_step=2)
    assert len(reader) == 4  # frames 0 and 40 of two scenes
    s = reader[1]
    assert_aligned(s)
    assert s["name"] == "scannet/scene0000_00/40"
    assert s["rgb"].shape == (4, 6, 3)  # colour resized to the depth frame
    assert np.isnan(s["aux"][0, 0]) and s["aux"][1, 1] == pytest.approx(1.29)
    # raw id -> nyu40 -> class: wall 1, chair 5, books (nyu40 23: not a benchmark class) void,
    # desk 13, otherfurniture 20, unknown id void.
    np.testing.assert_array_equal(s["label"][1], [1, 5, 0, 13, 20, 0])
    assert s["camera"] == CameraIntrinsics(577.9, 578.7, 319.5, 239.5)
    assert len(ScanNetReader(tmp_path, scenes=["scene0707_01"])) == 3
    with pytest.raises(ValueError):
        ScanNetReader(tmp_path, frame_step=0)


# -- SYNTHIA --------------------------------------------------------------------------------------


def synthia_labels(classes: list[int]) -> np.ndarray:
    """A GT/LABELS image: class in the first (R) channel, instance id in the second (G)."""
    rgb = np.zeros((3, len(classes), 3), np.uint16)
    rgb[1, :, 0] = classes
    rgb[:, :, 1] = 17
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def make_synthia(root: Path, camera_dir: str = "", nested_depth: bool = True) -> None:
    depth_dir = root / "Depth" / camera_dir / ("Depth" if nested_depth else "")
    for i, name in enumerate(["0000000.png", "0000001.png"]):
        write(root / "RGB" / camera_dir / name, rgb_pattern(3, 6, i), rgb=True)
        cm = np.full((3, 6), 250 + 100 * i, np.uint16)
        cm[0, 0], cm[0, 1] = 0, 65535
        write(depth_dir / name, np.dstack([cm, cm, cm]))
        write(root / "GT" / "LABELS" / camera_dir / name, synthia_labels([3, 12, 22, 21, 13, 15]))


def test_synthia_rand_cityscapes_reader(tmp_path):
    make_synthia(tmp_path)
    reader = SynthiaReader(tmp_path)
    assert len(reader) == 2
    s = reader[1]
    assert_aligned(s)
    assert s["name"] == "synthia/rand_cityscapes/0000001"
    assert np.isnan(s["aux"][0, :2]).all() and s["aux"][1, 1] == pytest.approx(3.5)
    # road, motorcycle -> rider/bicycle, lanemarking -> road, wall -> building, parking -> void,
    # traffic light -> sign
    np.testing.assert_array_equal(s["label"][1], [3, 11, 3, 2, 0, 9])
    assert s["camera"] is None


def test_synthia_seqs_reader(tmp_path):
    make_synthia(tmp_path, "Stereo_Left/Omni_F", nested_depth=False)
    camera = CameraIntrinsics(532.7, 532.7, 640.0, 380.0)
    reader = SynthiaReader(tmp_path, "seqs", camera_dir="Stereo_Left/Omni_F", camera=camera)
    s = reader[0]
    assert s["aux"][2, 3] == pytest.approx(2.5)
    # SEQS ids: 12 lanemarking -> road, 21/22 unused -> void, 15 traffic light -> sign
    np.testing.assert_array_equal(s["label"][1], [3, 3, 0, 0, 0, 9])
    assert s["camera"] == camera
    with pytest.raises(ValueError):
        SynthiaReader(tmp_path, "seqs")
