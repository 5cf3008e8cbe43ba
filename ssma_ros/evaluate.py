"""`ssma-eval BUNDLE DATASET`: score a model bundle the way the robot runs it.

Per frame, exactly the node's path: `load_bundle` -> `load_backend` -> `Segmenter.inputs`
(the shared `Preprocess`) -> `Segmenter.infer` -> `serve.outputs.postprocess` -> the mask at
the input resolution, which is scored against the label at that resolution (void ignored;
`ssma_ros.metrics`, the rules training scores by). `--aux-blank` feeds the blank aux image, as
the node does when the aux stream stalls (the RGB-only fallback).

DATASET is a dataset folder (`data.readers.folder`: rgb/, aux/, labels/, classes.yaml), or
`synthetic` for the generator's frames at the bundle's size (`--split`, `--first`, `--count`,
`--conditions`, `--strength`), which is how models/default/MODEL_CARD.md is scored. Frames are
grouped by condition (synthetic) or by a `--groups` CSV (columns name, group) for a folder.

Prints per-group mIoU and pixel accuracy, per-class IoU and the latency per frame
(preprocessing + inference + postprocessing); `--out DIR` also writes metrics.json, a
row-normalised confusion matrix (confusion.png) and a grid of examples (examples.png).
"""

from __future__ import annotations

import csv
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssma_ros.bundle import Bundle

ALL = "all"
#: Synthetic generator aux per bundle aux modality.


class EvalError(ValueError):
    """A bundle and dataset that cannot be scored together; the message says which file."""


@dataclass(frozen=True)
class GroupScores:
    frames: int
    miou: float
    pixel_accuracy: float
    iou: list[float]
    confusion: np.ndarray


@dataclass(frozen=True)
class EvalResult:
    bundle: str
    dataset: str
    aux_blank: bool
    backend: str
    classes: tuple[str, ...]
    groups: dict[str, GroupScores]  # per group, and ALL (every frame pooled)
    latency_ms: dict[str, float]  # p50, p95, mean of preprocessing + inference + postprocessing

    @property
    def mean_of_groups(self) -> float:
        """Mean of the groups' mIoUs (the model card's "mean" row); the pooled one if no groups."""
        named = [g.miou for name, g in self.groups.items() if name != ALL]
        return float(np.mean(named)) if named else self.groups[ALL].miou

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "dataset": self.dataset,
            "aux_blank": self.aux_blank,
            "backend": self.backend,
            "classes": list(self.classes),
            "mean_of_groups_miou": self.mean_of_groups,
            "groups": {
                name: {
                    "frames": g.frames,
                    "miou": g.miou,
                    "pixel_accuracy": g.pixel_accuracy,
                    "iou": dict(zip(self.classes, g.iou)),
                    "confusion": g.confusion.tolist(),
                }
                for name, g in self.groups.items()
            },
            "latency_ms": self.latency_ms,
        }


# -- frames ------------------------------------------------------------------------------------


