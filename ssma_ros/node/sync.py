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

import functools
import importlib
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

    def queue_lengths(self) -> list[int]:
        """Entries currently waiting on each input."""
        with self._lock:
            return [len(q) for q in self._queues]

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


@dataclass
class SyncHandle:
    """What :func:`create_sync` built: keep it alive as long as the subscriptions are wanted."""

    backend: str  # "message_filters" or "builtin"
    synchronizer: Any
    subscriptions: list[Any]
    _stats: Callable[[], SyncStats] = field(repr=False)

    def stats(self) -> SyncStats:
        return self._stats()


class _MessageFiltersCounters:
    """Received/matched counts around message_filters, which keeps none itself."""

    def __init__(self, num_inputs: int) -> None:
        self._lock = threading.Lock()
        self._received = [0] * num_inputs
        self._matched = 0

    def on_received(self, index: int) -> Callable[[Any], None]:
        def count(_msg: Any) -> None:
            with self._lock:
                self._received[index] += 1

        return count

    def on_matched(self) -> None:
        with self._lock:
            self._matched += 1

    def stats(self) -> SyncStats:
        with self._lock:
            return SyncStats(received=list(self._received), matched=self._matched)


def create_sync(
    node: Any,
    inputs: Sequence[tuple[type, str]],
    callback: Callable[..., None],
    *,
    queue_size: int,
    slop_s: float,
    qos_profile: Any,
    callback_group: Any = None,
    prefer: str = "auto",
    on_message: Callable[[int, Any], None] | None = None,
) -> SyncHandle:
    """Subscribe to `inputs` ((msg_type, topic) pairs) and call ``callback(*msgs)`` per set.

    Uses ``message_filters.ApproximateTimeSynchronizer`` when importable and `prefer` is "auto" or
    "message_filters", else :class:`ApproximateTimeSync` ("builtin" never imports
    message_filters). Both pair messages identically. `on_message(index, msg)`, if given, sees
    every message of every input before it is paired (e.g. to notice a stalled stream).
    Evicted/duplicate/out-of-order counts exist only for the built-in one; message_filters holds
    its matching lock during `callback`, so keep `callback` short either way.
    """
    if prefer not in ("auto", "message_filters", "builtin"):
        raise ValueError(f"prefer must be 'auto', 'message_filters' or 'builtin', got {prefer!r}")
    if len(inputs) < 2:
        raise ValueError(f"need at least 2 inputs to synchronise, got {len(inputs)}")
    extra = {} if callback_group is None else {"callback_group": callback_group}

    message_filters = None
    if prefer != "builtin":
        try:
            message_filters = importlib.import_module("message_filters")
        except ImportError as exc:
            if prefer == "message_filters":
                raise ImportError(
                    "synchroniser 'message_filters' requested but message_filters is not "
                    "importable (install ros-$ROS_DISTRO-message-filters, or use "
                    "'auto'/'builtin')"
                ) from exc

    if message_filters is None:
        sync = ApproximateTimeSync(len(inputs), queue_size, slop_s, callback)

        def subscription_callback(index: int) -> Callable[[Any], None]:
            feed = sync.input_callback(index)
            if on_message is None:
                return feed

            def observe_then_feed(msg: Any) -> None:
                on_message(index, msg)
                feed(msg)

            return observe_then_feed

        subscriptions = [
            node.create_subscription(
                msg_type, topic, subscription_callback(i), qos_profile, **extra
            )
            for i, (msg_type, topic) in enumerate(inputs)
        ]
        return SyncHandle("builtin", sync, subscriptions, sync.stats)

    counters = _MessageFiltersCounters(len(inputs))
    subscribers = []
    for i, (msg_type, topic) in enumerate(inputs):
        subscriber = message_filters.Subscriber(
            node, msg_type, topic, qos_profile=qos_profile, **extra
        )
        # Registered before the synchroniser connects, so these run before pairing.
        subscriber.registerCallback(counters.on_received(i))
        if on_message is not None:
            subscriber.registerCallback(functools.partial(on_message, i))
        subscribers.append(subscriber)

    def on_set(*msgs: Any) -> None:
        counters.on_matched()
        callback(*msgs)

    synchronizer = message_filters.ApproximateTimeSynchronizer(subscribers, queue_size, slop_s)
    synchronizer.registerCallback(on_set)
    return SyncHandle("message_filters", synchronizer, subscribers, counters.stats)
