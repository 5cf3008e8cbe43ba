"""Which frames the inference worker serves, by stamp: newer than the last one, unless time jumped.

Out-of-order frames (a stamp not newer than the last one served) are dropped and counted, as
before. But a stamp far from the last served one is a jump of the source's clock, not disorder:
a camera restart, a bag played again in a loop or a simulation reset move stamps back by
seconds, and one frame stamped in the far future would otherwise hold every later frame back
until that date. Like tf's buffer and message_filters on a backwards ROS-time jump, the gate
then forgets its history and starts again, and says so once.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

NS = 1_000_000_000


class Verdict(enum.Enum):
    """What to do with a frame."""

    SERVE = "serve"
    OUT_OF_ORDER = "out_of_order"  # not newer than the last frame served: drop, count
    LATE_AUX = "late_aux"  # the aux partner of the rgb frame just served alone: drop, count


@dataclass(frozen=True)
class Admission:
    """The gate's answer for one frame; `jump` is a warning to log once when time jumped."""

    verdict: Verdict
    stamp: int
    jump: str | None = None
    floor: bool = True  # False: ahead of the clock, not used to order later frames


class StampGate:
    """Orders served frames by stamp (ns) and recognises jumps of the source's clock.

    ``jump_back_s``: a stamp older than the last served one by more than this is a new
    timeline (camera restart, bag loop, sim reset): the gate resets and serves it.
    ``jump_ahead_s``: a stamp ahead of the node's clock by more than this (a broken or
    unsynchronised source clock) is served, but does not become the floor later frames must
    pass, so one bad stamp cannot stop the output until its date. A clock reading of 0 or less
    means "unknown" (``use_sim_time`` before the first /clock message) and skips that check.

    Call :meth:`admit` for each frame, and :meth:`served` with its answer once the frame was
    decoded and is being served (a frame that fails to decode does not move the gate).
    Thread-safe.
    """

    def __init__(self, jump_back_s: float = 1.0, jump_ahead_s: float = 1.0) -> None:
        for name, value in (("jump_back_s", jump_back_s), ("jump_ahead_s", jump_ahead_s)):
            if not (value > 0 and value < float("inf")):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        self.jump_back_ns = int(jump_back_s * NS)
        self.jump_ahead_ns = int(jump_ahead_s * NS)
        self._lock = threading.Lock()
        self._last: int | None = None  # the floor: the newest stamp served
        self._last_alone = False  # was the frame at the floor served without aux?
        self._ahead = False  # in a run of stamps ahead of the clock (warned once per run)

    def admit(self, stamp: int, now: int, with_aux: bool) -> Admission:
        """Decide on a frame stamped `stamp` (ns) at node time `now` (ns); `with_aux`: a pair."""
        with self._lock:
            if now > 0 and stamp - now > self.jump_ahead_ns:
                jump = None
                if not self._ahead:
                    self._ahead = True
                    jump = (
                        f"frame stamped {(stamp - now) / NS:.1f} s ahead of the node's clock "
                        "(source clock not synchronised, or use_sim_time differs?): served, "
                        "but not used to order later frames"
                    )
                return Admission(Verdict.SERVE, stamp, jump, floor=False)
            self._ahead = False
            last = self._last
            if last is None or stamp > last:
                return Admission(Verdict.SERVE, stamp)
            if stamp == last and self._last_alone and with_aux:
                # The first aux after a stall completes an rgb frame already served alone; a
                # second such pair is a camera fault (out of order).
                self._last_alone = False
                return Admission(Verdict.LATE_AUX, stamp)
            if last - stamp > self.jump_back_ns:  # served() makes it the new floor
                return Admission(
                    Verdict.SERVE,
                    stamp,
                    f"stamps jumped back {(last - stamp) / NS:.1f} s (camera restart, bag loop "
                    "or simulation reset?): frame order starts again from this frame",
                )
            return Admission(Verdict.OUT_OF_ORDER, stamp)

    def served(self, admission: Admission, with_aux: bool) -> None:
        """Record that the frame `admission` let through is served, with its aux or alone."""
        if admission.verdict is not Verdict.SERVE:
            raise ValueError(f"served() for a frame the gate answered {admission.verdict}")
        if admission.floor:
            with self._lock:
                self._last, self._last_alone = admission.stamp, not with_aux

    def reset(self) -> None:
        """Forget the history (on activation: a new session may start anywhere in time)."""
        with self._lock:
            self._last, self._last_alone, self._ahead = None, False, False
