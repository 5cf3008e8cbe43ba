"""`ssma-prune CHECKPOINT --out DIR`: iterative Taylor pruning + fine-tuning, and its curve.

Each step estimates first-order Taylor importance on a few training batches, removes
`--ratio-per-step` of the initial prunable channels (Torch-Pruning, dependency groups), fine-tunes
for `--finetune-iters` iterations with the checkpoint's own training recipe, evaluates on its
evaluation sets and saves `step_K.pt`. At the end every step is exported to ONNX (and checked
against PyTorch in ONNX Runtime), timed in ONNX Runtime on this CPU side by side, and the curve is
written as `pruning.csv`, `pruning.md` and `pruning.png`. The chosen step (fewest parameters
within `--max-drop` mIoU points of the unpruned model) is copied to `chosen.pt`, a checkpoint
with weights and meta only, ready for ssma-export.

On a CPU shared with other jobs, set --threads (and OMP_NUM_THREADS) to what you can use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssma_ros.argtypes import parse_size

#: Checkpoint meta that describes a training run in progress or a stale evaluation, not the model.
STRIPPED_META = ("resume", "confusion")


def serving_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta of a checkpoint without optimizer/resume state and stale confusion matrices."""
    return {k: v for k, v in meta.items() if k not in STRIPPED_META}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="ssma-prune",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "checkpoint", type=Path, help="trained ssma_ros checkpoint (ssma-train best.pt)"
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--steps", type=int, default=6, help="pruning steps")
    p.add_argument(
        "--ratio-per-step",
        type=float,
        default=0.07,
        help="share of the initial prunable channels removed per step",
    )
    p.add_argument(
        "--finetune-iters", type=int, default=60, help="fine-tuning iterations after each step"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="fine-tuning batch (default: the training config's)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="fine-tuning Adam lr, poly-decayed per step (default: 0.3 x the training lr)",
    )
    p.add_argument(
        "--distill",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="add WEIGHT x pixel-wise distillation from the unpruned network to the fine-tuning "
        "loss (0 = labels only)",
    )
    p.add_argument(
        "--distill-temperature", type=float, default=1.0, help="softmax temperature of --distill"
    )
    p.add_argument(
        "--importance-batches",
        type=int,
        default=4,
        help="training batches whose gradients give the Taylor importance",
    )
    p.add_argument(
        "--max-ratio",
        type=float,
        default=0.75,
        help="no layer loses more than this share of its initial channels",
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="rank channels within each group (same ratio everywhere) instead of globally",
    )
    p.add_argument(
        "--round-to",
        type=int,
        default=4,
        help="keep channel counts multiples of this: ONNX Runtime's CPU conv kernels work in "
        "channel blocks and run odd counts far slower (1 = any count; 8 suits GPU tensor cores)",
    )
    p.add_argument(
        "--importance",
        choices=("taylor-per-parameter", "taylor"),
        default="taylor-per-parameter",
        help="first-order Taylor scores divided by the parameters a channel carries, or plain",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="without --final-iters: the chosen step is the smallest within this many mIoU "
        "points (mean over the evaluation sets) of step 0",
    )
    p.add_argument(
        "--final-iters",
        type=int,
        default=0,
        help="fine-tune the first step that reaches --target-reduction this many more "
        "iterations; that model is the chosen one",
    )
    p.add_argument(
        "--target-reduction",
        type=float,
        default=0.4,
        help="parameter reduction (0..1) the --final-iters model must reach",
    )
    p.add_argument(
        "--control",
        action="store_true",
        help="also fine-tune the unpruned model with the same batches and schedule as all "
        "pruned steps together: separates what pruning costs from what the extra "
        "training gains",
    )
    p.add_argument(
        "--latency-size",
        type=parse_size,
        default=None,
        help="HxW for FLOPs and latency (default: the training input size)",
    )
    p.add_argument("--latency-runs", type=int, default=30, help="timed interleaved rounds")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime CPU threads")
    p.add_argument(
        "--override",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the checkpoint's training config for fine-tuning/evaluation, "
        "e.g. -o data.val_samples=32 (repeatable)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"ssma-prune: {err}", file=sys.stderr)
        return 1
    return 0


def _log(message: str) -> None:
    print(f"ssma-prune [{time.strftime('%H:%M:%S')}]: {message}", flush=True)


def run(args: argparse.Namespace) -> list:
    import torch

    from ssma_ros.compress import report
    from ssma_ros.compress.finetune import Distillation, Recipe, finetune
    from ssma_ros.compress.prune import ChannelPruner, accumulate_gradients, excluded_layers
    from ssma_ros.export.onnx import export_onnx, onnx_matches_torch
    from ssma_ros.measure import onnx_latency_ms
    from ssma_ros.model.checkpoint import load_checkpoint, save_checkpoint
    from ssma_ros.model.info import count_flops, count_params, example_inputs

    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.checkpoint)
    if "train_config" not in meta:
        raise ValueError(
            f"{args.checkpoint} has no train_config in its meta: fine-tuning needs the "
            "training recipe (checkpoints written by ssma-train carry it)"
        )
    recipe = Recipe(meta["train_config"], args.override)
    cfg = recipe.cfg
    height, width = args.latency_size or cfg.data.size
    batch_size = args.batch_size or cfg.optim.batch_size
    lr = args.lr if args.lr is not None else 0.3 * cfg.optim.lr
    names = list(model.input_names)
    args.out.mkdir(parents=True, exist_ok=True)
    base_meta = serving_meta(meta)
    # Batches continue the training stream after the checkpoint's last iteration.
    position = int(meta.get("iteration", 0))
    starts: dict[int, int] = {}  # row -> first batch of its fine-tuning (the control replays them)
    distillation = (
        Distillation(load_checkpoint(args.checkpoint)[0], args.distill, args.distill_temperature)
        if args.distill > 0
        else None
    )

    def tune(row: int, iterations: int) -> list[float]:
        nonlocal position
        starts[row], position = position, position + iterations
        return finetune(
            model,
            recipe.batches(names, batch_size, starts[row]),
            recipe.loss_fn,
            iterations,
            lr,
            cfg.optim.power,
            distillation,
        )

    onnx_dir = Path(tempfile.mkdtemp(prefix="ssma-prune-"))
    results: list[report.StepResult] = []
    sample = [
        torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        for x in example_inputs(model, height, width)
    ]

    def record(row: int, losses: list[float], started: float, step: int) -> None:
        """Evaluate `model` as table row `row` (a step, FINAL or CONTROL) after pruning `step`."""
        metrics = recipe.evaluate(model)
        miou = {name: m.miou for name, m in metrics.items()}
        tail = losses[-10:]
        loss = sum(tail) / len(tail) if tail else float("nan")
        label = report.row_label(row)
        if row == report.CONTROL:  # step 0's network, trained further: saved for a test run
            base = results[0]
            path = args.out / "control.pt"
            save_checkpoint(path, model, **{**base_meta, "metrics": miou})
            results.append(
                report.StepResult(
                    row,
                    0.0,
                    base.params,
                    base.flops,
                    miou,
                    base.onnx_max_diff,
                    loss,
                    checkpoint=str(path),
                )
            )
        else:
            params, flops = count_params(model)[0], count_flops(model, height, width)
            onnx_path = export_onnx(model, onnx_dir / f"{label}.onnx", height, width)
            diff = onnx_matches_torch(model, onnx_path, sample, atol=1e-4)
            pruning = {
                "source": str(args.checkpoint),
                "step": step,
                "steps": args.steps,
                "ratio_per_step": args.ratio_per_step,
                "finetune_iterations": args.finetune_iters,
                "final_iterations": args.final_iters if row == report.FINAL else 0,
                "lr": lr,
                "batch_size": batch_size,
                "importance": args.importance,
                "distill": args.distill,
                "distill_temperature": args.distill_temperature,
                "global": not args.local,
                "max_ratio": args.max_ratio,
                "round_to": args.round_to or 1,
                "excluded": excluded_layers(model),
                "params": params,
            }
            path = args.out / f"{label}.pt"
            save_checkpoint(
                path,
                model,
                pruned=step > 0,
                **{
                    **base_meta,
                    "metrics": miou,
                    "pruning": pruning,
                    **({"stage": "prune"} if step > 0 else {}),
                },
            )
            results.append(
                report.StepResult(
                    row,
                    step * args.ratio_per_step,
                    params,
                    flops,
                    miou,
                    diff,
                    loss,
                    checkpoint=str(path),
                )
            )
        r = results[-1]
        _log(
            f"{label}: {r.params:,} params, {r.flops / 1e9:.3f} GFLOPs, "
            + ", ".join(f"{k} {100 * v:.2f}" for k, v in miou.items())
            + f" (mean {100 * r.mean_miou:.2f}), ORT diff {r.onnx_max_diff:.2g}, "
            f"{time.time() - started:.0f} s"
        )

    try:
        record(0, [], time.time(), 0)
        pruner = ChannelPruner(
            model,
            sample,
            args.steps,
            args.ratio_per_step,
            max_ratio=args.max_ratio,
            global_pruning=not args.local,
            round_to=args.round_to,
            per_parameter=args.importance == "taylor-per-parameter",
        )
        for step in range(1, args.steps + 1):
            started = time.time()
            batches = recipe.batches(names, batch_size, position)
            position += args.importance_batches
            accumulate_gradients(
                model, (next(batches) for _ in range(args.importance_batches)), recipe.loss_fn
            )
            pruner.step()
            record(step, tune(step, args.finetune_iters), started, step)
        tuned_steps = range(1, args.steps + 1)
        if args.final_iters > 0:
            started = time.time()
            source = report.first_reaching(results, args.target_reduction)
            model, _ = load_checkpoint(source.checkpoint)
            record(report.FINAL, tune(report.FINAL, args.final_iters), started, source.step)
            tuned_steps = [*range(1, source.step + 1), report.FINAL]
        if args.control:
            started, losses = time.time(), []
            model, _ = load_checkpoint(args.checkpoint)
            for row in tuned_steps:  # the very batches and schedules the pruned model saw
                losses += finetune(
                    model,
                    recipe.batches(names, batch_size, starts[row]),
                    recipe.loss_fn,
                    args.finetune_iters if row != report.FINAL else args.final_iters,
                    lr,
                    cfg.optim.power,
                    distillation,
                )
            record(report.CONTROL, losses, started, 0)

        timed = {
            r.step: onnx_dir / f"{report.row_label(r.step)}.onnx"
            for r in results
            if r.step != report.CONTROL
        }
        latency = onnx_latency_ms(timed, threads=args.threads, runs=args.latency_runs)
    finally:
        shutil.rmtree(onnx_dir, ignore_errors=True)
    for r in results:
        r.latency_ms = latency[
            0 if r.step == report.CONTROL else r.step
        ]  # the control is step 0's network
    final = [r for r in results if r.step == report.FINAL]
    chosen = final[0] if final else report.choose(results, args.max_drop)
    shutil.copyfile(chosen.checkpoint, args.out / "chosen.pt")
    report.write_csv(results, args.out / "pruning.csv")
    title = (
        f"{args.checkpoint.name}: {args.steps} steps x {100 * args.ratio_per_step:g}% channels "
        f"({args.importance}), {args.finetune_iters} fine-tuning iterations per step"
        + (f", final {args.final_iters}" if final else "")
        + (
            f", distillation x{args.distill:g} (T={args.distill_temperature:g})"
            if args.distill
            else ""
        )
        + f"; latency {height}x{width}, ONNX Runtime CPU, {args.threads} thread(s)"
    )
    rule = (
        f"final: step {final[0].channels_removed / args.ratio_per_step:.0f} (first step with >= "
        f"{100 * args.target_reduction:g}% fewer parameters) fine-tuned {args.final_iters} more "
        "iterations"
        if final
        else f"step {chosen.step}: fewest parameters within {args.max_drop:g} mIoU points of "
        "step 0"
    )
    (args.out / "pruning.md").write_text(
        f"{title}\n\n" + report.markdown_table(results, chosen.step) + f"\nChosen: {rule}.\n"
    )
    report.plot_curve(results, args.out / "pruning.png", chosen.step, args.max_drop, title)
    (args.out / "settings.json").write_text(
        json.dumps(
            {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, indent=2
        )
        + "\n"
    )
    print(report.markdown_table(results, chosen.step), end="")
    _log(
        f"chosen {report.row_label(chosen.step)}: {args.out / 'chosen.pt'}; "
        f"table and figure in {args.out}"
    )
    return results


if __name__ == "__main__":
    sys.exit(main())
