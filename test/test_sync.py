"""The built-in approximate-time synchroniser against a reference model of message_filters."""

from __future__ import annotations

import itertools
import sys
import threading
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rclpy.duration import Duration
from rclpy.time import Time
from sensor_msgs.msg import Image

from ssma_ros.node.sync import create_sync
from ssma_ros.serve.latest import LatestSlot
from ssma_ros.serve.sync import ApproximateTimeSync, stamp_ns


def waiting(sync: ApproximateTimeSync) -> list[int]:
    """Entries queued on each input (read under the synchroniser's lock)."""
    with sync._lock:
        return [len(q) for q in sync._queues]


class ReferenceApproximateTimeSynchronizer:
    """message_filters' Python ApproximateTimeSynchronizer.add(), restated with rclpy types.

    One dict per input keyed by stamp ns; overwrite on an equal stamp; evict min stamp beyond
    queue_size; on arrival, candidates of every other input within slop (Duration >), sorted by
    distance; first product combination with max - min < slop whose stamps are all still queued
    is emitted and deleted; at most one per arrival.
    """

    def __init__(self, num_inputs, queue_size, slop_s):
        self.queues = [{} for _ in range(num_inputs)]
        self.queue_size = queue_size
        self.slop = Duration(seconds=slop_s)
        self.emitted = []

    def add(self, msg, my_queue_index):
        stamp_ns, _ = msg
        stamp = Time(nanoseconds=stamp_ns)
        my_queue = self.queues[my_queue_index]
        my_queue[stamp.nanoseconds] = msg
        while len(my_queue) > self.queue_size:
            del my_queue[min(my_queue)]
        search_queues = self.queues[:my_queue_index] + self.queues[my_queue_index + 1 :]
        stamps = []
        for queue in search_queues:
            topic_stamps = []
            for s in queue:
                stamp_delta = Duration(nanoseconds=abs(s - stamp.nanoseconds))
                if stamp_delta > self.slop:
                    continue
                topic_stamps.append((Time(nanoseconds=s), stamp_delta))
            if not topic_stamps:
                return
            topic_stamps = sorted(topic_stamps, key=lambda x: x[1])
            stamps.append(topic_stamps)
        for vv in itertools.product(*[list(zip(*s))[0] for s in stamps]):
            vv = list(vv)
            vv.insert(my_queue_index, stamp)
            qt = list(zip(self.queues, vv))
            if (max(vv) - min(vv)) < self.slop and all(t.nanoseconds in q for q, t in qt):
                self.emitted.append(tuple(q[t.nanoseconds] for q, t in qt))
                for q, t in qt:
                    del q[t.nanoseconds]
                break


MS = 1_000_000


@st.composite
def streams(draw):
    """Random multi-input stamp streams.

    Periodic sensors with jitter, drops, duplicates, out-of-order delivery and random
    interleaving of the inputs.
    """
    num_inputs = draw(st.integers(2, 3))
    events = []
    for index in range(num_inputs):
        period = draw(st.sampled_from([10, 33, 50, 100])) * MS
        offset = draw(st.integers(0, 60)) * MS
        for k in range(draw(st.integers(0, 14))):
            jitter = draw(st.integers(-8, 8)) * MS
            stamp = max(0, offset + k * period + jitter)
            if draw(st.integers(0, 9)) == 0:
                continue  # dropped frame
            events.append((index, stamp))
            if draw(st.integers(0, 9)) == 0:
                events.append((index, stamp))  # duplicate stamp
    # Random interleaving, i.e. arbitrary delivery order across and within inputs.
    events = draw(st.permutations(events))
    queue_size = draw(st.integers(1, 6))
    slop_ms = draw(st.sampled_from([0, 1, 5, 16.5, 20, 50, 120]))
    return num_inputs, queue_size, slop_ms / 1000.0, events


