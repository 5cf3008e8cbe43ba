"""Score an exported bundle the way the node serves it, on synthetic frames it never saw.

Path per frame, exactly as in the ROS node: `load_bundle` -> `load_backend` (ONNX Runtime on
the CPU, fp32) -> `Segmenter.inputs(rgb, aux)` (the shared `Preprocess`: resize, aux encoding,
normalisation) -> `Segmenter.infer` -> argmax. "RGB only" calls `Segmenter.inputs(rgb)` without
aux, so the segmenter feeds the blank aux image, as the node does when the aux stream stalls.
Labels are resized to the network input as in training (nearest), and the metrics are those of
training (`ConfusionMeter`: void ignored, classes absent from labels and predictions left out).

    python -m ssma_ros.compress.bundle_eval models/default --split test --count 50 \
        --conditions clear fog night glare rain
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssma_ros.bundle import load_bundle
from ssma_ros.data import synthetic
from ssma_ros.node.segmenter import Segmenter
from ssma_ros.runtime.loader import load_backend
from ssma_ros.train.metrics import ConfusionMeter, SegMetrics

#: Synthetic generator aux kind per bundle aux modality.
GENERATOR_AUX = {"depth": "depth", "infrared": "thermal"}


@dataclass(frozen=True)
class BundleScores:
    metrics: dict[str, SegMetrics]  # "<condition>" (RGB + aux) and "<condition>_no_aux" (RGB only)
    latency_ms: float  # median Segmenter.inputs + infer time per frame (preprocessing + inference)
    frames: int  # frames per condition


def evaluate_bundle(
    bundle_path: str | Path,
    *,
    split: str = "test",
    first: int = 0,
    count: int = 16,
    conditions: Sequence[str] = ("clear",),
    strength: float = 1.0,
    rgb_only: bool = True,
    threads: int = 1,
) -> BundleScores:
    """Metrics of the bundle on synthetic frames, per condition, with aux and optionally without.

    The frames are `first .. first + count - 1` of `split`, for each condition (adverse ones at
    `strength`), with aux and, if `rgb_only`, without it. Frames are rendered at the bundle's
    input size with the scene seed it was trained with.
    """
    bundle = load_bundle(bundle_path)
    preprocess_aux = (bundle.preprocess.get("aux") or {}).get("modality")
    names = [spec.name for spec in bundle.inputs]
    if names != ["rgb", "aux"] or preprocess_aux not in GENERATOR_AUX:
        raise ValueError(
            f"bundle {bundle.name}: needs inputs ['rgb', 'aux'] with aux modality in "
            f"{sorted(GENERATOR_AUX)}, got {names} / {preprocess_aux!r}"
        )
    scene_seed = int(
        bundle.meta.get("training", {})
        .get("train_config", {})
        .get("data", {})
        .get("scene_seed", 0)
    )
    void = bundle.void_indices[0] if bundle.void_indices else None
    backend, _ = load_backend(
        bundle, "onnxruntime", device="cpu", precision="fp32", threads=threads
    )
    segmenter = Segmenter(bundle, backend)
    meters: dict[str, ConfusionMeter] = {}
    times: list[float] = []
    try:
        for condition in conditions:
            frames = synthetic.SyntheticDataset(
                split,
                first + count,
                bundle.height,
                bundle.width,
                scene_seed,
                GENERATOR_AUX[preprocess_aux],
                conditions=(condition,),
                strength=strength,
            )
            modes = [(condition, True)] + ([(f"{condition}_no_aux", False)] if rgb_only else [])
            for name, _ in modes:
                meters[name] = ConfusionMeter(bundle.num_classes, void)
            for index in range(first, first + count):
                frame = frames[index]
                label = segmenter.preprocess.label(frame["label"])
                for name, with_aux in modes:
                    tick = time.perf_counter()
                    if with_aux:
                        inputs = segmenter.inputs(
                            frame["rgb"], frame["aux"], frame["aux_encoding"], frame["camera"]
                        )
                    else:
                        inputs = segmenter.inputs(frame["rgb"])
                    logits = segmenter.infer(inputs)
                    times.append(time.perf_counter() - tick)
                    _update(meters[name], logits, label)
    finally:
        segmenter.close()
    return BundleScores(
        {name: meter.compute() for name, meter in meters.items()},
        1000.0 * statistics.median(times),
        count,
    )


def _update(meter: ConfusionMeter, logits: np.ndarray, label: np.ndarray) -> None:
    import torch

    meter.update(
        torch.from_numpy(logits.argmax(axis=1)), torch.from_numpy(label.astype(np.int64))[None]
    )


def markdown(scores: BundleScores) -> str:
    lines = ["| set | mIoU % | pixel accuracy % |", "|---|---|---|"]
    for name, m in scores.metrics.items():
        lines.append(f"| {name} | {100 * m.miou:.2f} | {100 * m.pixel_accuracy:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ssma-eval-bundle", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle folder")
    parser.add_argument("--split", default="test", choices=sorted(synthetic.SPLITS))
    parser.add_argument("--first", type=int, default=0, help="first frame index within the split")
    parser.add_argument("--count", type=int, default=16, help="frames per condition")
    parser.add_argument(
        "--conditions", nargs="+", default=["clear"], choices=list(synthetic.CONDITIONS)
    )
    parser.add_argument(
        "--strength", type=float, default=1.0, help="strength of the adverse conditions"
    )
    parser.add_argument(
        "--no-rgb-only", action="store_true", help="skip the RGB-only (aux blanked) runs"
    )
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    try:
        scores = evaluate_bundle(
            args.bundle,
            split=args.split,
            first=args.first,
            count=args.count,
            conditions=args.conditions,
            strength=args.strength,
            rgb_only=not args.no_rgb_only,
            threads=args.threads,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"ssma-eval-bundle: {err}", file=sys.stderr)
        return 1
    print(
        f"{args.bundle}: {args.split} frames {args.first}..{args.first + args.count - 1}, "
        f"strength {args.strength:g}, ONNX Runtime CPU, {args.threads} thread(s)"
    )
    print(markdown(scores), end="")
    print(f"median per frame (preprocessing + inference): {scores.latency_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
