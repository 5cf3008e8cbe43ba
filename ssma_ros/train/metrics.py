"""Segmentation metrics during training: confusion matrices counted on the model's device.

The matrix lives on the model's device (bincount, no host round trip per batch). Under
torch.distributed every rank all-reduces it, so all ranks report the same numbers by the same code.
Counting rules and scores are those of ssma_ros.metrics (whose SegMetrics and scores this module
passes on); its numpy confusion_counts is the same count on the host.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ssma_ros.metrics import SegMetrics, scores

__all__ = ["ConfusionMeter", "SegMetrics", "confusion_matrix", "scores"]


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, void_index: int | None = 0
) -> torch.Tensor:
    """Count (ground truth, prediction) pairs on the tensors' device: (C, C) int64."""
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
        )
    # int32 (class ids < 2^15 fit) and dropped pixels counted in one extra bin instead of a
    # boolean gather: 3x faster than int64 with a gather on a 640x480 CPU frame.
    pred = pred.reshape(-1).to(torch.int32)
    target = target.reshape(-1).to(torch.int32)
    keep = (target >= 0) & (target < num_classes)
    if void_index is not None:
        keep &= target != void_index
    if bool((keep & ((pred < 0) | (pred >= num_classes))).any()):
        raise ValueError(f"predicted class ids must lie in 0..{num_classes - 1}")
    dropped = num_classes * num_classes
    counts = torch.bincount(
        torch.where(keep, target * num_classes + pred, dropped), minlength=dropped + 1
    )
    return counts[:dropped].reshape(num_classes, num_classes)


class ConfusionMeter:
    """Accumulates a confusion matrix over batches, on the device of the predictions."""

    def __init__(
        self, num_classes: int, void_index: int | None = 0, device: torch.device | str = "cpu"
    ):
        self.num_classes = num_classes
        self.void_index = void_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """`pred`: class ids (N, H, W) or logits (N, C, H, W); `target`: class ids (N, H, W)."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(dim=1)
        self.matrix += confusion_matrix(
            pred.to(self.matrix.device),
            target.to(self.matrix.device),
            self.num_classes,
            self.void_index,
        )

    def compute(self) -> SegMetrics:
        """Scores of everything seen, summed over all ranks when torch.distributed is initialised.

        Every rank must call this (it is a collective under DDP).
        """
        matrix = self.matrix.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(matrix, op=dist.ReduceOp.SUM)
        return scores(matrix.cpu().numpy(), self.void_index)