@settings(max_examples=300, deadline=None)
@given(streams())
def test_pairs_exactly_what_message_filters_pairs(stream):
    num_inputs, queue_size, slop_s, events = stream
    reference = ReferenceApproximateTimeSynchronizer(num_inputs, queue_size, slop_s)
    emitted = []
    ours = ApproximateTimeSync(num_inputs, queue_size, slop_s, lambda *p: emitted.append(p))
    slop_ns = Duration(seconds=slop_s).nanoseconds
    assert ours.slop_ns == slop_ns
    for serial, (index, stamp) in enumerate(events):
        payload = (stamp, serial)  # serial tells overwritten duplicates apart
        n_before = len(emitted)
        reference.add(payload, index)
        returned = ours.add(index, stamp, payload)
        assert emitted == reference.emitted
        assert returned == (len(emitted) == n_before + 1)  # at most one set per arrival
        # Same queued stamps in the same dict order (dict order decides distance ties).
        assert [list(q.items()) for q in ours._queues] == [
            list(q.items()) for q in reference.queues
        ]
        assert all(n <= queue_size for n in waiting(ours))  # bounded memory
    for payloads in emitted:
        stamps = [p[0] for p in payloads]
        assert max(stamps) - min(stamps) < slop_ns
    stats = ours.stats()
    assert stats.matched == len(emitted)
    assert sum(stats.received) == len(events)
    # Every received message is emitted, evicted, overwritten or still queued.
    for i in range(num_inputs):
        assert stats.received[i] == (
            len(emitted) + stats.evicted[i] + stats.duplicates[i] + waiting(ours)[i]
        )


def test_basic_pairing_and_strict_slop():
    out = []
    sync = ApproximateTimeSync(2, 10, 0.010, lambda a, b: out.append((a, b)))
    assert not sync.add(0, 100 * MS, "rgb0")
    assert not sync.add(1, 110 * MS, "aux0")  # exactly slop apart: not a match (strict)
    assert sync.add(1, 105 * MS, "aux1")
    assert out == [("rgb0", "aux1")]
    assert waiting(sync) == [0, 1]  # aux0 stays until evicted or matched
    assert sync.add(0, 115 * MS, "rgb1")  # aux0 (5 ms) matches
    assert out[-1] == ("rgb1", "aux0")


def test_nearest_candidate_wins_and_ties_keep_queue_order():
    out = []
    sync = ApproximateTimeSync(2, 10, 0.010, lambda a, b: out.append(b))
    sync.add(1, 96 * MS, "far")
    sync.add(1, 103 * MS, "tie_first")
    sync.add(1, 97 * MS, "tie_second")
    sync.add(1, 101 * MS, "near")
    sync.add(0, 100 * MS, "rgb")
    assert out == ["near"]
    sync.add(0, 100 * MS, "rgb")
    assert out == ["near", "tie_first"]  # 103 and 97 are both 3 ms away: queued first wins


def test_same_stamp_overwrites_and_oldest_is_evicted():
    out = []
    sync = ApproximateTimeSync(2, 2, 0.005, lambda a, b: out.append((a, b)))
    sync.add(0, 10 * MS, "a")
    sync.add(0, 10 * MS, "a2")
    sync.add(0, 30 * MS, "b")
    sync.add(0, 20 * MS, "c")  # queue {10, 30, 20} > 2: evict 10
    stats = sync.stats()
    assert stats.duplicates == [1, 0] and stats.evicted == [1, 0] and stats.out_of_order == [1, 0]
    sync.add(1, 10 * MS, "x")
    assert out == []  # 10 was evicted
    sync.add(1, 21 * MS, "y")
    assert out == [("c", "y")]
    sync.add(0, 100 * MS, "d")
    # 8 ms would pair with x (10 ms), but it is the oldest on a full queue: it evicts itself.
    assert not sync.add(0, 8 * MS, "late")
    assert waiting(sync) == [2, 1]
    assert sync.stats().evicted == [2, 0]
    assert sync.add(1, 30 * MS, "z")
    assert out[-1] == ("b", "z")


def test_three_inputs_need_all_within_slop():
    out = []
    sync = ApproximateTimeSync(3, 5, 0.010, lambda *p: out.append(p))
    sync.add(0, 100 * MS, "a")
    sync.add(1, 108 * MS, "b")
    sync.add(2, 93 * MS, "c")  # a-c 7 ms, b-c 15 ms: spread too large
    assert out == []
    sync.add(2, 104 * MS, "d")
    assert out == [("a", "b", "d")]


def stamped_image(sec: int, nanosec: int) -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


def test_ros_messages_are_stamped_by_their_header():
    out = []
    sync = ApproximateTimeSync(2, 4, 0.02, lambda a, b: out.append((a, b)))
    rgb, aux = stamped_image(5, 990_000_000), stamped_image(6, 5_000_000)
    assert stamp_ns(aux) == 6_005_000_000
    feed_rgb, feed_aux = sync.input_callback(0), sync.input_callback(1)
    feed_rgb(rgb)
    feed_aux(aux)
    assert out == [(rgb, aux)]
    with pytest.raises(IndexError):
        sync.input_callback(2)


