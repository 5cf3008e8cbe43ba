"""Subscriptions feeding an approximate-time synchroniser: message_filters' or the built-in one.

The pairing itself is ROS-free (:mod:`ssma_ros.serve.sync`); this module only subscribes.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ssma_ros.serve.sync import ApproximateTimeSync, SyncStats, slop_to_ns

#: What create_sync can be asked for (the node's `sync` parameter).
SYNC_BACKENDS = ("auto", "message_filters", "builtin")


@dataclass
class SyncHandle:
    """What :func:`create_sync` built: keep it alive as long as the subscriptions are wanted."""

    backend: str  # "message_filters" or "builtin"
    synchronizer: Any
    subscriptions: list[Any]
    _stats: Callable[[], SyncStats] = field(repr=False)

    def stats(self) -> SyncStats:
        return self._stats()

    def set_slop(self, seconds: float) -> None:
        """Change the pairing tolerance at run time, in whichever synchroniser pairs."""
        if self.backend == "builtin":
            self.synchronizer.slop_ns = slop_to_ns(seconds)
        else:  # message_filters keeps it as an rclpy Duration
            from rclpy.duration import Duration

            self.synchronizer.slop = Duration(seconds=seconds)


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
    if prefer not in SYNC_BACKENDS:
        raise ValueError(f"prefer must be one of {SYNC_BACKENDS}, got {prefer!r}")
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