def synthetic_frames(
    bundle: Bundle,
    split: str,
    first: int,
    count: int,
    conditions: Sequence[str],
    strength: float,
    benchmark: str | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(group, frame) of the generator at the bundle's size, with the scene seed it trained on.

    `benchmark`: the generator version; None = the one the bundle trained on.
    """
    from ssma_ros.data import synthetic

    modality = (bundle.preprocess.get("aux") or {}).get("modality")
    if modality not in synthetic.GENERATOR_AUX:
        raise EvalError(
            f"{bundle.path}: the synthetic frames have aux {sorted(synthetic.GENERATOR_AUX)}, "
            f"the bundle takes {modality!r}"
        )
    scene_seed = int(training_data(bundle).get("scene_seed", 0))
    benchmark = benchmark or trained_benchmark(bundle)
    for condition in conditions:
        frames = synthetic.SyntheticDataset(
            split,
            first + count,
            bundle.height,
            bundle.width,
            scene_seed,
            synthetic.GENERATOR_AUX[modality],
            conditions=(condition,),
            strength=strength,
            benchmark=benchmark,
        )
        for index in range(first, first + count):
            yield condition, frames[index]


def training_data(bundle: Bundle) -> dict[str, Any]:
    """The `data` section of the training config a bundle records (empty if it records none)."""
    return bundle.meta.get("training", {}).get("train_config", {}).get("data", {})


def trained_benchmark(bundle: Bundle) -> str:
    """Synthetic benchmark version the bundle was trained on (v1 before there was a choice)."""
    return training_data(bundle).get("benchmark", "v1")


def folder_frames(
    bundle: Bundle,
    root: Path,
    split: str,
    groups_file: Path | None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[int, Iterator[tuple[str, dict[str, Any]]]]:
    """Give the frame count and (group, frame) pairs of a folder with the bundle's classes."""
    from ssma_ros.data.readers.folder import FolderReader

    reader = FolderReader(root, split, val_fraction=val_fraction, seed=seed)
    names = tuple(reader.class_set.names)
    if names != tuple(bundle.classes):
        raise EvalError(
            f"{root}: classes {list(names)} are not the bundle's {list(bundle.classes)}"
        )
    groups: dict[str, str] = {}
    if groups_file is not None:
        try:
            with groups_file.open(newline="") as f:
                groups = {row["name"]: row["group"] for row in csv.DictReader(f)}
        except (OSError, KeyError) as err:
            raise EvalError(f"{groups_file}: expected a CSV with columns name, group ({err})")

    def frames() -> Iterator[tuple[str, dict[str, Any]]]:
        for item in reader:
            yield groups.get(item["name"], "ungrouped" if groups else ALL), item

    return len(reader), frames()


# -- scoring -----------------------------------------------------------------------------------


def evaluate(
    bundle: Bundle,
    frames: Iterator[tuple[str, dict[str, Any]]],
    *,
    dataset: str,
    aux_blank: bool = False,
    backend: str = "onnxruntime",
    device: str = "cpu",
    precision: str = "fp32",
    threads: int = 1,
    examples: int = 4,
    total: int | None = None,
    progress: bool = False,
) -> tuple[EvalResult, list[dict[str, np.ndarray]]]:
    """Score `frames` ((group, frame) pairs) through the node's path.

    Returns the result and up to `examples` rows for the example grid.
    """
    from tqdm import tqdm

    from ssma_ros.metrics import confusion_counts, scores
    from ssma_ros.runtime.loader import load_backend
    from ssma_ros.serve.outputs import postprocess
    from ssma_ros.serve.segmenter import Segmenter

    void = bundle.void_indices[0] if bundle.void_indices else None
    engine, reason = load_backend(
        bundle, backend, device=device, precision=precision, threads=threads
    )
    segmenter = Segmenter(bundle, engine)
    matrices: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    times: list[float] = []
    rows: list[dict[str, np.ndarray]] = []
    try:
        segmenter.warm_up()
        for group, frame in tqdm(frames, total=total, disable=not progress, desc="ssma-eval"):
            rgb, label = frame["rgb"], np.asarray(frame["label"])
            if label.shape != rgb.shape[:2]:
                raise EvalError(f"{frame['name']}: label {label.shape} and rgb {rgb.shape[:2]}")
            tick = time.perf_counter()
            if aux_blank or not segmenter.uses_aux:
                inputs = segmenter.inputs(rgb)
            else:
                inputs = segmenter.inputs(
                    rgb, frame["aux"], frame["aux_encoding"], frame.get("camera")
                )
            seg = postprocess(segmenter.infer(inputs), rgb.shape[:2])
            times.append(time.perf_counter() - tick)
            confusion = confusion_counts(seg.mask, label, bundle.num_classes, void)
            for name in dict.fromkeys((group, ALL)):
                matrices[name] = matrices.get(name, 0) + confusion
                counts[name] = counts.get(name, 0) + 1
            if len(rows) < examples:
                rows.append(_example(segmenter, frame, seg, aux_blank))
    finally:
        segmenter.close()
    if not times:
        raise EvalError(f"{dataset}: no frames to score")
    groups = {}
    for name in [n for n in matrices if n != ALL] + [ALL]:  # groups as met, pooled last
        m = scores(matrices[name], void)
        groups[name] = GroupScores(counts[name], m.miou, m.pixel_accuracy, m.iou, m.confusion)
    ms = [1000 * t for t in times]
    latency = {
        "p50": statistics.median(ms),
        "p95": float(np.percentile(ms, 95)),
        "mean": statistics.fmean(ms),
    }
    result = EvalResult(
        str(bundle.path), dataset, aux_blank, reason, tuple(bundle.classes), groups, latency
    )
    return result, rows


def _example(segmenter, frame, seg, aux_blank) -> dict[str, np.ndarray]:
    """Make a row of the example grid: the network's view, truth and prediction."""
    p = segmenter.preprocess
    rgb = p.encode_rgb(frame["rgb"])
    size = rgb.shape[:2]
    if aux_blank or not segmenter.uses_aux:
        aux = np.zeros_like(rgb)
    else:
        aux = p.encode_aux(frame["aux"], frame["aux_encoding"], frame.get("camera"), frame["rgb"])
    from ssma_ros.data.preprocess import resize_nearest

    return {
        "rgb": rgb,
        "aux": aux,
        "label": resize_nearest(np.asarray(frame["label"]), *size),
        "pred": resize_nearest(seg.mask, *size),
        "confidence": resize_nearest(seg.confidence(), *size),
    }


# -- report ------------------------------------------------------------------------------------


def report(result: EvalResult) -> str:
    mode = "RGB only (aux blanked)" if result.aux_blank else "RGB + aux"
    lines = [
        f"{result.bundle} on {result.dataset}, {mode}; {result.backend}",
        "",
        "| group | frames | mIoU % | pixel accuracy % |",
        "|---|---:|---:|---:|",
    ]
    for name, g in result.groups.items():
        if name == ALL and len(result.groups) == 2:
            continue  # one group: the pooled row would repeat it
        label = f"{name} (pooled)" if name == ALL and len(result.groups) > 1 else name
        lines.append(
            f"| {label} | {g.frames} | {100 * g.miou:.2f} | {100 * g.pixel_accuracy:.2f} |"
        )
    if len(result.groups) > 2:
        lines.append(f"| mean of groups | | {100 * result.mean_of_groups:.2f} | |")
    iou = result.groups[ALL].iou
    lines += ["", "| class | IoU % |", "|---|---:|"]
    lines += [
        f"| {c} | {'-' if np.isnan(v) else f'{100 * v:.2f}'} |"
        for c, v in zip(result.classes, iou)
    ]
    lat = result.latency_ms
    lines += [
        "",
        "latency per frame (preprocessing + inference + postprocessing): "
        f"p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, mean {lat['mean']:.1f} ms",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(
    result: EvalResult, rows: list[dict[str, np.ndarray]], palette: np.ndarray, out: Path
) -> None:
    from ssma_ros.train import plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    (out / "report.md").write_text(report(result))
    pooled = result.groups[ALL]
    plots.plot_confusion(
        pooled.confusion,
        result.classes,
        out / "confusion.png",
        title=f"{result.dataset}: mIoU {100 * pooled.miou:.1f}% (rows: truth, normalised)",
    )
    if rows:
        plots.plot_samples(rows, palette, out / "examples.png", title=result.dataset)
