"""`ssma-eval BUNDLE DATASET`: the command line of `ssma_ros.evaluate`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssma_ros.bundle import load_bundle
from ssma_ros.evaluate import (
    EvalError,
    evaluate,
    folder_frames,
    report,
    synthetic_frames,
    trained_benchmark,
    write_outputs,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ssma-eval", description="Score a model bundle through the node's own path."
    )
    parser.add_argument("bundle", type=Path, help="bundle folder (ssma-export)")
    parser.add_argument(
        "dataset", help="dataset folder (rgb/, aux/, labels/, classes.yaml) or 'synthetic'"
    )
    parser.add_argument(
        "--aux-blank", action="store_true", help="RGB only: blank aux, as the node's fallback"
    )
    parser.add_argument(
        "--split",
        default=None,
        help="folder: train, val or all (default all); synthetic: train, val, test (default)",
    )
    parser.add_argument(
        "--groups", type=Path, help="folder: CSV with columns name, group (e.g. weather)"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="folder without train.txt/val.txt: the split's fraction, as data.reader in training",
    )
    parser.add_argument("--seed", type=int, default=0, help="folder: the split's seed")
    parser.add_argument("--first", type=int, default=0, help="synthetic: first frame of the split")
    parser.add_argument("--count", type=int, default=50, help="synthetic: frames per condition")
    parser.add_argument("--conditions", nargs="+", default=["clear"], help="synthetic: conditions")
    parser.add_argument("--strength", type=float, default=1.0, help="synthetic: adverse strength")
    parser.add_argument(
        "--benchmark",
        choices=("v1", "v2"),
        help="synthetic: generator version (default: the one the bundle trained on)",
    )
    parser.add_argument(
        "--backend", default="onnxruntime", help="auto, tensorrt, onnxruntime, torch"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU intra-op threads (0 = library default)"
    )
    parser.add_argument("--examples", type=int, default=4, help="rows of the example grid")
    parser.add_argument(
        "--out", type=Path, help="write metrics.json, report.md, confusion.png, examples.png"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from ssma_ros.bundle import BundleError
    from ssma_ros.data.readers.folder import FolderDatasetError

    try:
        bundle = load_bundle(args.bundle)
        if args.dataset == "synthetic":
            from ssma_ros.data import synthetic

            benchmark = args.benchmark or trained_benchmark(bundle)
            known = synthetic.BENCHMARKS[benchmark]
            unknown = sorted(set(args.conditions) - set(known))
            if unknown:
                raise EvalError(f"--conditions {unknown}: benchmark {benchmark} has {list(known)}")
            split = args.split or "test"
            frames = synthetic_frames(
                bundle, split, args.first, args.count, args.conditions, args.strength, benchmark
            )
            total = args.count * len(args.conditions)
            last = args.first + args.count - 1
            name = f"synthetic {split} {args.first}..{last}, strength {args.strength:g}"
        else:
            root = Path(args.dataset)
            total, frames = folder_frames(
                bundle, root, args.split or "all", args.groups, args.val_fraction, args.seed
            )
            name = str(root)
        result, rows = evaluate(
            bundle,
            frames,
            dataset=name,
            aux_blank=args.aux_blank,
            backend=args.backend,
            device=args.device,
            precision=args.precision,
            threads=args.threads,
            examples=args.examples,
            total=total,
            progress=not args.no_progress,
        )
    except (EvalError, BundleError, FolderDatasetError, FileNotFoundError, ValueError) as err:
        print(f"ssma-eval: {err}", file=sys.stderr)
        return 1
    print(report(result), end="")
    if args.out is not None:
        write_outputs(result, rows, np.asarray(bundle.palette, np.uint8), args.out)
        print(f"wrote {args.out}/metrics.json, report.md, confusion.png, examples.png")
    return 0
