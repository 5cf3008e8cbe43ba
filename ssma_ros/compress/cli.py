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

#: Checkpoint meta that describes a training run in progress or a stale evaluation, not the model.
STRIPPED_META = ("resume", "confusion")


def serving_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Meta of a checkpoint without optimizer/resume state and stale confusion matrices."""
    return {k: v for k, v in meta.items() if k not in STRIPPED_META}


def _size(text: str) -> tuple[int, int]:
    from ..model.info import parse_size

    return parse_size(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssma-prune", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="trained ssma_ros checkpoint (ssma-train best.pt)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--steps", type=int, default=6, help="pruning steps")
    p.add_argument("--ratio-per-step", type=float, default=0.07,
                   help="share of the initial prunable channels removed per step")
    p.add_argument("--finetune-iters", type=int, default=60, help="fine-tuning iterations after each step")
    p.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch (default: the training config's)")
    p.add_argument("--lr", type=float, default=None,
                   help="fine-tuning Adam lr, poly-decayed per step (default: 0.1 x the training lr)")
    p.add_argument("--importance-batches", type=int, default=4,
                   help="training batches whose gradients give the Taylor importance")
    p.add_argument("--max-ratio", type=float, default=0.75,
                   help="no layer loses more than this share of its initial channels")
    p.add_argument("--local", action="store_true",
                   help="rank channels within each group (same ratio everywhere) instead of globally")
    p.add_argument("--round-to", type=int, default=8,
                   help="keep channel counts multiples of this: ONNX Runtime's AVX2 conv kernels work "
                        "in blocks of 8 channels and GPU tensor cores want multiples of 8 (1 = any count)")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="mIoU points (mean over the evaluation sets) the chosen step may lose")
    p.add_argument("--latency-size", type=_size, default=None,
                   help="HxW for FLOPs and latency (default: the training input size)")
    p.add_argument("--latency-runs", type=int, default=30, help="timed interleaved rounds")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime CPU threads")
    p.add_argument("--override", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="change the checkpoint's training config for fine-tuning/evaluation, "
                        "e.g. -o data.val_samples=32 (repeatable)")
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

    from ..export.onnx import export_onnx, onnx_matches_torch
    from ..model.checkpoint import load_checkpoint, save_checkpoint
    from ..model.info import example_inputs
    from . import report
    from .finetune import Recipe, finetune
    from .measure import interleaved_latency, model_cost
    from .prune import ChannelPruner, accumulate_gradients, excluded_layers

    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.checkpoint)
    if "train_config" not in meta:
        raise ValueError(f"{args.checkpoint} has no train_config in its meta: fine-tuning needs the "
                         "training recipe (checkpoints written by ssma-train carry it)")
    recipe = Recipe(meta["train_config"], args.override)
    cfg = recipe.cfg
    height, width = args.latency_size or cfg.data.size
    batch_size = args.batch_size or cfg.optim.batch_size
    lr = args.lr if args.lr is not None else 0.1 * cfg.optim.lr
    names = list(model.input_names)
    args.out.mkdir(parents=True, exist_ok=True)
    base_meta = serving_meta(meta)
    # Batches continue the training stream after the checkpoint's last iteration.
    position = int(meta.get("iteration", 0))

    def stream(count: int):
        nonlocal position
        start, position = position, position + count
        return recipe.batches(names, batch_size, start)

    onnx_dir = Path(tempfile.mkdtemp(prefix="ssma-prune-"))
    results: list[report.StepResult] = []
    sample = [torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
              for x in example_inputs(model, height, width)]

    def record(step: int, losses: list[float], started: float) -> None:
        metrics = recipe.evaluate(model)
        cost = model_cost(model, height, width)
        onnx_path = export_onnx(model, onnx_dir / f"step_{step}.onnx", height, width)
        diff = onnx_matches_torch(model, onnx_path, sample, atol=1e-4)
        miou = {name: m.miou for name, m in metrics.items()}
        pruning = {"source": str(args.checkpoint), "step": step, "steps": args.steps,
                   "ratio_per_step": args.ratio_per_step, "finetune_iterations": args.finetune_iters,
                   "lr": lr, "batch_size": batch_size, "importance": "GroupTaylorImportance",
                   "global": not args.local, "max_ratio": args.max_ratio,
                   "excluded": excluded_layers(model), "params": cost.params}
        path = args.out / f"step_{step}.pt"
        save_checkpoint(path, model, pruned=step > 0,
                        **{**base_meta, "metrics": miou, "pruning": pruning,
                           **({"stage": "prune"} if step > 0 else {})})
        tail = losses[-10:]
        results.append(report.StepResult(
            step=step, channels_removed=step * args.ratio_per_step if step else 0.0, params=cost.params,
            flops=cost.flops, miou=miou, onnx_max_diff=diff,
            finetune_loss=sum(tail) / len(tail) if tail else float("nan"), checkpoint=str(path)))
        _log(f"step {step}: {cost.params:,} params, {cost.flops / 1e9:.3f} GFLOPs, "
             + ", ".join(f"{k} {100 * v:.2f}" for k, v in miou.items())
             + f" (mean {100 * results[-1].mean_miou:.2f}), ORT diff {diff:.2g}, {time.time() - started:.0f} s")

    try:
        started = time.time()
        record(0, [], started)
        pruner = ChannelPruner(model, sample, args.steps, args.ratio_per_step,
                               max_ratio=args.max_ratio, global_pruning=not args.local, round_to=args.round_to)
        for step in range(1, args.steps + 1):
            started = time.time()
            batches = stream(args.importance_batches)
            accumulate_gradients(model, (next(batches) for _ in range(args.importance_batches)), recipe.loss_fn)
            pruner.step()
            losses = finetune(model, stream(args.finetune_iters), recipe.loss_fn, args.finetune_iters, lr,
                              cfg.optim.power)
            record(step, losses, started)

        latency = interleaved_latency({r.step: onnx_dir / f"step_{r.step}.onnx" for r in results},
                                      threads=args.threads, runs=args.latency_runs)
    finally:
        shutil.rmtree(onnx_dir, ignore_errors=True)
    for r in results:
        r.latency_ms = latency[r.step]
    chosen = report.choose(results, args.max_drop)
    shutil.copyfile(chosen.checkpoint, args.out / "chosen.pt")
    report.write_csv(results, args.out / "pruning.csv")
    title = (f"{args.checkpoint}: {args.steps} steps x {100 * args.ratio_per_step:g}% channels, "
             f"{args.finetune_iters} fine-tuning iterations per step; latency at {height}x{width}, "
             f"ONNX Runtime CPU, {args.threads} thread(s)")
    (args.out / "pruning.md").write_text(
        f"{title}\n\n" + report.markdown_table(results, chosen.step)
        + f"\nChosen: step {chosen.step} (fewest parameters within {args.max_drop:g} mIoU points of step 0).\n")
    report.plot_curve(results, args.out / "pruning.png", chosen.step, args.max_drop, title)
    (args.out / "settings.json").write_text(json.dumps(
        {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, indent=2) + "\n")
    print(report.markdown_table(results, chosen.step), end="")
    _log(f"chosen step {chosen.step}: {args.out / 'chosen.pt'}; table and figure in {args.out}")
    return results


if __name__ == "__main__":
    sys.exit(main())
