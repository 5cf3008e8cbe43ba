"""Frames per second of the synthetic scene generator, per condition, on one thread.

    python benchmarks/bench_synthetic.py [--height 240] [--width 320] [--frames 60]

Prints, per condition, the median per-frame wall time and thread CPU time and the frame rates
they imply, first with glibc's default allocator settings, then after
``synthetic.tune_allocator()`` (what a training data loader should call once per worker). On a
shared machine the CPU-time figure is the fairer "one core" number: wall time also counts the
time other processes hold the core.
"""

from __future__ import annotations

import os

# One thread everywhere, set before numpy/OpenCV load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402

from ssma_ros.data.synthetic import CONDITIONS, SyntheticScenes, tune_allocator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--frames", type=int, default=60, help="frames per condition")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    scenes = SyntheticScenes(args.height, args.width, seed=args.seed)
    print(
        f"synthetic scenes {args.height}x{args.width}, "
        f"{args.frames} frames per condition, 1 thread"
    )
    run(scenes, args.frames, args.strength, "default allocator")
    if tune_allocator():
        run(scenes, args.frames, args.strength, "after tune_allocator()")


def run(scenes: SyntheticScenes, frames: int, strength: float, title: str) -> None:
    for i in range(5):  # warm up caches and the allocator
        scenes.sample(i)
    print(f"-- {title}")
    print(f"{'condition':>10} {'wall ms':>9} {'wall fps':>9} {'cpu ms':>8} {'cpu fps':>8}")
    for condition in CONDITIONS:
        wall, cpu = [], []
        for index in range(frames):
            w0, c0 = time.perf_counter(), time.thread_time()
            scenes.sample(index, condition, strength)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.thread_time() - c0)
        w, c = statistics.median(wall), statistics.median(cpu)
        print(f"{condition:>10} {1e3 * w:9.2f} {1 / w:9.1f} {1e3 * c:8.2f} {1 / c:8.1f}")


if __name__ == "__main__":
    main()
