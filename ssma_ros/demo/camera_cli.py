"""`ssma-camera`: the synthetic RGB-D or RGB + thermal camera process (ssma-demo starts one)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ssma_ros.demo.camera import stream


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    p = argparse.ArgumentParser(prog="ssma-camera", description=__doc__.splitlines()[0])
    p.add_argument(
        "frames", type=Path, help=".npz with rgb, aux (+ aux_encoding) and camera arrays"
    )
    p.add_argument("--rate", type=float, default=10.0, help="frames per second")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of stream")
    p.add_argument(
        "--drop-aux",
        "--drop-depth",
        dest="drop_aux",
        action="store_true",
        help="send no aux image (depth or thermal) from 40 %% to 70 %% of the run",
    )
    p.add_argument("--namespace", default="/demo")
    p.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for a subscriber to rgb"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ssma-camera; its exit status."""
    args = parse_args(argv)
    return stream(
        args.frames,
        args.rate,
        args.duration,
        drop_aux=args.drop_aux,
        namespace=args.namespace,
        wait=args.wait,
    )


if __name__ == "__main__":
    sys.exit(main())
