"""The node's health bookkeeping: counters, stage times, aux-stream state and warning throttle."""

from __future__ import annotations

import pytest

from ssma_ros.serve.health import COUNTERS, AuxMonitor, Health, StageTimes, Throttle


def test_report_has_wall_and_cpu_stage_percentiles_over_a_bounded_window():
    health = Health(latency_window=10)
    for i in range(25):  # only the last 10 frames count
        health.frame_done(
            now=100.0 + i / 10,
            latency=0.05 + i / 1000,
            wall=StageTimes(0.002, 0.020, 0.004 + i / 1000),
            cpu=StageTimes(0.001, 0.019, 0.002),
        )
    report = health.report(now=102.5)
    assert report["frames_out"] == 25
    assert report["output_p50_ms"] == pytest.approx(4.0 + 19.5)  # i = 15..24
    assert report["input_cpu_p50_ms"] == pytest.approx(1.0) and report[
        "output_cpu_p50_ms"
    ] == pytest.approx(2.0)
    assert report["process_cpu_p50_ms"] == pytest.approx(22.0)
    assert report["latency_p95_ms"] == pytest.approx(50.0 + 23.55)
    assert report["output_rate_hz"] == pytest.approx(10.0)
    assert len(health._wall) == len(health._cpu) == 10


def test_counters_are_a_fixed_set():
    health = Health()
    health.count("bad_image", 2)
    assert health.counts()["bad_image"] == 2 and set(health.counts()) == set(COUNTERS)
    with pytest.raises(KeyError):
        health.count("bad_imgae")
    assert "input_p50_ms" not in Health().report(now=0.0)  # nothing served yet: no made-up times


def test_aux_monitor_reports_a_stall_once_and_the_return_once():
    aux = AuxMonitor(timeout=0.5, start=0.0)
    assert aux.check(0.4) is None
    stalled = aux.check(0.6)
    assert stalled.stalled and stalled.silent_for == pytest.approx(0.6)
    assert aux.check(0.9) is None  # still stalled, said once
    back = aux.seen(1.0)
    assert back is not None and not back.stalled and back.silent_for == pytest.approx(1.0)
    assert aux.seen(1.1) is None and not aux.stalled


def test_throttle_is_per_key():
    throttle = Throttle(period=1.0)
    assert throttle.ready("bad_image", 0.0) and not throttle.ready("bad_image", 0.5)
    assert throttle.ready("size_mismatch", 0.5) and throttle.ready("bad_image", 1.0)
