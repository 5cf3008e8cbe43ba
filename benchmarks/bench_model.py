"""Size and CPU speed of the networks.

Prints parameters and FLOPs (2 x MACs) of AdapNet++ and SSMA in the lite and full configs, then
times one lite SSMA forward (batch 1) with PyTorch eager and with onnxruntime on this CPU:
median of interleaved repeated runs after warm-up, frames/s, and the onnxruntime / eager
speed ratio.

    python benchmarks/bench_model.py --size 240x320 --runs 30 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ssma_ros.export.onnx import export_onnx, onnx_matches_torch
from ssma_ros.model import build_model
from ssma_ros.model.info import count_flops, count_params, example_inputs, parse_size


def interleaved_medians(fns: dict[str, Callable[[], object]], warmup: int,
                        runs: int) -> dict[str, float]:
    """Median seconds per call of each function. Runs alternate between the functions so that
    all of them see the same background load (the CPU is shared)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def size_table(classes: int, sizes: list[tuple[int, int]]) -> None:
    header = "".join(f"  GFLOPs@{h}x{w}" for h, w in sizes)
    print(f"{'config':6} {'arch':8} {'params (M)':>11}{header}")
    for config in ("lite", "full"):
        for arch in ("adapnet", "ssma"):
            model = build_model(arch, config, classes)
            _, params = count_params(model)
            flops = "".join(f"  {count_flops(model, h, w) / 1e9:>{len(f'GFLOPs@{h}x{w}')}.2f}"
                            for h, w in sizes)
            print(f"{config:6} {arch:8} {params / 1e6:>11.2f}{flops}")


def speed(classes: int, height: int, width: int, warmup: int, runs: int, threads: int) -> None:
    import onnxruntime as ort

    torch.set_num_threads(threads)
    model = build_model("ssma", "lite", classes).eval()
    rgb, aux = (torch.randn_like(x) for x in example_inputs(model, height, width))

    def eager() -> None:
        with torch.inference_mode():
            model(rgb, aux)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "ssma_lite.onnx", height, width)
        diff = onnx_matches_torch(model, path, (rgb, aux))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Idle ORT threads otherwise spin after each run and steal the CPU from the eager run
        # that follows in the interleaved timing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {"rgb": rgb.numpy().astype(np.float32), "aux": aux.numpy().astype(np.float32)}
    medians = interleaved_medians(
        {"torch eager": eager, "onnxruntime": lambda: session.run(["logits"], feeds)}, warmup, runs)
    t_eager, t_ort = medians["torch eager"], medians["onnxruntime"]

    print(f"\nlite SSMA forward, batch 1, {height}x{width}, {threads} threads, median of {runs} "
          f"interleaved runs after {warmup} warm-up (ONNX vs torch max abs diff {diff:.1e})")
    print(f"{'backend':14} {'ms':>8} {'frames/s':>9}")
    print(f"{'torch eager':14} {t_eager * 1e3:>8.1f} {1 / t_eager:>9.1f}")
    print(f"{'onnxruntime':14} {t_ort * 1e3:>8.1f} {1 / t_ort:>9.1f}")
    print(f"onnxruntime is {t_eager / t_ort:.2f}x the speed of torch eager")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(240, 320), help="timed input HxW")
    parser.add_argument("--flops-size", type=parse_size, default=(384, 768),
                        help="extra FLOPs resolution (the paper's 384x768)")
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    size_table(args.classes, [args.size, args.flops_size])
    speed(args.classes, *args.size, args.warmup, args.runs, args.threads)


if __name__ == "__main__":
    main()
