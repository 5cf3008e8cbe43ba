"""Adam with the poly learning-rate decay of the SSMA code.

lr = lr0 * (1 - it / max_it) ** power.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def poly_factor(iteration: int, max_iterations: int, power: float = 0.9) -> float:
    """Multiplier of the base lr at `iteration` (0-based); reaches 0 only at `max_iterations`."""
    if max_iterations <= 0:
        raise ValueError(f"max_iterations must be positive, got {max_iterations}")
    progress = min(max(iteration, 0), max_iterations) / max_iterations
    return (1.0 - progress) ** power


def build_optimizer(
    groups: Iterable[tuple[list[nn.Parameter], float]],
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Adam:
    """Adam over (parameters, lr) groups; groups without trainable parameters are dropped."""
    param_groups = []
    for params, lr in groups:
        params = [p for p in params if p.requires_grad]
        if params and lr > 0:
            param_groups.append({"params": params, "lr": lr})
    if not param_groups:
        raise ValueError("nothing to train: every parameter is frozen or has learning rate 0")
    return torch.optim.Adam(param_groups, betas=betas, eps=eps, weight_decay=weight_decay)


class PolyLR(torch.optim.lr_scheduler.LambdaLR):
    """Poly decay of every param group from its own base lr, stepped once per iteration."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, max_iterations: int, power: float = 0.9
    ) -> None:
        self.max_iterations = max_iterations
        self.power = power
        super().__init__(optimizer, self._factor)

    def _factor(self, iteration: int) -> float:
        return poly_factor(iteration, self.max_iterations, self.power)
