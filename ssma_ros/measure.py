"""Measuring for ssma-bench and ssma-prune: one timer, and ONNX latency as the node serves it.

On a shared machine the load drifts during a measurement, so the variants of one comparison are
timed in interleaved rounds (one call of each per round, after warm-up rounds): drift then hits
all of them alike and their ratios stay fair. ONNX files are timed in sessions made by the
runtime's `create_session`, with the options the node serves with.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ssma_ros.runtime.onnxruntime_backend import CPU_EP, create_session


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]],
    warmup: int,
    runs: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Return the median seconds per call of each function, the functions taking turns.

    `clock` is wall time by default; time.thread_time gives the calling thread's CPU time, the
    fairer "one core" figure on a shared machine (wall time also counts others holding the core).
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_index in range(warmup + runs):
        for name, fn in fns.items():
            start = clock()
            fn()
            if round_index >= warmup:
                times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def onnx_latency_ms(
    onnx_paths: Mapping[str, str | Path],
    threads: int = 1,
    runs: int = 30,
    warmup: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Return the median ONNX Runtime CPU latency in ms of each file at batch 1.

    Inputs are random float32 of each file's own static shapes.
    """
    rng = np.random.default_rng(seed)
    fns = {}
    for name, path in onnx_paths.items():
        session = create_session(path, [CPU_EP], threads)
        feed = {
            i.name: rng.standard_normal(i.shape).astype(np.float32) for i in session.get_inputs()
        }
        fns[name] = lambda session=session, feed=feed: session.run(None, feed)
    return {name: 1000.0 * s for name, s in interleaved_medians(fns, warmup, runs).items()}
