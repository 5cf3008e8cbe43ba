"""The experiment's figures: mIoU per condition, per-class IoU, examples, SSMA gates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssma_ros.data import synthetic
from ssma_ros.train.metrics import scores


def plot_figures(
    results: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    folder: Path,
    prefix: str = "experiment",
) -> list[Path]:
    """Draw the figures of an evaluated experiment into `folder`.

    `<prefix>_miou.png` (bars per condition), `<prefix>_classes.png` (per-class IoU, clear vs
    adverse), `<prefix>_examples.png` (one test scene under every condition, every model) and,
    with SSMA runs, `<prefix>_gates.png` (mean gate per modality per condition).
    """
    from matplotlib.figure import Figure

    from ssma_ros.train.plots import colorize

    folder.mkdir(parents=True, exist_ok=True)
    conditions = list(results["test"]["conditions"])
    rows = results["rows"]
    keys = list(rows)
    classes = results["classes"]
    palette = np.asarray(synthetic.PALETTE, np.uint8)
    paths = []

    fig = Figure(figsize=(11, 4.8))
    ax = fig.subplots()
    groups = [*conditions, "mean"]
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        values = [rows[key]["conditions"][c]["miou"] * 100 for c in conditions] + [
            rows[key]["mean_miou"] * 100
        ]
        hatch = "//" if rows[key]["blank"] else None
        ax.bar(
            np.arange(len(groups)) + (i - (len(keys) - 1) / 2) * width,
            values,
            width,
            label=rows[key]["label"],
            hatch=hatch,
            color=f"C{_colour_index(keys, key)}",
            alpha=0.55 if rows[key]["blank"] else 1.0,
            edgecolor="white" if hatch else None,
        )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("mIoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08)
    )  # below: bars reach the top
    ax.set_title(
        f"held-out scenes ({results['test']['samples']} per condition), lite models, same budget"
    )
    fig.tight_layout()
    paths.append(folder / f"{prefix}_miou.png")
    fig.savefig(paths[-1], dpi=110)

    fig = Figure(figsize=(11, 0.5 * len(keys) + 2.2))
    axes = fig.subplots(1, 2, sharey=True)
    shown = [i for i, c in enumerate(classes) if c != "void"]
    adverse = [c for c in conditions if c != "clear"]
    for ax, group, name in (
        (axes[0], ["clear"], "clear"),
        (axes[1], adverse, "adverse (" + ", ".join(adverse) + ")"),
    ):
        grid = (
            np.array(
                [
                    [
                        scores(sum(arrays[f"{k}/{c}"].sum(axis=0) for c in group)).iou[i]
                        for i in shown
                    ]
                    for k in keys
                ]
            )
            * 100
        )
        im = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                ax.text(
                    c,
                    r,
                    f"{grid[r, c]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if grid[r, c] < 60 else "black",
                )
        ax.set_xticks(range(len(shown)), [classes[i] for i in shown], rotation=45, ha="right")
        ax.set_title(f"per-class IoU (%), {name}", fontsize=9)
    axes[0].set_yticks(range(len(keys)), [rows[k]["label"] for k in keys], fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    paths.append(folder / f"{prefix}_classes.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")

    models = [k for k in keys if not rows[k]["blank"]]
    columns = ["rgb", "aux", "truth", *models]
    fig = Figure(figsize=(1.6 * len(columns), 1.25 * len(conditions) + 0.5))
    axes = fig.subplots(len(conditions), len(columns), squeeze=False)
    for r, c in enumerate(conditions):
        images = [
            arrays[f"input/{c}/rgb"],
            arrays[f"input/{c}/aux"],
            colorize(arrays[f"input/{c}/label"], palette),
            *[colorize(arrays[f"{k}/{c}/example"], palette) for k in models],
        ]
        for j, image in enumerate(images):
            axes[r, j].imshow(image)
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
            if r == 0:
                axes[r, j].set_title(
                    columns[j] if j < 3 else rows[columns[j]]["label"].split(" (")[0], fontsize=7
                )
        axes[r, 0].set_ylabel(c, fontsize=8)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.93, bottom=0.01, wspace=0.03, hspace=0.05)
    paths.append(folder / f"{prefix}_examples.png")
    fig.savefig(paths[-1], dpi=100 if len(conditions) <= 5 else 75)  # a few hundred kB
    gated = [k for k in models if "gates" in rows[k]]
    if gated:
        paths.append(folder / f"{prefix}_gates.png")
        plot_gates(rows, gated, conditions, paths[-1])
    return paths


def plot_gates(
    rows: Mapping[str, Any], keys: Sequence[str], conditions: Sequence[str], path: Path
) -> None:
    """Mean SSMA gate of the RGB and the aux channels per condition, one panel per model.

    Each bar averages the three fusion blocks (eASPP, 1/8 and 1/4 skips); the markers show the
    blocks one by one. A gate that follows the sensors drops for the modality a condition
    degrades.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.1 * len(conditions) + 2, 2.6 * len(keys) + 0.6))
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    x = np.arange(len(conditions))
    for ax, key in zip(axes, keys):
        gates = rows[key]["gates"]
        for j, (half, colour) in enumerate((("rgb", "C0"), ("aux", "C3"))):
            per_block = np.array(
                [[block[half] for block in gates[c].values()] for c in conditions]
            )
            offset = (j - 0.5) * 0.38
            ax.bar(x + offset, per_block.mean(axis=1), 0.36, color=colour, label=half)
            for b in range(per_block.shape[1]):
                ax.plot(x + offset, per_block[:, b], "k.", markersize=3)
        ax.axhline(0.5, color="grey", lw=0.6, ls="--")
        ax.set_xticks(x, conditions, fontsize=8)
        ax.set_ylabel("mean gate")
        ax.set_title(rows[key]["label"], fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _colour_index(keys: Sequence[str], key: str) -> int:
    """Give a blanked-aux variant its model's colour."""
    runs = [k for k in keys if "_no_aux" not in k]
    return runs.index(key.removesuffix("_no_aux"))
