"""`ssma-eval` (ssma_ros/evaluate.py): a bundle scored through the node's own path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ssma_ros.evaluate_cli import main

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "default"


def card_check_figures() -> tuple[float, float]:
    """Read the model card's check figures (16 clear test frames): RGB-D, RGB-only mIoU %."""
    text = (BUNDLE / "MODEL_CARD.md").read_text()
    rgbd = re.search(r"check mIoU RGB-D: ([\d.]+) %", text)
    rgb = re.search(r"check mIoU RGB-only: ([\d.]+) %", text)
    return float(rgbd.group(1)), float(rgb.group(1))


@pytest.mark.parametrize("blank", [False, True])
def test_reproduces_the_model_card(tmp_path, blank, capsys):
    out = tmp_path / "eval"
    argv = [str(BUNDLE), "synthetic", "--count", "16", "--no-progress", "--out", str(out)]
    assert main(argv + (["--aux-blank"] if blank else [])) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    want = card_check_figures()[int(blank)]
    assert metrics["groups"]["clear"]["frames"] == 16
    assert 100 * metrics["groups"]["clear"]["miou"] == pytest.approx(want, abs=0.5)
    assert f"| clear | 16 | {100 * metrics['groups']['clear']['miou']:.2f} |" in printed
    assert metrics["latency_ms"]["p50"] > 0 and "latency per frame" in printed
    for png in ("confusion.png", "examples.png"):
        assert cv2.imread(str(out / png)) is not None


def synthetic_folder(root: Path, frames: int = 4) -> Path:
    """Synthetic test frames as a dataset folder: rgb, 16-bit depth (mm), generator labels."""
    from ssma_ros.bundle import load_bundle
    from ssma_ros.data import synthetic

    bundle = load_bundle(BUNDLE)
    data = synthetic.SyntheticDataset("test", frames, bundle.height, bundle.width, 0, "depth")
    for sub in ("rgb", "aux", "labels"):
        (root / sub).mkdir(parents=True)
    for k in range(frames):
        f = data[k]
        mm = np.nan_to_num(np.round(f["aux"] * 1000), nan=0).clip(0, 65535).astype(np.uint16)
        cv2.imwrite(str(root / "rgb" / f"{k:06d}.png"), f["rgb"][:, :, ::-1])
        cv2.imwrite(str(root / "aux" / f"{k:06d}.png"), mm)
        cv2.imwrite(str(root / "labels" / f"{k:06d}.png"), f["label"])
    classes = [[c, list(map(int, p))] for c, p in zip(bundle.classes, bundle.palette)]
    (root / "classes.yaml").write_text(yaml.safe_dump({"name": "synthetic", "classes": classes}))
    return root


def test_folder_scores_per_group_and_per_class(tmp_path, capsys):
    root = synthetic_folder(tmp_path / "data")
    groups = tmp_path / "groups.csv"
    groups.write_text("name,group\n000000,sunny\n000001,sunny\n000002,dusk\n000003,dusk\n")
    out = tmp_path / "eval"
    argv = [str(BUNDLE), str(root), "--groups", str(groups), "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["groups"]) == ["sunny", "dusk", "all"]  # as met, pooled last
    assert [m["groups"][g]["frames"] for g in ("dusk", "sunny", "all")] == [2, 2, 4]
    pooled = np.array(m["groups"]["all"]["confusion"])
    parts = np.array(m["groups"]["dusk"]["confusion"]) + np.array(
        m["groups"]["sunny"]["confusion"]
    )
    np.testing.assert_array_equal(pooled, parts)
    # The pooled scores follow from the confusion matrix: IoU = tp / (row + column - tp).
    tp = np.diag(pooled)
    with np.errstate(invalid="ignore"):  # void: never predicted nor scored
        iou = tp / (pooled.sum(0) + pooled.sum(1) - tp)
    assert m["groups"]["all"]["iou"]["road"] == pytest.approx(iou[2])
    assert m["groups"]["all"]["pixel_accuracy"] == pytest.approx(tp.sum() / pooled.sum())
    assert 0.4 < m["groups"]["all"]["miou"] < 0.9  # the default model on its own kind of scene
    assert "| mean of groups |" in capsys.readouterr().out


def test_labels_equal_to_the_node_output_score_100(tmp_path):
    """Labels made from the node's own mask for the stored frames: every valid pixel right."""
    from ssma_ros.bundle import load_bundle
    from ssma_ros.data.readers.folder import FolderReader
    from ssma_ros.runtime.loader import load_backend
    from ssma_ros.serve.outputs import postprocess
    from ssma_ros.serve.segmenter import Segmenter

    root = synthetic_folder(tmp_path / "data", frames=2)
    bundle = load_bundle(BUNDLE)
    segmenter = Segmenter(bundle, load_backend(bundle, "onnxruntime", "cpu", "fp32")[0])
    for f in FolderReader(root, "all"):
        logits = segmenter.infer(segmenter.inputs(f["rgb"], f["aux"], "16UC1", f["camera"]))
        cv2.imwrite(
            str(root / "labels" / f"{f['name']}.png"), postprocess(logits, (240, 320)).mask
        )
    segmenter.close()
    out = tmp_path / "eval"
    assert main([str(BUNDLE), str(root), "--no-progress", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())["groups"]["all"]
    assert m["miou"] == 1.0
    assert main([str(BUNDLE), str(root), "--no-progress", "--out", str(out), "--aux-blank"]) == 0
    blank = json.loads((out / "metrics.json").read_text())
    assert blank["aux_blank"] and blank["groups"]["all"]["miou"] < 1.0


def test_bad_input_one_line(tmp_path, capsys):
    root = synthetic_folder(tmp_path / "data", frames=1)
    classes = yaml.safe_load((root / "classes.yaml").read_text())
    classes["classes"][9][0] = "thing"
    (root / "classes.yaml").write_text(yaml.safe_dump(classes))
    assert main([str(BUNDLE), str(root), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and f"{root}: classes ['void', 'sky'," in err[0]
        and "'thing'] are not the bundle's" in err[0]
    )
    assert main([str(tmp_path / "nobundle"), "synthetic"]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_conditions_come_from_the_benchmark_the_bundle_trained_on(tmp_path, capsys):
    # the default model trained on v2; v1 (no depth failures) is scored only when asked for
    argv = [str(BUNDLE), "synthetic", "--count", "2", "--no-progress", "--conditions", "range"]
    assert main(argv + ["--benchmark", "v1"]) == 1
    assert "--conditions ['range']: benchmark v1 has" in capsys.readouterr().err
    out = tmp_path / "eval"
    assert main(argv + ["--out", str(out)]) == 0
    groups = json.loads((out / "metrics.json").read_text())["groups"]
    assert groups["range"]["frames"] == 2 and 0 < groups["range"]["miou"] < 1
