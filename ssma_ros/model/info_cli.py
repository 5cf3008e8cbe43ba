"""`ssma-model-info`: parameters and FLOPs of a network."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssma_ros.argtypes import parse_size
from ssma_ros.model.builder import ARCHS, build_model
from ssma_ros.model.config import CONFIGS
from ssma_ros.model.info import count_flops, count_params


def main(argv: Sequence[str] | None = None) -> int:
    """Run ssma-model-info."""
    parser = argparse.ArgumentParser(prog="ssma-model-info", description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHS, default="ssma")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="lite")
    parser.add_argument("--classes", type=int, default=12, help="number of classes incl. void")
    parser.add_argument(
        "--size", type=parse_size, default=(384, 768), help="input HxW (multiples of 16)"
    )
    args = parser.parse_args(argv)

    height, width = args.size
    model = build_model(args.arch, args.config, args.classes)
    total, trainable = count_params(model)
    try:
        flops = count_flops(model, height, width)
    except ValueError as err:  # e.g. a size that is not a multiple of 16
        parser.error(str(err))
    print(
        f"arch {args.arch}  config {args.config}  classes {args.classes}  input {height}x{width}"
    )
    print(f"parameters: {total:,} total ({total / 1e6:.2f} M), {trainable:,} trainable")
    print(f"FLOPs: {flops / 1e9:.2f} G (= 2 x MACs of convs/matmuls; BN, ReLU, adds not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
