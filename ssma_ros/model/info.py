"""Parameters and FLOPs of a network (ssma-model-info prints them).

Parameters: elements of nn.Parameters (total, and those with requires_grad); BN running
statistics are buffers and are not counted (the published 30.20 M / 56.44 M use the same rule,
reference/ssma_paper.md §3). FLOPs: torch.utils.flop_counter.FlopCounterMode in eval mode, which
counts convolutions, transposed convolutions and matmuls as 2 * multiply-accumulates and ignores
element-wise work (BN, ReLU, add, sigmoid, pooling), so FLOPs = 2 * MACs of the conv layers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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
