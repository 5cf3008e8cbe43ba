"""Approximate-time synchronisation of the rgb and aux streams.

:class:`ApproximateTimeSync` reproduces the pairing of ros2 message_filters' Python
``ApproximateTimeSynchronizer`` (humble to rolling) exactly, for machines where message_filters
is not installed (it is not on PyPI):

* one dict per input, keyed by stamp in ns; a message with a stamp already queued on its input
  overwrites that entry (in place: dict order is kept, which decides distance ties below);
* when an input holds more than ``queue_size`` entries, its oldest stamp is evicted (this may be
  the message that just arrived);
* matching runs only when a message arrives, and only around it: for every other input, the
  stamps within ``slop`` (inclusive) of the new stamp, sorted by distance (stable sort, so ties
  keep queue order); if an input has none, nothing happens;
* the Cartesian product of these candidate lists is walked in order and the first combination
  whose spread ``max - min`` is strictly below ``slop`` is emitted and its entries deleted: at
  most one set per arrival; older unmatched entries are not purged, they age out by eviction.

Differences, on purpose: the user callback runs *after* the lock is released (message_filters
calls it while holding its lock, so a slow callback stalls every input's subscription callback,
and a callback that re-enters the synchroniser deadlocks); the entries of a set are removed
before the lock is released, so a set is still emitted exactly once. The price: with several
threads calling :meth:`add` at once, two sets matched in quick succession may reach the callback
in either order, so the callback must be thread-safe (handing the set to a ``LatestSlot`` is).
Counters say what was received, matched, evicted unmatched, overwritten by a duplicate stamp and
received out of order; they never change the pairing.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SyncStats:
    """Counters of a synchroniser; None where the backend cannot observe them."""

    received: list[int]
    matched: int
    evicted: list[int] | None = None  # unmatched entries pushed out by queue_size
    duplicates: list[int] | None = None  # unmatched entries overwritten by an identical stamp
    out_of_order: list[int] | None = None  # stamps older than the newest seen on that input


def stamp_ns(msg: Any) -> int:
    """Nanoseconds of ``msg.header.stamp`` (a builtin_interfaces/Time), as rclpy's Time does."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def slop_to_ns(slop_s: float) -> int:
    """Slop in ns, truncated exactly as ``rclpy.duration.Duration(seconds=slop_s)`` does."""
    return int(slop_s * 1e9)


class ApproximateTimeSync:
    """Built-in approximate-time synchroniser (see the module doc for the exact semantics).

    ``callback(*payloads)`` receives one payload per input, in input order.
    """

    def __init__(
        self, num_inputs: int, queue_size: int, slop_s: float, callback: Callable[..., None]
    ) -> None:
        if num_inputs < 2:
            raise ValueError(f"num_inputs must be >= 2, got {num_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not slop_s >= 0.0:
            raise ValueError(f"slop_s must be >= 0, got {slop_s}")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self.slop_ns = slop_to_ns(slop_s)
        self._callback = callback
        self._lock = threading.Lock()
        self._queues: list[dict[int, Any]] = [{} for _ in range(num_inputs)]
        self._newest: list[int | None] = [None] * num_inputs
        self._received = [0] * num_inputs
        self._evicted = [0] * num_inputs
        self._duplicates = [0] * num_inputs
        self._out_of_order = [0] * num_inputs
        self._matched = 0

    def add(self, index: int, stamp: int, payload: Any) -> bool:
        """Queue `payload` stamped `stamp` (ns) on input `index`; True if a set was emitted."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input index {index} out of range 0..{self.num_inputs - 1}")
        with self._lock:
            matched = self._add_locked(index, stamp, payload)
        if matched is None:
            return False
        self._callback(*matched)
        return True

    def add_msg(self, index: int, msg: Any) -> bool:
        """Queue a ROS message on input `index`, stamped by its ``header.stamp``."""
        return self.add(index, stamp_ns(msg), msg)

    def input_callback(self, index: int) -> Callable[[Any], None]:
        """A subscription callback that feeds input `index` (for ``create_subscription``)."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input index {index} out of range 0..{self.num_inputs - 1}")

        def feed(msg: Any) -> None:
            self.add_msg(index, msg)

        return feed

    def _add_locked(self, index: int, stamp: int, payload: Any) -> list[Any] | None:
        queue = self._queues[index]
        self._received[index] += 1
        newest = self._newest[index]
        if newest is not None and stamp < newest:
            self._out_of_order[index] += 1
        if newest is None or stamp > newest:
            self._newest[index] = stamp
        if stamp in queue:
            self._duplicates[index] += 1
        queue[stamp] = payload
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self._evicted[index] += 1
        if stamp not in queue:
            # The new message was the oldest and got evicted: message_filters walks the
            # candidates anyway but can never emit (its stamp is not in its queue).
            return None

        slop = self.slop_ns
        candidates: list[list[int]] = []
        for other_index, other in enumerate(self._queues):
            if other_index == index:
                continue
            near = [(s, abs(s - stamp)) for s in other if abs(s - stamp) <= slop]
            if not near:
                return None
            near.sort(key=lambda item: item[1])  # stable: distance ties keep queue order
            candidates.append([s for s, _ in near])

        for combination in itertools.product(*candidates):
            stamps = list(combination)
            stamps.insert(index, stamp)
            if max(stamps) - min(stamps) < slop:
                self._matched += 1
                return [q.pop(s) for q, s in zip(self._queues, stamps)]
        return None

    def stats(self) -> SyncStats:
        """A snapshot of the counters."""
        with self._lock:
            return SyncStats(
                received=list(self._received),
                matched=self._matched,
                evicted=list(self._evicted),
                duplicates=list(self._duplicates),
                out_of_order=list(self._out_of_order),
            )