def test_invalid_construction():
    with pytest.raises(ValueError, match="num_inputs"):
        ApproximateTimeSync(1, 5, 0.1, print)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSync(2, 0, 0.1, print)
    with pytest.raises(ValueError, match="slop_s"):
        ApproximateTimeSync(2, 5, -0.1, print)


def test_callback_runs_outside_the_lock():
    """A callback that calls back into the synchroniser would deadlock under message_filters."""
    seen = []
    sync = None

    def callback(a, b):
        seen.append(sync.stats().matched)  # takes the lock
        sync.add(0, 500 * MS, "reentrant")

    sync = ApproximateTimeSync(2, 5, 0.01, callback)
    worker = threading.Thread(
        target=lambda: (sync.add(0, 0, "a"), sync.add(1, 0, "b")), daemon=True
    )
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "callback deadlocked on the synchroniser lock"
    assert seen == [1]
    assert waiting(sync) == [1, 0]


def test_concurrent_inputs_emit_each_message_at_most_once():
    slot = LatestSlot()
    emitted = []
    lock = threading.Lock()

    def callback(a, b):
        with lock:
            emitted.append((a, b))
        slot.put((a, b))

    sync = ApproximateTimeSync(2, 8, 0.004, callback)
    n = 400

    def feed(index):
        for k in range(n):
            sync.add(index, k * 10 * MS + index * MS, (index, k))

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sync.stats().matched == len(emitted)
    firsts = [a for a, _ in emitted]
    seconds = [b for _, b in emitted]
    assert len(set(firsts)) == len(firsts) and len(set(seconds)) == len(seconds)
    assert all(a[1] == b[1] for a, b in emitted)  # only the 1 ms neighbour is within slop
    assert emitted  # the newest pair always meets, whatever the interleaving
    assert slot.put_count == len(emitted)


class FakeNode:
    def __init__(self):
        self.subscriptions = []

    def create_subscription(self, msg_type, topic, callback, qos_profile, **kwargs):
        self.subscriptions.append((msg_type, topic, callback, qos_profile, kwargs))
        return ("subscription", topic)


class ImportRecorder:
    def __init__(self):
        self.names = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)
        return None


def test_builtin_factory_subscribes_and_never_imports_message_filters(monkeypatch):
    monkeypatch.delitem(sys.modules, "message_filters", raising=False)
    recorder = ImportRecorder()
    monkeypatch.setattr(sys, "meta_path", [recorder, *sys.meta_path])
    node, out, seen = FakeNode(), [], []
    handle = create_sync(
        node,
        [(Image, "rgb"), (Image, "aux")],
        lambda a, b: out.append((a, b)),
        queue_size=3,
        slop_s=0.05,
        qos_profile="sensor",
        callback_group="grp",
        prefer="builtin",
        on_message=lambda i, m: seen.append((i, m, list(out))),
    )
    assert "message_filters" not in recorder.names
    assert handle.backend == "builtin"
    assert [(s[1], s[3], s[4]) for s in node.subscriptions] == [
        ("rgb", "sensor", {"callback_group": "grp"}),
        ("aux", "sensor", {"callback_group": "grp"}),
    ]
    rgb, aux = stamped_image(1, 0), stamped_image(1, 20_000_000)
    node.subscriptions[1][2](aux)
    node.subscriptions[0][2](rgb)
    assert out == [(rgb, aux)]
    assert seen == [(1, aux, []), (0, rgb, [])]  # every message, seen before pairing
    stats = handle.stats()
    assert stats.received == [1, 1] and stats.matched == 1 and stats.evicted == [0, 0]


def test_auto_falls_back_to_builtin_and_explicit_request_fails_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "message_filters", None)  # import raises ImportError
    handle = create_sync(
        FakeNode(),
        [(Image, "rgb"), (Image, "aux")],
        print,
        queue_size=3,
        slop_s=0.05,
        qos_profile=10,
    )
    assert handle.backend == "builtin"
    with pytest.raises(ImportError, match="'message_filters' requested but message_filters is"):
        create_sync(
            FakeNode(),
            [(Image, "rgb"), (Image, "aux")],
            print,
            queue_size=3,
            slop_s=0.05,
            qos_profile=10,
            prefer="message_filters",
        )
    with pytest.raises(ValueError, match="prefer must be"):
        create_sync(
            FakeNode(),
            [(Image, "rgb"), (Image, "aux")],
            print,
            queue_size=3,
            slop_s=0.05,
            qos_profile=10,
            prefer="exact",
        )


