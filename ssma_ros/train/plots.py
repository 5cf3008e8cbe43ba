"""PNG figures of a training run: curves, confusion matrix, and a grid of predictions.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend
switch), so plotting works on headless machines and never interferes with a caller's figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def plot_curves(
    train: Sequence[tuple[int, float]],
    evals: Mapping[str, Sequence[tuple[int, float]]],
    path: str | Path,
) -> Path:
    """Training loss (log scale) and validation mIoU per evaluation set against iterations."""
    fig = Figure(figsize=(10, 4))
    # Fixed margins: automatic layout engines cost about a second per figure.
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.25)
    ax_loss, ax_miou = fig.subplots(1, 2)
    if train:
        it, loss = zip(*train)
        ax_loss.plot(it, loss, lw=1)
        ax_loss.set_yscale("log")
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="loss")
    for name, points in evals.items():
        if points:
            it, miou = zip(*points)
            ax_miou.plot(it, np.asarray(miou) * 100, marker="o", label=name)
    ax_miou.set(title="validation mIoU", xlabel="iteration", ylabel="mIoU (%)")
    if evals:
        ax_miou.legend()
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(
    confusion: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str = "confusion (rows: truth, normalised)",
) -> Path:
    """Row-normalised confusion matrix (each ground-truth class sums to 1; empty rows stay 0)."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(class_names)
    size = 2.5 + 0.45 * n
    fig = Figure(figsize=(size + 1, size))
    fig.subplots_adjust(left=2.0 / (size + 1), right=0.95, bottom=1.6 / size, top=1 - 0.5 / size)
    ax = fig.subplots()
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=60, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="prediction", ylabel="ground truth", title=title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.01:
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02)
    return _save(fig, path)


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class ids (H, W) -> RGB (H, W, 3) through a (C, 3) uint8 palette."""
    return np.asarray(palette, dtype=np.uint8)[np.clip(label, 0, len(palette) - 1)]


def plot_samples(
    rows: Sequence[Mapping[str, np.ndarray]],
    palette: np.ndarray,
    path: str | Path,
    title: str = "",
) -> Path:
    """One row per sample: RGB | aux | truth | prediction | confidence.

    Each row maps "rgb" and "aux" (uint8 HWC as the network saw them, before normalisation),
    "label" and "pred" (class ids HW) and "confidence" (max softmax probability, HW, 0..1).
    """
    columns = ("rgb", "aux", "truth", "prediction", "confidence")
    height = 2.0 * max(len(rows), 1) + 0.6
    fig = Figure(figsize=(2.4 * len(columns) + 0.8, height))
    fig.subplots_adjust(
        left=0.01, right=0.92, bottom=0.01, top=1 - 0.6 / height, wspace=0.04, hspace=0.06
    )
    axes = fig.subplots(max(len(rows), 1), len(columns), squeeze=False)
    for r, row in enumerate(rows):
        images = (
            row["rgb"],
            row["aux"],
            colorize(row["label"], palette),
            colorize(row["pred"], palette),
        )
        for c, image in enumerate(images):
            axes[r, c].imshow(image)
        conf = axes[r, 4].imshow(row["confidence"], vmin=0, vmax=1, cmap="viridis")
        if r == 0:
            for c, name in enumerate(columns):
                axes[r, c].set_title(name, fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    if rows:
        fig.colorbar(conf, cax=fig.add_axes((0.935, 0.1, 0.015, 0.75)))
    if title:
        fig.suptitle(title)
    return _save(fig, path)
