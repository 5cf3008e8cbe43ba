"""Training throughput: samples/s and peak memory of the real training step (ssma_ros Trainer).

    python benchmarks/train_speed.py --config full --size 384x768 --amp bf16 --batch 8
    torchrun --standalone --nproc-per-node 2 benchmarks/train_speed.py --config full --amp bf16

Builds the Trainer of a synthetic-data config (data cached in memory first, so the loader does
not limit the figure), runs `--warmup` steps (cuDNN autotuning, torch.compile), then times
`--steps` more and prints one JSON line (rank 0): samples/s over all processes, seconds per
step, peak GPU memory per process. Loss and optimiser are those of training.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="full", choices=["full", "lite"])
    p.add_argument("--arch", default="ssma")
    p.add_argument("--size", default="384x768", help="HxW network input")
    p.add_argument("--batch", type=int, default=8, help="per process")
    p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--workers", type=int, default=4)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from ssma_ros.train import dist
    from ssma_ros.train.config import from_dict
    from ssma_ros.train.trainer import Trainer

    h, w = (int(v) for v in args.size.lower().split("x"))
    ctx = dist.setup(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        fused = args.arch != "adapnet"
        cfg = from_dict(
            {
                "stage": "fusion" if fused else "expert",
                "model": {
                    "arch": args.arch,
                    "config": args.config,
                    "modalities": ["rgb", "aux"] if fused else ["rgb"],
                },
                "data": {
                    "size": [h, w],
                    "train_samples": args.batch * ctx.world_size * 4,
                    "val_samples": 1,
                    "eval_conditions": ["clear"],
                    "num_workers": args.workers,
                    "cache": str(Path(tmp) / "frames.npz"),
                },
                "optim": {
                    "iterations": args.warmup + args.steps + 1,
                    "batch_size": args.batch,
                    "amp": args.amp,
                    "channels_last": args.channels_last,
                    "compile": args.compile,
                },
                "eval": {"plots": False, "no_aux": False},
                "device": args.device,
                "sync_bn": args.sync_bn,
                "output_dir": str(Path(tmp) / "run"),
                "progress": False,
                "tensorboard": False,
            }
        )
        try:
            trainer = Trainer(cfg, ctx=ctx)
            batches = iter(trainer._train_loader())
            cuda = trainer.device.type == "cuda"
            for _ in range(args.warmup):
                trainer.step(next(batches))
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            for _ in range(args.steps):
                trainer.step(next(batches))
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
        finally:
            dist.teardown()
    if ctx.is_main:
        figures = {
            "arch": args.arch,
            "config": args.config,
            "size": args.size,
            "amp": args.amp,
            "channels_last": args.channels_last,
            "compile": args.compile,
            "processes": ctx.world_size,
            "batch_per_process": args.batch,
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "samples_per_s": round(args.steps * args.batch * ctx.world_size / seconds, 2),
            "seconds_per_step": round(seconds / args.steps, 4),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if cuda
            else None,
        }
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
