"""README "Train on your robot's data", run end to end on a tiny synthetic bag.

The commands are read from the README block between the walkthrough markers and run in order,
in-process through the console scripts setup.py declares. What this test changes, and only
this: the recording (`ros2 bag record`) is replaced by a bag written here with rosbags (the
same topics, 64x48 synthetic street frames at 10 Hz: rgb8, 16UC1 depth, camera_info); the
labelling by the generator's ground truth written as class-id PNGs; the ImageNet download by a
weights file in timm's layout; the engine build (`ssma-build-engine`, TensorRT) is skipped. For
size, ssma-train gets a lite model at 32x48 for 4 iterations (the full model's ImageNet start is
tested in test_pretrained.py) and ssma-prune one short step.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import bag_writer as bw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRAMES, H, W = 60, 48, 64
TRAIN_OVERRIDES = [
    "model.config=lite",
    "init.backbone=null",
    "data.size=[32,48]",
    "data.num_workers=0",
    "optim.iterations=4",
    "optim.batch_size=2",
    "optim.amp=off",
    "optim.channels_last=false",
    "eval.interval=4",
    "eval.batch_size=2",
    "eval.plots=false",
    "device=cpu",
    "tensorboard=false",
    "progress=false",
]
PRUNE_OPTIONS = ["--steps", "1", "--finetune-iters", "2", "--final-iters", "0"]
PRUNE_OPTIONS += ["--latency-runs", "1", "--threads", "1"]


def walkthrough() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- walkthrough -->\n```bash\n(.*?)```\n<!-- /walkthrough -->", text, re.S
    )
    assert block, "README lost its walkthrough block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def console_scripts() -> dict[str, str]:
    """Console-script name -> "module:function", from setup.py."""
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+) = ([\w.]+:\w+)"', text))


def run(argv: list[str]) -> int:
    module, function = console_scripts()[argv[0]].split(":")
    return getattr(importlib.import_module(module), function)(argv[1:])


def record(path: Path, topics: dict[str, str]) -> dict[int, np.ndarray]:
    """Write the bag the README records; returns the ground-truth label per rgb stamp."""
    from ssma_ros.data import synthetic

    frames = synthetic.SyntheticDataset("train", FRAMES, H, W, 0, "depth")
    messages, labels = [], {}
    for k in range(FRAMES):
        f = frames[k]
        t = 1_000_000_000 * 100 + k * 100_000_000
        mm = np.nan_to_num(np.round(f["aux"] * 1000), nan=0).clip(0, 65535).astype(np.uint16)
        messages.append((topics["rgb"], t + 20_000_000, bw.image(f["rgb"], "rgb8", t)))
        messages.append((topics["aux"], t + 25_000_000, bw.image(mm, "16UC1", t + 3_000_000)))
        if k % 10 == 0:
            messages.append((topics["info"], t, bw.camera_info(t, W, H)))
        labels[t] = f["label"]
    bw.write_bag(path, "mcap", messages)
    return labels


def label(dataset: Path, labels: dict[int, np.ndarray]) -> None:
    """Label as a person would: class-id PNGs in data/yard/labels and classes.yaml."""
    from ssma_ros.data import synthetic

    (dataset / "labels").mkdir()
    index = (dataset / "index.csv").read_text().splitlines()[1:]
    for row in index:
        name, rgb_stamp = row.split(",")[:2]
        cv2.imwrite(str(dataset / "labels" / f"{name}.png"), labels[int(rgb_stamp)])
    classes = [[c, list(map(int, p))] for c, p in zip(synthetic.CLASSES, synthetic.PALETTE)]
    (dataset / "classes.yaml").write_text(yaml.safe_dump({"name": "yard", "classes": classes}))


@pytest.mark.usefixtures("one_torch_thread")
def test_readme_walkthrough_runs_end_to_end(tmp_path, monkeypatch, capsys):
    from safetensors.torch import save_file
    from test_pretrained import timm_state

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config" / "train").mkdir(parents=True)
    (tmp_path / "config" / "train" / "robot.yaml").write_text(
        (ROOT / "config" / "train" / "robot.yaml").read_text()
    )
    commands = [shlex.split(c) for c in walkthrough()]
    assert [c[0] for c in commands] == [
        "ros2",
        "ssma-dataset",
        "ssma-dataset",
        "python",
        "ssma-train",
        "ssma-prune",
        "ssma-export",
        "ssma-build-engine",
        "ssma-eval",
        "ssma-eval",
    ]
    labels: dict[int, np.ndarray] = {}
    for argv in commands:
        if argv[0] == "ros2":  # the recording: the same topics, written with rosbags
            out = argv[argv.index("-o") + 1]
            rgb, aux, info = argv[argv.index("-o") + 2 :]
            labels = record(tmp_path / out, {"rgb": rgb, "aux": aux, "info": info})
            continue
        if argv[0] == "python":  # the ImageNet download: a file in the same layout
            save_file(timm_state(), "resnetv2_50.safetensors")
            continue
        if argv[0] == "ssma-build-engine":  # TensorRT, on the robot
            continue
        if argv[:2] == ["ssma-dataset", "check"]:  # labelling happens before the check
            label(tmp_path / argv[2], labels)
        if argv[0] == "ssma-train":
            argv += [a for o in TRAIN_OVERRIDES for a in ("-o", o)]
        if argv[0] == "ssma-prune":
            argv += PRUNE_OPTIONS
        if argv[0] in ("ssma-eval", "ssma-dataset") and argv[1] != "check":
            argv += ["--no-progress"]
        assert run(argv) == 0, f"{shlex.join(argv)} failed: {capsys.readouterr().err}"
    out = capsys.readouterr().out
    assert "12 pairs written to data/yard" in out  # 60 pairs, every 5th
    split = re.search(r"(\d+) train \+ (\d+) val labelled frames, aux depth \(16UC1\)", out)
    assert split and int(split.group(1)) + int(split.group(2)) == 12
    bundle = json.loads((tmp_path / "models" / "yard" / "bundle.json").read_text())
    assert bundle["classes"][1] == "sky"
    fused = json.loads((tmp_path / "runs" / "yard_eval" / "metrics.json").read_text())
    rgb_only = json.loads((tmp_path / "runs" / "yard_eval_rgb_only" / "metrics.json").read_text())
    frames = fused["groups"]["all"]["frames"]
    assert frames == rgb_only["groups"]["all"]["frames"] == int(split.group(2))  # training's val
    assert rgb_only["aux_blank"] and not fused["aux_blank"]
    assert (tmp_path / "runs" / "yard_eval" / "confusion.png").is_file()
