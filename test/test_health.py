"""The node's health bookkeeping: counters, stage times, aux-stream state and warning throttle."""

from __future__ import annotations

import pytest

from ssma_ros.serve.health import (
    COUNTERS,
    ERROR,
    OK,
    WARN,
    Assessment,
    AuxMonitor,
    Health,
    HealthRules,
    StageTimes,
    Throttle,
)


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
    assert aux.check(0.1) is None  # the first rgb: aux is due 0.5 s after it
    assert aux.check(0.4) is None
    stalled = aux.check(0.7)
    assert stalled.stalled and stalled.silent_for == pytest.approx(0.6)
    assert aux.check(0.9) is None  # still stalled, said once
    back = aux.seen(1.0)
    assert back is not None and not back.stalled and back.silent_for == pytest.approx(0.9)
    assert aux.seen(1.1) is None and not aux.stalled


def test_model_loading_is_not_an_aux_stall():
    """Fault 11: the aux clock ran while the model loaded, so every start logged a stall."""
    aux = AuxMonitor(timeout=1.0, start=0.0)  # made before a 5 s model load
    assert aux.check(5.0) is None  # the first rgb frame
    assert aux.seen(5.03) is None and not aux.stalled


def test_a_whole_camera_pausing_is_not_an_aux_stall():
    """Fault 11: rgb and aux both silent for longer than aux_timeout is a camera pause."""
    aux = AuxMonitor(timeout=1.0, start=0.0)
    for i in range(10):
        assert aux.check(i * 0.1) is None
        assert aux.seen(i * 0.1 + 0.01) is None
    assert aux.check(3.0) is None and not aux.stalled  # both came back after 2.1 s
    assert aux.seen(3.01) is None
    # After the pause, aux stopping while rgb goes on is a stall again.
    events = [aux.check(3.0 + i * 0.1) for i in range(1, 16)]
    stalls = [e for e in events if e is not None]
    assert len(stalls) == 1 and stalls[0].stalled and stalls[0].silent_for > 1.0
    assert aux.stalled


def test_aux_monitor_restart_on_activation():
    aux = AuxMonitor(timeout=1.0, start=0.0)
    assert [aux.check(t) for t in (0.0, 0.5, 1.0)] == [None] * 3
    assert aux.check(1.5).stalled
    aux.restart(10.0)
    assert not aux.stalled and aux.check(10.2) is None


def test_throttle_is_per_key():
    throttle = Throttle(period=1.0)
    assert throttle.ready("bad_image", 0.0) and not throttle.ready("bad_image", 0.5)
    assert throttle.ready("size_mismatch", 0.5) and throttle.ready("bad_image", 1.0)


# -- the severity rules of /diagnostics (fault 2) ---------------------------------------------

RGB, AUX = "/camera/color/image_raw", "/camera/depth/image_rect_raw"
S = 1_000_000_000


def counts(**changes):
    base = dict.fromkeys(COUNTERS, 0)
    base.update(changes)
    return base


def test_silence_on_a_mistyped_topic_is_warned_then_an_error():
    """Fault 2: /diagnostics said OK while nothing arrived; the report names the topic."""
    rules = HealthRules((RGB, AUX), start=0.0, silence_warn=3.0, silence_error=10.0)
    assert rules.assess(1.0, counts(), False, True).level == OK
    warn = rules.assess(4.0, counts(), False, True)
    assert warn.level == WARN
    assert warn.message == f"no frames on {RGB} for 4 s, on {AUX} for 4 s: no output"
    error = rules.assess(12.0, counts(), False, True)
    assert error.level == ERROR and error.message.startswith(f"no frames on {RGB} for 12 s")
    assert error.values["topics"] == f"{RGB}, {AUX}"
    assert error.values[f"{RGB} last message"] == "never"


def test_silence_is_noticed_from_the_timer_after_frames_stop():
    rules = HealthRules((RGB,), start=0.0)
    for i in range(30):
        rules.seen(0, i * 0.1, i * 100_000_000)
    assert rules.assess(3.0, counts(pairs_in=30), False, True).level == OK
    late = rules.assess(15.0, counts(pairs_in=30), False, True)
    assert late.level == ERROR and late.message == f"no frames on {RGB} for 12 s"
    assert late.values[f"{RGB} last stamp"] == "2.900000000"


def test_aux_silent_while_rgb_flows():
    rules = HealthRules((RGB, AUX), start=0.0)
    for i in range(50):
        rules.seen(0, i * 0.1, i * 100_000_000)
    with_fallback = rules.assess(5.0, counts(rgb_only_in=50), True, True)
    assert with_fallback.level == WARN
    assert with_fallback.message == f"no frames on {AUX} for 5 s: serving RGB alone"
    rules.restart(0.0)
    for i in range(120):
        rules.seen(0, i * 0.1, i * 100_000_000)
    without = rules.assess(12.0, counts(), True, False)
    assert without.level == ERROR and without.message == f"no frames on {AUX} for 12 s"


def test_pairs_not_forming_names_both_topics_and_their_last_stamps():
    rules = HealthRules((RGB, AUX), start=0.0)
    for i in range(40):
        rules.seen(0, i * 0.1, 1000 * S + i * 100_000_000)
        rules.seen(1, i * 0.1, 5 * S + i * 100_000_000)  # another clock
    report = rules.assess(4.0, counts(), False, True)
    assert report.level == WARN
    assert report.message == (
        f"{RGB} and {AUX} arrive but no pair formed for 4 s: last stamps 1003.900000000 and "
        "8.900000000 (clocks apart, or slop too small?)"
    )


def test_bad_input_and_out_of_order_rates_raise_the_level_and_recover():
    """Fault 2: out_of_order did not count toward the level; cumulative counts warned forever."""
    rules = HealthRules((RGB,), start=0.0)
    t = 0.0
    served = 0

    def second(bad: int, **kinds) -> Assessment:
        nonlocal t, served
        for _ in range(30):
            t += 1 / 30
            rules.seen(0, t, int(t * S))
        served += 30 - bad
        return rules.assess(t, counts(pairs_in=served, **kinds), False, True)

    assert second(0).level == OK
    many = second(20, out_of_order=20)
    assert (
        many.level == ERROR
        and many.message == "20 of 30 recent frames not served (out_of_order 20)"
    )
    some = second(4, out_of_order=22, bad_encoding=2)
    assert some.level == WARN
    assert some.message == "4 of 30 recent frames not served (bad_encoding 2, out_of_order 2)"
    assert second(1, out_of_order=23, bad_encoding=2).level == OK  # 1 in 30: below 10 %
    assert second(0, out_of_order=23, bad_encoding=2).level == OK
