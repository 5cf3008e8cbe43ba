"""`ssma-bench`: model latency per backend and the node's end-to-end figures, side by side."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ssma_ros import bench
from ssma_ros.argtypes import parse_size


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="ssma-bench",
        description=__doc__.splitlines()[0],
        epilog=bench.__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=("model", "node", "all", "data"))
    parser.add_argument(
        "--bundle",
        type=Path,
        default=bench.DEFAULT_BUNDLE,
        help="bundle for the pruned model and the node",
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every backend")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="node benchmark: camera rate (Hz)"
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="node benchmark: camera HxW (default 480x640); data: scene HxW (default 240x320)",
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="node benchmark: seconds per run"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="node benchmark: runs per set of outputs"
    )
    parser.add_argument(
        "--write", type=Path, default=None, help="also write the tables to this markdown file"
    )
    args = parser.parse_args(argv)
    if args.write and args.what == "data":
        parser.error("--write takes model, node or all (ssma-bench data only prints its tables)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run ssma-bench."""
    args = parse_args(argv)
    models = (
        bench.bench_models(args.bundle, args.runs, args.warmup, args.threads)
        if args.what in ("model", "all")
        else []
    )
    node = (
        bench.bench_node(
            args.bundle,
            args.rate,
            args.size or (480, 640),
            args.duration,
            args.repeats,
            args.threads,
        )
        if args.what in ("node", "all")
        else None
    )
    if args.what == "data":
        bench.bench_data(args.size or (240, 320), args.runs, args.warmup)
    if args.write:
        command = "ssma-bench " + " ".join(argv if argv is not None else sys.argv[1:])
        bench.write_markdown(args.write, models, node, command)
        print(f"\nwritten to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
