"""Segmentation metrics from a confusion matrix: mIoU, per-class IoU, pixel accuracy (numpy only).

Conventions (the SSMA evaluation protocol, reference/ssma_paper.md §5):
- rows are ground truth, columns are predictions;
- pixels whose ground truth is void (or outside 0..C-1, e.g. 255) are dropped before counting, so a
  prediction on a void pixel never counts, while predicting void on a labelled pixel is a miss;
- IoU is reported for every class, and the mean runs over classes 1..C-1 except void;
- a class absent from both the ground truth and the predictions has IoU NaN and is left out of the
  mean (counting it as 0 or 1 would reward or punish a model for data it never saw).

Torch-free, so scoring served masks (ssma-demo) needs no torch; training counts on the model's
device with ssma_ros.train.metrics, by the same rules, and scores here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_counts(
    pred: np.ndarray, target: np.ndarray, num_classes: int, void_index: int | None = 0
) -> np.ndarray:
    """Count (ground truth, prediction) pairs as a (C, C) int64 matrix; void GT is dropped."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} != target shape {target.shape}")
    pred = pred.reshape(-1).astype(np.int64)
    target = target.reshape(-1).astype(np.int64)
    keep = (target >= 0) & (target < num_classes)
    if void_index is not None:
        keep &= target != void_index
    if np.any(keep & ((pred < 0) | (pred >= num_classes))):
        raise ValueError(f"predicted class ids must lie in 0..{num_classes - 1}")
    dropped = num_classes * num_classes  # one extra bin for the dropped pixels: no gather
    counts = np.bincount(
        np.where(keep, target * num_classes + pred, dropped), minlength=dropped + 1
    )
    return counts[:dropped].reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegMetrics:
    """Scores of one evaluation; `iou[c]` is NaN for void and for classes seen nowhere."""

    miou: float
    iou: list[float]
    pixel_accuracy: float
    confusion: np.ndarray  # (C, C) int64, rows = ground truth, columns = prediction
    void_index: int | None


def scores(confusion: np.ndarray, void_index: int | None = 0) -> SegMetrics:
    """Score a confusion matrix: mIoU, per-class IoU and pixel accuracy (see the module doc)."""
    cm = np.asarray(confusion).astype(np.int64)
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    if void_index is not None:
        iou[void_index] = np.nan
    present = iou[~np.isnan(iou)]
    miou = float(present.mean()) if present.size else float("nan")
    total = cm.sum()
    pixel_accuracy = float(tp.sum() / total) if total else float("nan")
    return SegMetrics(
        miou=miou,
        iou=[float(v) for v in iou],
        pixel_accuracy=pixel_accuracy,
        confusion=cm,
        void_index=void_index,
    )
