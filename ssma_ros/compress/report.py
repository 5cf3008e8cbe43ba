"""The pruning curve as a table (CSV and Markdown) and a figure.

The figure is like the paper's compression plot.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: reference/ssma_paper.md §7, "Oracle with skip (ours)", AdapNet++ on Cityscapes:
#: (parameter reduction %, mIoU change in points).
PAPER_CURVE = ((0.0, 0.0), (6.8, 0.03), (23.3, -0.19), (30.1, -0.56), (34.6, -1.09), (41.6, -2.72))


#: `StepResult.step` of the control: the unpruned model fine-tuned exactly as the chosen model.
CONTROL = -1
#: `StepResult.step` of the final model: a pruning step fine-tuned further.
FINAL = -2


def row_label(step: int) -> str:
    return {CONTROL: "control", FINAL: "final"}.get(step, f"step_{step}")


@dataclass
class StepResult:
    """One row of the table.

    Step 0 is the model before pruning; FINAL is a pruning step fine-tuned further; CONTROL is
    step 0 after the same fine-tuning as the chosen model had in all (what the extra training
    alone is worth).
    """

    step: int
    channels_removed: float  # target share of the prunable channels removed so far (0..1)
    params: int
    flops: int
    miou: dict[str, float]  # per evaluation set, 0..1
    onnx_max_diff: float  # max |onnxruntime - torch| of the logits on random inputs
    finetune_loss: float = math.nan  # mean loss over the last fine-tuning iterations
    latency_ms: float = math.nan
    checkpoint: str = ""

    @property
    def mean_miou(self) -> float:
        return sum(self.miou.values()) / len(self.miou)


def choose(results: Sequence[StepResult], max_drop: float) -> StepResult:
    """The step with the fewest parameters within `max_drop` mIoU points of step 0.

    Its mean mIoU is at most `max_drop` points (of 100) below step 0's; step 0 when no pruned
    step qualifies.
    """
    base = results[0].mean_miou
    fits = [r for r in results if r.step >= 0 and 100.0 * (base - r.mean_miou) <= max_drop]
    return min(fits, key=lambda r: r.params)


def first_reaching(results: Sequence[StepResult], reduction: float) -> StepResult:
    """The first pruning step with at least `reduction` (0..1) fewer parameters than step 0.

    The last step when none has that many fewer.
    """
    steps = [r for r in results if r.step >= 0]
    for r in steps:
        if r.params <= (1 - reduction) * steps[0].params:
            return r
    return steps[-1]


def _rows(results: Sequence[StepResult]) -> tuple[list[str], list[list[str]]]:
    base = results[0]
    sets = list(base.miou)
    header = (
        [
            "step",
            "channels_removed_pct",
            "params",
            "params_reduction_pct",
            "gflops",
            "flops_reduction_pct",
            "latency_ms",
            "speedup",
        ]
        + [f"miou_{s}" for s in sets]
        + ["miou_mean", "miou_change_points", "onnx_max_abs_diff"]
    )
    rows = []
    for r in results:
        rows.append(
            [
                str(r.step) if r.step >= 0 else row_label(r.step),
                f"{100 * r.channels_removed:.1f}",
                str(r.params),
                f"{100 * (1 - r.params / base.params):.1f}",
                f"{r.flops / 1e9:.3f}",
                f"{100 * (1 - r.flops / base.flops):.1f}",
                f"{r.latency_ms:.2f}",
                f"{base.latency_ms / r.latency_ms:.2f}",
                *[f"{100 * r.miou[s]:.2f}" for s in sets],
                f"{100 * r.mean_miou:.2f}",
                f"{100 * (r.mean_miou - base.mean_miou):+.2f}",
                f"{r.onnx_max_diff:.2g}",
            ]
        )
    return header, rows


def write_csv(results: Sequence[StepResult], path: str | Path) -> Path:
    header, rows = _rows(results)
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


MD_HEADER = {
    "step": "step",
    "channels_removed_pct": "channels −%",
    "params": "params",
    "params_reduction_pct": "params −%",
    "gflops": "GFLOPs",
    "flops_reduction_pct": "FLOPs −%",
    "latency_ms": "latency ms",
    "speedup": "speed-up",
    "miou_mean": "mean mIoU",
    "miou_change_points": "Δ mIoU",
    "onnx_max_abs_diff": "ORT vs torch",
}


def markdown_table(results: Sequence[StepResult], chosen: int | None = None) -> str:
    """The table as Markdown; the chosen step is marked with a star."""
    header, rows = _rows(results)
    names = [MD_HEADER.get(h, h.replace("miou_", "mIoU ")) for h in header]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for r, row in zip(results, rows):
        if r.step == chosen:
            row = [f"**{row[0]}** ★"] + row[1:]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_curve(
    results: Sequence[StepResult],
    path: str | Path,
    chosen: int | None = None,
    max_drop: float | None = None,
    title: str = "",
) -> Path:
    """Plot the pruning curve in two panels.

    (a) mIoU change against parameter reduction, with the paper's curve; (b) parameters, FLOPs
    and latency relative to the unpruned model, per step.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    control = [r for r in results if r.step == CONTROL]
    final = [r for r in results if r.step == FINAL]
    results = [r for r in results if r.step >= 0]
    base = results[0]
    reduction = [100 * (1 - r.params / base.params) for r in results]
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 4.6))

    for name in base.miou:
        change = [100 * (r.miou[name] - base.miou[name]) for r in results]
        ax_a.plot(reduction, change, marker=".", lw=1, alpha=0.6, label=name)
    mean_change = [100 * (r.mean_miou - base.mean_miou) for r in results]
    ax_a.plot(reduction, mean_change, marker="o", lw=2.2, color="black", label="mean (selection)")
    paper_x, paper_y = zip(*PAPER_CURVE)
    ax_a.plot(
        paper_x, paper_y, ls="--", marker="s", color="grey", label="paper: AdapNet++, Cityscapes"
    )
    for r in control:
        ax_a.axhline(
            100 * (r.mean_miou - base.mean_miou),
            color="tab:green",
            ls="-.",
            lw=1.2,
            label="control: unpruned, same fine-tuning",
        )
    if max_drop is not None:
        ax_a.axhline(-max_drop, color="tab:red", ls=":", lw=1, label=f"−{max_drop:g} mIoU budget")
    for r in final:
        ax_a.scatter(
            [100 * (1 - r.params / base.params)],
            [100 * (r.mean_miou - base.mean_miou)],
            marker="*",
            s=260,
            color="tab:red",
            zorder=6,
            label="final (longer fine-tuning)",
        )
    if chosen is not None and chosen >= 0:
        i = [r.step for r in results].index(chosen)
        ax_a.scatter(
            [reduction[i]],
            [mean_change[i]],
            s=220,
            facecolors="none",
            edgecolors="tab:red",
            lw=2,
            zorder=5,
            label=f"chosen: step {chosen}",
        )
    for r, x, y in zip(results, reduction, mean_change):
        ax_a.annotate(str(r.step), (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax_a.set_xlabel("parameter reduction (%)")
    ax_a.set_ylabel("mIoU change (points)")
    ax_a.set_title("(a) accuracy against size")
    ax_a.grid(alpha=0.3)
    ax_a.legend(fontsize=7, loc="lower left")

    steps = [r.step for r in results]
    ax_b.plot(
        steps, [100 * r.params / base.params for r in results], marker="o", label="parameters"
    )
    ax_b.plot(steps, [100 * r.flops / base.flops for r in results], marker="s", label="FLOPs")
    ax_b.plot(
        steps,
        [100 * r.latency_ms / base.latency_ms for r in results],
        marker="^",
        label="latency (ONNX Runtime CPU)",
    )
    ax_b.set_xlabel("pruning step")
    ax_b.set_ylabel("% of the unpruned model")
    ax_b.set_ylim(0, 110)
    ax_b.grid(alpha=0.3)
    twin = ax_b.twinx()
    twin.plot(
        steps,
        [100 * r.mean_miou for r in results],
        color="black",
        marker="o",
        lw=2,
        label="mean mIoU",
    )
    twin.set_ylabel("mean mIoU (%)")
    lines = ax_b.get_legend_handles_labels()
    twin_lines = twin.get_legend_handles_labels()
    ax_b.legend(lines[0] + twin_lines[0], lines[1] + twin_lines[1], fontsize=7, loc="lower left")
    ax_b.set_title("(b) cost per step")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
