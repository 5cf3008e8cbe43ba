"""The ROS-free serving core: importable and usable without rclpy or any message package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ssma_ros.serve.decode import FrameDecoder
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


# -- the decode policy (fault 10) -------------------------------------------------------------


def message(array: np.ndarray, encoding: str):
    """Make a duck-typed Image (as a bag reader may give): the fields the codec reads."""
    hwc = array if array.ndim == 3 else array[:, :, None]
    return SimpleNamespace(
        height=hwc.shape[0],
        width=hwc.shape[1],
        encoding=encoding,
        is_bigendian=int(sys.byteorder == "big"),
        step=hwc.shape[1] * hwc.shape[2] * hwc.dtype.itemsize,
        data=np.ascontiguousarray(hwc).tobytes(),
    )


DEPTH = FrameDecoder("depth", ("16UC1", "32FC1"))
THERMAL = FrameDecoder("infrared", ("mono8", "mono16"))
RGB8 = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("encoding", "array"),
    [
        ("rgb8", RGB8),
        ("bgr8", RGB8[:, :, ::-1]),
        ("rgba8", np.dstack([RGB8, np.full((4, 6), 255, np.uint8)])),
        ("bgra8", np.dstack([RGB8[:, :, ::-1], np.zeros((4, 6), np.uint8)])),
    ],
)
def test_every_colour_encoding_decodes_to_the_same_rgb(encoding, array) -> None:
    decoded = DEPTH.decode(message(array, encoding))
    assert decoded.problem is None and decoded.aux is None
    np.testing.assert_array_equal(decoded.rgb, RGB8)


@pytest.mark.parametrize(
    ("encoding", "dtype"), [("16UC1", np.uint16), ("mono16", np.uint16), ("8UC1", np.uint8)]
)
def test_depth_like_encodings_on_the_rgb_topic_are_refused_and_counted(encoding, dtype) -> None:
    """Fault 10: they were segmented as if they were images, nothing counted."""
    decoded = DEPTH.decode(message(np.full((4, 6), 100, dtype), encoding))
    assert decoded.rgb is None and decoded.problem.counter == "bad_encoding"
    assert decoded.problem.message.startswith(f"rgb encoding {encoding!r} is not a colour image")


def test_aux_encodings_follow_the_bundle_modality() -> None:
    depth_mm = np.full((4, 6), 1500, np.uint16)
    ok = DEPTH.decode(message(RGB8, "rgb8"), message(depth_mm, "16UC1"))
    assert ok.problem is None and ok.aux_encoding == "16UC1"
    np.testing.assert_array_equal(ok.aux, depth_mm)
    metres = DEPTH.decode(message(RGB8, "rgb8"), message(np.ones((4, 6), np.float32), "32FC1"))
    assert metres.problem is None and metres.aux.dtype == np.float32
    wrong = DEPTH.decode(message(RGB8, "rgb8"), message(depth_mm, "mono16"))
    assert wrong.rgb is None and wrong.problem.counter == "bad_encoding"
    assert "cannot feed a depth model; expected one of ['16UC1', '32FC1']" in wrong.problem.message
    thermal = THERMAL.decode(message(RGB8, "rgb8"), message(depth_mm, "mono16"))
    assert thermal.problem is None and thermal.aux_encoding == "mono16"
    assert THERMAL.decode(message(RGB8, "rgb8"), message(depth_mm, "16UC1")).rgb is None


def test_bad_aux_frames() -> None:
    truncated = message(np.ones((4, 6), np.uint16), "16UC1")
    truncated.data = truncated.data[:-2]
    bad = DEPTH.decode(message(RGB8, "rgb8"), truncated)
    assert bad.rgb is None and bad.problem.counter == "bad_image"
    small = DEPTH.decode(message(RGB8, "rgb8"), message(np.ones((2, 3), np.uint16), "16UC1"))
    assert small.problem.counter == "size_mismatch"
    assert small.problem.message.startswith("rgb is 6x4 but aux is 3x2")
    blank = DEPTH.decode(message(RGB8, "rgb8"), message(np.zeros((4, 6), np.uint16), "16UC1"))
    assert blank.problem.counter == "aux_all_invalid" and blank.aux is None
    np.testing.assert_array_equal(blank.rgb, RGB8)  # served from RGB alone
