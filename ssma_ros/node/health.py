"""What the node knows about its own health: counters, latency, rates and aux-stream state.

Pure Python, so tests can drive it with made-up clocks; the node turns `report()` into a
diagnostic_msgs/DiagnosticStatus. Everything here is bounded: a fixed set of counter names
and a fixed-length latency window.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

# One counter per kind of event an operator may need to see; unknown names are a bug, not input.
COUNTERS = (
    "pairs_in",  # synchronised rgb+aux pairs handed to the worker
    "rgb_only_in",  # rgb frames served alone because aux had stalled
    "frames_out",  # frames whose outputs were published
    "dropped_stale",  # older pairs replaced by a newer one before the worker took them
    "bad_encoding",  # an input whose encoding the model cannot take
    "bad_image",  # truncated or inconsistent Image messages
    "size_mismatch",  # rgb and aux of different sizes
    "out_of_order",  # a pair older than the last one served
    "late_aux",  # pairs whose rgb frame was just served alone (aux came back): not served twice
    "aux_all_invalid",  # depth frames without a single valid pixel (served as RGB only)
    "no_camera_info",  # frames that could not make ~/cloud for want of camera_info
    "bad_camera_info",  # camera_info messages without a usable K
    "inference_errors",  # failures in the inference stage (backend, decoding)
    "dropped_inferred",  # inferred frames replaced by a newer one before their outputs were made
    "output_errors",  # failures while making or publishing outputs
)


@dataclass(frozen=True)
class AuxEvent:
    """A change of the aux stream's state, to be logged once."""

    stalled: bool
    silent_for: float


class AuxMonitor:
    """Tracks whether the aux stream is alive; times are seconds on any monotonic clock."""

    def __init__(self, timeout: float, start: float) -> None:
        self.timeout = timeout
        self.last_seen = start  # silence is counted from start-up until the first aux
        self.stalled = False

    def seen(self, now: float) -> AuxEvent | None:
        """Aux arrived at `now`; returns an event when this ends a stall."""
        silent = now - self.last_seen
        self.last_seen = now
        if self.stalled:
            self.stalled = False
            return AuxEvent(stalled=False, silent_for=silent)
        return None

    def check(self, now: float) -> AuxEvent | None:
        """Called as rgb arrives; returns an event when aux has just gone silent for too long."""
        if not self.stalled and now - self.last_seen > self.timeout:
            self.stalled = True
            return AuxEvent(stalled=True, silent_for=now - self.last_seen)
        return None


class Throttle:
    """At most one message per key and period: a flood of one bad input cannot flood the log.

    (rclpy's own throttling is keyed by call site, so warnings routed through one helper would
    silence each other.) Keys come from a fixed set, so the table stays small.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self._last: dict[str, float] = {}

    def ready(self, key: str, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            return False
        self._last[key] = now
        return True


@dataclass(frozen=True)
class StageTimes:
    """Seconds one frame spent in each stage: inputs, backend call, outputs.

    The stages are decoding + encoding its inputs, the backend call, and making + publishing its
    outputs; wall-clock, or the CPU time of the worker thread that ran the stage (the difference
    is time the thread waited for a core or for the interpreter lock).
    """

    inputs: float
    inference: float
    output: float


class Health:
    """Thread-safe counters, a latency window and output rate, for /diagnostics."""

    def __init__(self, latency_window: int = 300) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._latency = deque(maxlen=latency_window)  # seconds, stamp-to-publish
        self._wall = deque(maxlen=latency_window)  # StageTimes
        self._cpu = deque(maxlen=latency_window)  # StageTimes
        self._published = deque(maxlen=latency_window)  # monotonic publish times

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n  # KeyError for a misspelt counter: caught by the tests

    def frame_done(self, now: float, latency: float, wall: StageTimes, cpu: StageTimes) -> None:
        """A frame's outputs are out: its stamp-to-publish latency and its stage times."""
        with self._lock:
            self._counts["frames_out"] += 1
            self._latency.append(latency)
            self._wall.append(wall)
            self._cpu.append(cpu)
            self._published.append(now)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def report(self, now: float) -> dict[str, float | int]:
        """Counters, output rate, and p50/p95 (ms) of latency and of each stage, recent window.

        The p50/p95 figures are those of: latency (input stamp to publish), input (decoding and
        encoding), inference (the backend call), output (making and publishing the outputs) and
        process (all three); each stage also as CPU time (`input_cpu_p50_ms`, ...).
        """
        with self._lock:
            out: dict[str, float | int] = dict(self._counts)
            recent = [t for t in self._published if now - t <= 5.0]
            span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            out["output_rate_hz"] = (len(recent) - 1) / span if span > 0 else 0.0
            series = {"latency": list(self._latency)}
            for suffix, times in (("", self._wall), ("_cpu", self._cpu)):
                series.update(
                    {
                        f"input{suffix}": [t.inputs for t in times],
                        f"inference{suffix}": [t.inference for t in times],
                        f"output{suffix}": [t.output for t in times],
                        f"process{suffix}": [t.inputs + t.inference + t.output for t in times],
                    }
                )
            for name, values in series.items():
                if values:
                    p50, p95 = np.percentile(np.asarray(values, float), [50, 95]) * 1000.0
                    out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = float(p50), float(p95)
            return out
