"""The ROS-free serving core: importable and usable without rclpy or any message package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ssma_ros.serve.gate import StampGate, Verdict

ROOT = Path(__file__).resolve().parents[1]


def test_serving_core_imports_no_ros_package() -> None:
    """Offline tools (bundle_eval, demo, ssma-dataset from-bag) use it on machines without ROS."""
    code = (
        "import sys, pkgutil, importlib, ssma_ros.serve\n"
        "for m in pkgutil.iter_modules(ssma_ros.serve.__path__):\n"
        "    importlib.import_module('ssma_ros.serve.' + m.name)\n"
        "import ssma_ros.compress.bundle_eval\n"
        "ros = ('rclpy', 'sensor_msgs', 'std_msgs', 'message_filters', 'cv_bridge',"
        " 'rcl_interfaces')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ros"
        " or m.startswith('ssma_ros.node')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- the stamp gate (fault 1: time that jumps) ------------------------------------------------

S = 1_000_000_000


def serve_all(gate: StampGate, stamps, now, with_aux=True) -> list[str]:
    """Admit and serve each stamp at clock `now` (ns); the verdicts, jumps marked with '!'."""
    verdicts = []
    for stamp in stamps:
        admission = gate.admit(stamp, now, with_aux)
        if admission.verdict is Verdict.SERVE:
            gate.served(admission, with_aux)
        verdicts.append(admission.verdict.value + ("!" if admission.jump else ""))
    return verdicts


def test_gate_drops_ordinary_out_of_order_frames() -> None:
    gate = StampGate(jump_back_s=1.0, jump_ahead_s=1.0)
    now = 100 * S
    stamps = [now - 300_000_000, now - 200_000_000, now - 250_000_000, now - 200_000_000]
    assert serve_all(gate, stamps, now) == ["serve", "serve", "out_of_order", "out_of_order"]


def test_one_far_future_stamp_does_not_stop_the_output() -> None:
    """Fault 1: one frame stamped a day ahead held every later frame back until that date."""
    gate = StampGate(jump_back_s=1.0, jump_ahead_s=1.0)
    now = 100 * S
    verdicts = serve_all(gate, [now - 100_000_000, now + 86_400 * S, now - 50_000_000], now)
    assert verdicts == ["serve", "serve!", "serve"]
    # It was not the floor: order is still enforced against the normal frames.
    assert serve_all(gate, [now - 60_000_000], now) == ["out_of_order"]


def test_a_source_clock_ahead_warns_once_per_run() -> None:
    gate = StampGate(jump_back_s=1.0, jump_ahead_s=1.0)
    now = 100 * S
    ahead = [now + 10 * S + i * 33_000_000 for i in range(5)]
    assert serve_all(gate, ahead, now) == ["serve!"] + ["serve"] * 4
    assert serve_all(gate, [now - 10_000_000, now + 20 * S], now) == ["serve", "serve!"]


def test_stamps_jumping_back_restart_the_order_with_one_warning() -> None:
    """A camera restart, a bag loop or a sim-time reset: stamps go back by seconds."""
    gate = StampGate(jump_back_s=1.0, jump_ahead_s=1.0)
    now = 500 * S
    before = [now - 2 * S + i * 100_000_000 for i in range(5)]
    looped = [10 * S + i * 100_000_000 for i in range(5)]  # the bag starts again at 10 s
    verdicts = serve_all(gate, before + looped, now)
    assert verdicts == ["serve"] * 5 + ["serve!"] + ["serve"] * 4


def test_sim_time_reset_with_the_clock() -> None:
    """use_sim_time: the node's clock and the stamps go back together."""
    gate = StampGate()
    assert serve_all(gate, [50 * S, 51 * S], 51 * S) == ["serve", "serve"]
    assert serve_all(gate, [1 * S, 2 * S], 2 * S) == ["serve!", "serve"]


def test_unknown_clock_skips_the_ahead_check() -> None:
    """Sim time before the first /clock message reads 0: stamps are not 'ahead' of it."""
    gate = StampGate()
    assert serve_all(gate, [50 * S, 49 * S], 0) == ["serve", "out_of_order"]


def test_late_aux_after_a_frame_served_alone_is_not_served_twice() -> None:
    gate = StampGate()
    now = 100 * S
    assert serve_all(gate, [now - S // 2], now, with_aux=False) == ["serve"]
    assert serve_all(gate, [now - S // 2], now, with_aux=True) == ["late_aux"]
    assert serve_all(gate, [now - S // 2], now, with_aux=True) == ["out_of_order"]


def test_a_frame_that_failed_to_decode_does_not_move_the_gate() -> None:
    gate = StampGate()
    now = 100 * S
    assert gate.admit(now - S // 2, now, True).verdict is Verdict.SERVE  # never served()
    assert serve_all(gate, [now - S // 2 - 1], now) == ["serve"]
    gate.reset()
    assert serve_all(gate, [now - S // 2 - 2], now) == ["serve"]


def test_gate_thresholds_must_be_finite_and_positive() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="jump_back_s must be a finite number > 0"):
            StampGate(jump_back_s=bad)
