"""`ssma-model-info`: parameters and FLOPs of a network.

Parameters: elements of nn.Parameters (total, and those with requires_grad); BN running
statistics are buffers and are not counted (the published 30.20 M / 56.44 M use the same rule,
reference/ssma_paper.md §3). FLOPs: torch.utils.flop_counter.FlopCounterMode in eval mode, which
counts convolutions, transposed convolutions and matmuls as 2 * multiply-accumulates and ignores
element-wise work (BN, ReLU, add, sigmoid, pooling), so FLOPs = 2 * MACs of the conv layers.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ssma_ros.model.builder import ARCHS, build_model
from ssma_ros.model.config import CONFIGS


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def example_inputs(
    model: nn.Module, height: int, width: int, batch: int = 1
) -> tuple[torch.Tensor, ...]:
    """Zero inputs of the right channel counts for `model`'s forward."""
    device = next(model.parameters()).device
    return tuple(torch.zeros(batch, c, height, width, device=device) for c in model.input_channels)


def count_flops(model: nn.Module, height: int, width: int) -> int:
    """FLOPs (2 * MACs) of one eval-mode forward at batch 1."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(*example_inputs(model, height, width))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 384x768, got {text!r}") from None
    return h, w


def main(argv: Sequence[str] | None = None) -> int:
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
    raise SystemExit(main())
