"""The dataset-folder reader (ssma_ros/data/readers/folder.py) and `ssma-dataset check`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ssma_ros.data.readers import READERS
from ssma_ros.data.readers.folder import FolderDatasetError, FolderReader
from ssma_ros.recording.cli import main as dataset_main

H, W = 32, 48
CLASSES = {
    "name": "yard",
    "classes": [["void", [0, 0, 0]], ["ground", [128, 64, 128]], ["obstacle", [220, 20, 60]]],
    "void": [0],
}


def frame(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(k)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth_mm = rng.integers(0, 8000, (H, W), dtype=np.uint16)
    label = rng.integers(0, 3, (H, W), dtype=np.uint8)
    return rgb, depth_mm, label


def make_folder(root: Path, n: int = 8, meta: bool = True) -> Path:
    """Write a dataset folder as from-bag does, with labels and classes added."""
    for sub in ("rgb", "aux", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        rgb, depth, label = frame(k)
        cv2.imwrite(str(root / "rgb" / f"{k:06d}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(root / "aux" / f"{k:06d}.png"), depth)
        cv2.imwrite(str(root / "labels" / f"{k:06d}.png"), label)
    (root / "classes.yaml").write_text(yaml.safe_dump(CLASSES))
    if meta:
        (root / "dataset.yaml").write_text(
            yaml.safe_dump({"aux": {"kind": "depth", "encoding": "16UC1"}})
        )
    info = {
        "image_width": W * 2,
        "image_height": H * 2,
        "camera_matrix": {"rows": 3, "cols": 3, "data": [80, 0, 48, 0, 80, 32, 0, 0, 1]},
    }
    (root / "camera_info.yaml").write_text(yaml.safe_dump(info))
    return root


def test_reads_frames_as_written(tmp_path):
    root = make_folder(tmp_path / "d")
    reader = FolderReader(root, "all")
    assert READERS["folder"] is FolderReader
    assert len(reader) == 8 and reader.class_set.names == ("void", "ground", "obstacle")
    s = reader[5]
    rgb, depth, label = frame(5)
    np.testing.assert_array_equal(s["rgb"], rgb)
    np.testing.assert_array_equal(s["aux"], depth)
    np.testing.assert_array_equal(s["label"], label)
    assert (s["aux_kind"], s["aux_encoding"], s["name"]) == ("depth", "16UC1", "000005")
    # camera_info.yaml was for twice the size: intrinsics scaled to the images.
    assert s["camera"].fx == pytest.approx(40.0) and s["camera"].cx == pytest.approx(23.75)


def test_split_by_fraction_is_seeded_and_disjoint(tmp_path):
    root = make_folder(tmp_path / "d")
    names = lambda split, **kw: [i[0] for i in FolderReader(root, split, **kw).items]  # noqa: E731
    train, val = names("train", val_fraction=0.25), names("val", val_fraction=0.25)
    assert len(val) == 2 and sorted(train + val) == [f"{k:06d}" for k in range(8)]
    assert names("val", val_fraction=0.25) == val
    seeds = {tuple(names("val", val_fraction=0.25, seed=s)) for s in range(6)}
    assert len(seeds) > 1


def test_split_by_lists(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "train.txt").write_text("000000\n000001\n# a comment\n000002\n")
    (root / "val.txt").write_text("000007\n")
    assert [i[0] for i in FolderReader(root, "val").items] == ["000007"]
    assert len(FolderReader(root, "train")) == 3
    (root / "val.txt").write_text("000007\n000099\n")
    with pytest.raises(FolderDatasetError, match=r"val\.txt: 1 names without a labelled frame"):
        FolderReader(root, "val")


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_labels_fail_with_one_line_naming_the_file(tmp_path, capsys):
    root = make_folder(tmp_path / "d")
    assert dataset_main(["check", str(root), "--val-fraction", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "6 train + 2 val labelled frames, aux depth (16UC1), 3 classes" in out
    bad = frame(3)[2]
    bad[0, :4] = [0, 7, 255, 7]
    cv2.imwrite(str(root / "labels" / "000003.png"), bad)
    assert dataset_main(["check", str(root)]) == 1
    line = error_line(capsys)
    assert "labels/000003.png: class ids [7, 255] are not in the class set 'yard'" in line
    cv2.imwrite(str(root / "labels" / "000003.png"), np.zeros((H, W + 2), np.uint8))
    assert dataset_main(["check", str(root)]) == 1
    assert "labels/000003.png: 50x32, but 000003.png is 48x32" in error_line(capsys)
    (root / "labels" / "000003.png").unlink()
    cv2.imwrite(str(root / "labels" / "000042.png"), np.zeros((H, W), np.uint8))
    assert dataset_main(["check", str(root)]) == 1
    assert "labels/000042.png: no rgb/000042.* beside it" in error_line(capsys)
    (root / "classes.yaml").unlink()
    assert dataset_main(["check", str(root)]) == 1
    assert "classes.yaml: no classes file" in error_line(capsys)


def test_aux_kind_without_dataset_yaml(tmp_path):
    root = make_folder(tmp_path / "d", meta=False)
    assert FolderReader(root, "all").aux_kind == "depth"  # 16-bit images
    for k in range(8):
        cv2.imwrite(str(root / "aux" / f"{k:06d}.png"), np.full((H, W), k, np.uint8))
    reader = FolderReader(root, "all")
    assert (reader.aux_kind, reader.aux_encoding) == ("infrared", "mono8")
    with pytest.raises(FolderDatasetError, match="depth must be a 16-bit PNG"):
        FolderReader(root, "all", aux="depth")


def test_training_reads_the_folder(tmp_path, capsys):
    from ssma_ros.train.cli import main as train_main
    from ssma_ros.train.config import from_dict
    from ssma_ros.train.data import build_datasets

    root = make_folder(tmp_path / "d")
    raw = {
        "stage": "fusion",
        "model": {"arch": "ssma", "config": "lite"},
        "data": {"source": "folder", "root": str(root), "size": [32, 48]},
        "optim": {"iterations": 2, "batch_size": 2},
        "eval": {"interval": 2, "plots": False},
        "output_dir": str(tmp_path / "run"),
        "progress": False,
        "tensorboard": False,
    }
    train, evals, info = build_datasets(from_dict(raw))
    assert (len(train), len(evals["val"])) == (6, 2)  # default val_fraction 0.2 of 8, rounded
    assert info.classes == ("void", "ground", "obstacle")
    assert info.preprocess.aux_spec.modality == "depth"
    item = train[0]
    assert item["rgb"].shape == item["aux"].shape == (3, 32, 48)
    # A bad label stops ssma-train before training, with one line naming the file.
    cv2.imwrite(str(root / "labels" / "000001.png"), np.full((H, W), 9, np.uint8))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert train_main([str(config)]) == 2
    assert "labels/000001.png: class ids [9]" in error_line(capsys)
