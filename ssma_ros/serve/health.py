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
    "time_jumps",  # stamps that jumped back, or ahead of the node's clock (the gate restarted)
    "aux_all_invalid",  # depth frames without a single valid pixel (served as RGB only)
    "no_camera_info",  # frames without ~/cloud (or an HHA input) for want of camera_info
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
    """Whether the aux stream is alive; times are seconds on any monotonic clock. Thread-safe.

    Aux has stalled when it has been silent for more than `timeout` while rgb kept coming. The
    clock starts at `start` (make the monitor, or :meth:`restart` it, on activation, once the
    model is loaded: loading is not silence), and restarts whenever rgb itself was silent for
    more than `timeout`: a whole camera pausing (a driver restart, a bag paused) is not an aux
    stall, and aux gets `timeout` from the first rgb frame after the pause to follow it.
    `timeout` may be changed at run time.
    """

    def __init__(self, timeout: float, start: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self.restart(start)

    def restart(self, now: float) -> None:
        """Forget everything; silence is counted from `now`."""
        with self._lock:
            self._last_aux: float | None = None
            self._last_rgb: float | None = None
            self._since = now  # aux is due `timeout` after this
            self._stalled = False

    @property
    def stalled(self) -> bool:
        with self._lock:
            return self._stalled

    def seen(self, now: float) -> AuxEvent | None:
        """Aux arrived at `now`; returns an event when this ends a stall."""
        with self._lock:
            silent = now - (self._since if self._last_aux is None else self._last_aux)
            self._last_aux = now
            if self._stalled:
                self._stalled = False
                return AuxEvent(stalled=False, silent_for=silent)
            return None

    def check(self, now: float) -> AuxEvent | None:
        """Rgb arrived at `now`; returns an event when aux has just gone silent for too long."""
        with self._lock:
            if self._last_rgb is None or now - self._last_rgb > self.timeout:
                self._since = max(self._since, now)  # the camera (re)starts: aux is due from now
            self._last_rgb = now
            due_from = self._since if self._last_aux is None else max(self._last_aux, self._since)
            if not self._stalled and now - due_from > self.timeout:
                self._stalled = True
                silent = now - (self._since if self._last_aux is None else self._last_aux)
                return AuxEvent(stalled=True, silent_for=silent)
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
    """Seconds one frame spent in each stage.

    The stages: decoding + encoding its inputs, the backend call, making + publishing its
    outputs; as wall-clock, or the CPU time of the worker thread that ran the stage (the
    difference is time the thread waited for a core or for the interpreter lock).
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
        """Counters, output rate, and p50/p95 (ms) over the recent window.

        The windows: latency (input stamp to publish), input (decoding and encoding), inference
        (the backend call), output (making and publishing the outputs) and process (all three);
        each stage also as CPU time (`input_cpu_p50_ms`, ...).
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


# diagnostic_msgs/DiagnosticStatus levels.
OK, WARN, ERROR = 0, 1, 2

#: Counters of frames that could not be served for a fault of the input or of the node.
BAD_FRAMES = (
    "out_of_order",
    "bad_encoding",
    "bad_image",
    "size_mismatch",
    "inference_errors",
    "output_errors",
)


@dataclass(frozen=True)
class Assessment:
    """The level of /diagnostics, its one-line message and the details behind it."""

    level: int  # OK, WARN or ERROR
    message: str
    values: dict[str, str]


class HealthRules:
    """The severity rules of /diagnostics, evaluated from a timer so that silence is noticed.

    `topics` are the resolved names of the inputs, rgb first, then aux for an RGB + aux model.
    Feed every input message to :meth:`seen` (before pairing) and call :meth:`assess` from the
    diagnostics timer with the node's counters. Times are seconds on a monotonic clock; stamps
    are ns. Rules, the worst wins:

    * a topic silent for `silence_warn` s -> WARN "no frames on /x for 3 s", for `silence_error`
      s -> ERROR; aux silent (or stalled, `aux_stalled`) while rgb flows stays WARN when RGB-only
      serving covers it;
    * both topics flowing but no pair formed for `silence_warn` s -> WARN, with both topics'
      last stamps (clocks apart, or a `slop` too small);
    * of the rgb frames since the previous assessment, a share of `bad_share_warn` or more
      that was out of order, undecodable or failed -> WARN, `bad_share_error` -> ERROR.

    Silence counts from `start` (:meth:`restart` on activation). Thread-safe.
    """

    def __init__(
        self,
        topics: tuple[str, ...],
        start: float,
        *,
        silence_warn: float = 3.0,
        silence_error: float = 10.0,
        bad_share_warn: float = 0.1,
        bad_share_error: float = 0.5,
    ) -> None:
        if len(topics) not in (1, 2):
            raise ValueError(f"topics must be (rgb,) or (rgb, aux), got {topics}")
        if not 0 < silence_warn <= silence_error:
            raise ValueError("need 0 < silence_warn <= silence_error")
        self.topics = tuple(topics)
        self.silence_warn, self.silence_error = silence_warn, silence_error
        self.bad_share_warn, self.bad_share_error = bad_share_warn, bad_share_error
        self._lock = threading.Lock()
        self.restart(start)

    def restart(self, now: float) -> None:
        """Forget what was seen; silence counts from `now`."""
        with self._lock:
            self._start = now
            self._last_seen: list[float | None] = [None] * len(self.topics)
            self._last_stamp: list[int | None] = [None] * len(self.topics)
            self._rgb_seen = 0
            self._last_pair = now
            self._previous: dict[str, int] | None = None  # counters at the previous assessment
            self._previous_rgb = 0

    def seen(self, index: int, now: float, stamp: int) -> None:
        """Record a message on input `index` (0 rgb, 1 aux), stamped `stamp` ns."""
        with self._lock:
            self._last_seen[index] = now
            self._last_stamp[index] = stamp
            if index == 0:
                self._rgb_seen += 1

    def assess(
        self, now: float, counts: dict[str, int], aux_stalled: bool, rgb_only_fallback: bool
    ) -> Assessment:
        """Assess the level now, from what arrived and the counters' change since the last call."""
        with self._lock:
            silent = [now - (t if t is not None else self._start) for t in self._last_seen]
            previous = self._previous if self._previous is not None else dict.fromkeys(counts, 0)
            if counts.get("pairs_in", 0) > previous.get("pairs_in", 0):
                self._last_pair = now
            bad = {k: counts.get(k, 0) - previous.get(k, 0) for k in BAD_FRAMES}
            bad = {k: n for k, n in bad.items() if n > 0}
            rgb_frames = self._rgb_seen - self._previous_rgb
            self._previous, self._previous_rgb = dict(counts), self._rgb_seen
            last_pair, stamps = self._last_pair, list(self._last_stamp)
            never = [t is None for t in self._last_seen]

        problems: list[tuple[int, str]] = []
        quiet = [
            i for i, s in enumerate(silent) if s >= self.silence_warn or (i == 1 and aux_stalled)
        ]
        if quiet:
            rgb_flows = 0 not in quiet
            worst = max(silent[i] for i in quiet)
            if rgb_flows and aux_stalled and rgb_only_fallback:
                level, consequence = WARN, ": serving RGB alone"
            else:
                level = ERROR if worst >= self.silence_error else WARN
                consequence = "" if rgb_flows or len(self.topics) == 1 else ": no output"
            silences = ", ".join(f"on {self.topics[i]} for {silent[i]:.0f} s" for i in quiet)
            problems.append((level, f"no frames {silences}{consequence}"))
        elif len(self.topics) == 2 and now - last_pair >= self.silence_warn:
            problems.append(
                (
                    WARN,
                    f"{self.topics[0]} and {self.topics[1]} arrive but no pair formed for "
                    f"{now - last_pair:.0f} s: last stamps {_stamp(stamps[0])} and "
                    f"{_stamp(stamps[1])} (clocks apart, or slop too small?)",
                )
            )
        if bad:
            total = sum(bad.values())
            share = total / max(rgb_frames, total)
            if share >= self.bad_share_warn:
                level = ERROR if share >= self.bad_share_error else WARN
                detail = ", ".join(f"{k} {n}" for k, n in sorted(bad.items()))
                problems.append(
                    (
                        level,
                        f"{total} of {max(rgb_frames, total)} recent frames not served ({detail})",
                    )
                )

        values = {"topics": ", ".join(self.topics)}
        for i, topic in enumerate(self.topics):
            seen = "never" if never[i] else f"{silent[i]:.1f} s ago"
            values[f"{topic} last message"] = seen
            values[f"{topic} last stamp"] = _stamp(stamps[i])
        if not problems:
            return Assessment(OK, "ok", values)
        level = max(p[0] for p in problems)
        return Assessment(level, "; ".join(p[1] for p in problems), values)


def _stamp(ns: int | None) -> str:
    return "none" if ns is None else f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
