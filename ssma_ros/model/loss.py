"""Multi-resolution segmentation loss of AdapNet++ (reference/ssma_paper.md §3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssma_ros.model.base import OUT, SIDE_EIGHTH, SIDE_QUARTER, SegOutput


class SegLoss(nn.Module):
    """L = CE(logits) + 0.6 * CE(side head at 1/4) + 0.5 * CE(side head at 1/8), void ignored.

    Each cross-entropy is averaged over the valid (non-void) pixels of the batch. The released
    TF code instead gives void a class weight of 0 but divides by all pixels, so its loss shrinks
    with the void fraction of a batch; normalising over valid pixels keeps the loss scale and
    the learning rate independent of how much of an image is void. A batch with no valid pixel
    gives a loss of 0 (and zero gradients) rather than NaN.

    `forward(outputs, target)`: outputs is the model's `SegOutput`; in eval mode it holds no
    side heads and only the main term is used. target is (N, H, W) int64 class ids.
    """

    def __init__(
        self, void_index: int | None = 0, side_weights: Sequence[float] = (0.6, 0.5)
    ) -> None:
        super().__init__()
        if len(side_weights) != 2:
            raise ValueError(f"side_weights needs 2 values (1/4, 1/8), got {tuple(side_weights)}")
        self.void_index = void_index
        self.side_weights = tuple(float(w) for w in side_weights)

    def forward(self, outputs: SegOutput, target: torch.Tensor) -> torch.Tensor:
        loss = self.cross_entropy(outputs[OUT], target)
        if SIDE_QUARTER not in outputs:
            return loss
        return (
            loss
            + self.side_weights[0] * self.cross_entropy(outputs[SIDE_QUARTER], target)
            + self.side_weights[1] * self.cross_entropy(outputs[SIDE_EIGHTH], target)
        )

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[-2:] != target.shape[-2:]:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in size"
            )
        ignore = -100 if self.void_index is None else self.void_index
        per_pixel = F.cross_entropy(logits, target, ignore_index=ignore, reduction="none")
        valid = (target != ignore).sum()
        return per_pixel.sum() / valid.clamp(min=1)
