"""Cost of a network: parameters, FLOPs, and ONNX Runtime CPU latency measured side by side.

Latency is the median wall time of one `session.run` at batch 1, ONNX Runtime CPU provider,
full graph optimisation, a fixed number of intra-op threads. On a shared machine the load
drifts during a measurement, so several models are measured in interleaved rounds (one run
of each model per round): drift then hits all of them alike and their ratios stay fair.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from ssma_ros.model.info import count_flops, count_params


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int  # 2 x MACs of convs at the measured input size, batch 1


def model_cost(model: nn.Module, height: int, width: int) -> Cost:
    return Cost(params=count_params(model)[0], flops=count_flops(model, height, width))


def interleaved_latency(
    onnx_paths: Mapping[str, str | Path],
    threads: int = 1,
    runs: int = 30,
    warmup: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Median latency in milliseconds of each ONNX file.

    Inputs are random float32 of each file's own static shapes; the files are measured in `runs`
    interleaved rounds after `warmup` rounds.
    """
    import onnxruntime as ort

    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    rng = np.random.default_rng(seed)
    sessions = {}
    for name, path in onnx_paths.items():
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        feed = {
            i.name: rng.standard_normal(i.shape).astype(np.float32) for i in session.get_inputs()
        }
        sessions[name] = (session, feed)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for round_index in range(warmup + runs):
        for name, (session, feed) in sessions.items():
            tick = time.perf_counter()
            session.run(None, feed)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - tick)
    return {name: 1000.0 * statistics.median(values) for name, values in times.items()}