def fake_message_filters(record: dict) -> types.ModuleType:
    module = types.ModuleType("message_filters")

    class SimpleFilter:
        def __init__(self):
            self.callbacks = []

        def registerCallback(self, cb):  # noqa: N802 (message_filters' name)
            self.callbacks.append(cb)

        def signalMessage(self, *msgs):  # noqa: N802
            for cb in self.callbacks:
                cb(*msgs)

    class Subscriber(SimpleFilter):
        def __init__(self, node, msg_type, topic, **kwargs):
            super().__init__()
            record.setdefault("subscribers", []).append((node, msg_type, topic, kwargs))

    class ApproximateTimeSynchronizer(SimpleFilter):
        def __init__(self, fs, queue_size, slop):
            super().__init__()
            record["ats"] = (fs, queue_size, slop)
            for i, f in enumerate(fs):  # message_filters' connectInput
                f.registerCallback(lambda msg, i=i: record["events"].append(("pair", i, msg)))

    module.Subscriber = Subscriber
    module.ApproximateTimeSynchronizer = ApproximateTimeSynchronizer
    return module


@pytest.mark.parametrize("prefer", ["auto", "message_filters"])
def test_message_filters_used_when_importable(monkeypatch, prefer):
    record: dict = {"events": []}
    monkeypatch.setitem(sys.modules, "message_filters", fake_message_filters(record))
    node, out = FakeNode(), []
    handle = create_sync(
        node,
        [(Image, "rgb"), (Image, "aux")],
        lambda a, b: out.append((a, b)),
        queue_size=7,
        slop_s=0.03,
        qos_profile="sensor",
        prefer=prefer,
        on_message=lambda i, m: record["events"].append(("observe", i, m)),
    )
    assert handle.backend == "message_filters"
    assert node.subscriptions == []  # message_filters.Subscriber creates them itself
    assert [(s[0], s[2], s[3]) for s in record["subscribers"]] == [
        (node, "rgb", {"qos_profile": "sensor"}),
        (node, "aux", {"qos_profile": "sensor"}),
    ]
    subscribers, queue_size, slop = record["ats"]
    assert subscribers == handle.subscriptions and (queue_size, slop) == (7, 0.03)
    for i, s in enumerate(subscribers):  # messages arriving are counted and observed
        s.signalMessage(f"m{i}")
    subscribers[0].signalMessage("m2")
    assert record["events"] == [  # every message observed, and before it is paired
        ("observe", 0, "m0"),
        ("pair", 0, "m0"),
        ("observe", 1, "m1"),
        ("pair", 1, "m1"),
        ("observe", 0, "m2"),
        ("pair", 0, "m2"),
    ]
    handle.synchronizer.signalMessage("rgb", "aux")  # a matched set arrives
    assert out == [("rgb", "aux")]
    stats = handle.stats()
    assert stats.received == [2, 1] and stats.matched == 1 and stats.evicted is None


# LatestSlot: the mailbox between the synchroniser callback and the inference worker.


def test_latest_slot_newest_wins_and_drops_are_counted():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True
    assert slot.put(3) is True
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0) is None  # bounded: one item, taken once
    assert slot.put(4) is False
    assert (slot.put_count, slot.dropped) == (4, 2)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 1000), st.none()), max_size=40))
def test_latest_slot_matches_a_one_element_model(ops):
    """Integers are puts, None is a take: the slot behaves like 'keep only the newest'."""
    slot, held, dropped = LatestSlot(), None, 0
    for op in ops:
        if op is None:
            assert slot.take(timeout=0) == held
            held = None
        else:
            assert slot.put(op) == (held is not None)
            dropped += held is not None
            held = op
    assert slot.dropped == dropped


def test_latest_slot_take_waits_for_a_put_and_times_out():
    slot = LatestSlot()
    assert slot.take(timeout=0.01) is None
    got = []
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    taker.start()
    slot.put("frame")
    taker.join(timeout=10)
    assert got == ["frame"]


def test_latest_slot_close_unblocks_a_waiting_taker():
    slot = LatestSlot()
    got = []
    started = threading.Event()

    def take():
        started.set()
        got.append(slot.take())  # no timeout: only close() can end this

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    started.wait(10)
    slot.close()
    taker.join(timeout=10)
    assert not taker.is_alive() and got == [None]
    assert slot.closed
    assert slot.put("late") is True and slot.take(timeout=0) is None
    assert slot.dropped == 1


def test_latest_slot_close_discards_a_pending_item():
    slot = LatestSlot()
    slot.put("pending")
    slot.close()
    assert slot.take(timeout=0) is None and slot.dropped == 1
