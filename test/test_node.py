"""segment_node over a real DDS: publish rgb/aux/camera_info, spin, receive every output.

Each test starts the node in its own namespace inside this run's own ROS domain (conftest.py),
with a probe node that plays the camera and listens to the outputs with default (reliable) QoS,
as rqt, RViz or a user's node do. Time-dependent behaviour runs on an injected clock, and load on
a backend held on an event, so no test depends on how fast this machine is.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from cloud_reader import cloud_to_numpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from ssma_ros.data.synthetic import CLASSES, SyntheticScenes
from ssma_ros.node.params import NodeParams
from ssma_ros.node.segment_node import Frame, SegmentNode
from ssma_ros.serve import cloud as cloud_module
from ssma_ros.serve import outputs
from ssma_ros.serve.codec import image_to_numpy, numpy_to_image
from ssma_ros.serve.health import OK, WARN
from ssma_ros.serve.segmenter import Segmenter

ROOT = Path(__file__).resolve().parents[1]
H, W = 48, 64  # camera size; the bundle's network input is 64x80, so frames are resized both ways
_namespaces = itertools.count()
OUTPUTS = {
    "mask": Image,
    "confidence": Image,
    "confidence_float": Image,
    "overlay": Image,
    "cloud": PointCloud2,
}


def _frame(index: int):
    return SyntheticScenes(H, W, seed=3).sample(index)


def _depth_msg(depth_m: np.ndarray, encoding: str, header) -> Image:
    if encoding == "16UC1":
        mm = np.where(np.isfinite(depth_m), np.round(depth_m * 1000.0), 0).astype(np.uint16)
        return numpy_to_image(mm, "16UC1", header)
    return numpy_to_image(depth_m.astype(np.float32), "32FC1", header)


def _rgb_msg(rgb: np.ndarray, encoding: str, header) -> Image:
    return numpy_to_image(
        np.ascontiguousarray(rgb[:, :, ::-1]) if encoding == "bgr8" else rgb, encoding, header
    )


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Harness:
    """The node under test plus a probe node, spun by one executor in a background thread.

    The node is configured and activated (what `autostart` does in the executable) unless
    `start=False`.
    """

    def __init__(
        self, context, bundle: Path, subscribe=tuple(OUTPUTS), start=True, clock=None, **params
    ) -> None:
        self.ns = f"/t{next(_namespaces)}"
        overrides = [
            Parameter("bundle", value=str(bundle)),
            Parameter("backend", value="onnxruntime"),
            Parameter("cpu_threads", value=1),
            *(Parameter(k, value=v) for k, v in params.items()),
        ]
        self.node = SegmentNode(context=context, namespace=self.ns, parameter_overrides=overrides)
        if clock is not None:
            self.node.clock = clock
        self.probe = rclpy.create_node("probe", context=context, namespace=self.ns)
        self.received: dict[str, list] = {name: [] for name in OUTPUTS}
        self.diagnostics: list[DiagnosticArray] = []
        self.class_names: list[String] = []
        self.lock = threading.RLock()
        self.base = base = f"{self.ns}/ssma_segmentation"
        for name in subscribe:  # default QoS: reliable, as most subscribers are
            self.probe.create_subscription(OUTPUTS[name], f"{base}/{name}", self._keep(name), 10)
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self._keep_diag, 10)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.probe.create_subscription(
            String, f"{base}/class_names", self.class_names.append, latched
        )
        self.rgb_pub = self.probe.create_publisher(Image, "rgb", 10)
        self.aux_pub = self.probe.create_publisher(Image, "aux", 10)
        self.info_pub = self.probe.create_publisher(CameraInfo, "camera_info", 10)
        self.executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.subscribe = subscribe
        if start:
            assert self.node.start() is None, self.node.failure
            self.wait_for_discovery()

    def wait_for_discovery(self) -> None:
        self.wait(
            lambda: (
                all(
                    self.probe.count_subscribers(f"{self.base}/{n}") or n not in self.subscribe
                    for n in OUTPUTS
                )
                and self.node.count_publishers(f"{self.ns}/rgb") > 0
                and self.node.count_subscribers(f"{self.base}/mask") == ("mask" in self.subscribe)
            ),
            "discovery",
        )

    def _keep(self, name):
        def keep(msg):
            with self.lock:
                self.received[name].append(msg)

        return keep

    def _keep_diag(self, msg: DiagnosticArray) -> None:
        if any(s.name.startswith(f"{self.ns}/ssma_segmentation") for s in msg.status):
            with self.lock:
                self.diagnostics.append(msg)

    def stamp(self, seconds: float):
        return rclpy.time.Time(seconds=seconds).to_msg()

    def camera_info(self, sample, header) -> CameraInfo:
        cam = sample.camera
        height, width = sample.rgb.shape[:2]
        msg = CameraInfo(header=header, width=width, height=height)
        msg.k = [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0]
        return msg

    def send(
        self,
        sample,
        t: float,
        rgb_enc="rgb8",
        aux_enc="16UC1",
        aux: Image | None = None,
        rgb=None,
        info: CameraInfo | None = None,
    ):
        header = Image().header
        header.stamp, header.frame_id = self.stamp(t), "camera_color_optical_frame"
        self.info_pub.publish(info if info is not None else self.camera_info(sample, header))
        self.rgb_pub.publish(rgb if rgb is not None else _rgb_msg(sample.rgb, rgb_enc, header))
        if aux_enc is not None:
            self.aux_pub.publish(
                aux if aux is not None else _depth_msg(sample.depth, aux_enc, header)
            )
        return header

    def wait(self, predicate, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def count(self, name: str) -> int:
        return self.node.health.counts()[name]

    def served(self, sample, t: float, output="mask", **kwargs):
        """Send one frame and wait for its `output`; the message."""
        header = self.send(sample, t, **kwargs)
        self.wait(lambda: self.by_stamp(output, header.stamp), f"{output} at t={t}")
        return self.by_stamp(output, header.stamp)[0]

    def by_stamp(self, name: str, stamp) -> list:
        with self.lock:
            return [m for m in self.received[name] if m.header.stamp == stamp]

    def last_report(self) -> dict[str, str]:
        with self.lock:
            status = [
                s
                for s in self.diagnostics[-1].status
                if s.name.startswith(f"{self.ns}/ssma_segmentation")
            ][0]
        return {
            "level": status.level,
            "message": status.message,
            **{kv.key: kv.value for kv in status.values},
        }

    def report_after(self, seconds: float) -> dict[str, str]:
        """Return a diagnostics report published after `seconds` from now."""
        with self.lock:
            n = len(self.diagnostics)
        time.sleep(seconds)
        self.wait(lambda: len(self.diagnostics) > n, "a fresh /diagnostics message", timeout=5)
        return self.last_report()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        self.probe.destroy_node()


@pytest.fixture
def harness_factory(ros_context, tiny_bundle):
    made = []

    def make(**kwargs):
        made.append(Harness(ros_context, tiny_bundle, **kwargs))
        return made[-1]

    yield make
    for h in made:
        h.close()


@pytest.mark.parametrize("upsampling", ["nearest", "bilinear"])
def test_every_output_for_each_input_encoding(harness_factory, upsampling):
    h = harness_factory(upsampling=upsampling)
    num_classes = len(CLASSES)
    for i, (rgb_enc, aux_enc) in enumerate(
        itertools.product(("rgb8", "bgr8"), ("16UC1", "32FC1"))
    ):
        sample = _frame(i)
        header = h.send(sample, t=100.0 + i, rgb_enc=rgb_enc, aux_enc=aux_enc)
        h.wait(
            lambda: all(h.by_stamp(n, header.stamp) for n in OUTPUTS),
            f"all outputs for {rgb_enc}+{aux_enc}",
        )
        msgs = {n: h.by_stamp(n, header.stamp)[0] for n in OUTPUTS}
        for name, enc in (
            ("mask", "mono8"),
            ("confidence", "mono8"),
            ("confidence_float", "32FC1"),
            ("overlay", "rgb8"),
        ):
            m = msgs[name]
            assert (m.encoding, m.height, m.width) == (enc, H, W), name
            assert m.header.frame_id == "camera_color_optical_frame"
        mask = image_to_numpy(msgs["mask"])
        assert mask.max() < num_classes
        conf8 = image_to_numpy(msgs["confidence"]).astype(np.float32) / 255.0
        conf = image_to_numpy(msgs["confidence_float"])
        assert np.all((conf >= 1.0 / num_classes - 1e-6) & (conf <= 1.0))
        assert np.max(np.abs(conf8 - conf)) <= 0.5 / 255 + 1e-6
        # The cloud is organised and pixel-aligned: point (v, u) is pixel (v, u) of the depth.
        c = msgs["cloud"]
        assert (c.height, c.width, c.header.frame_id) == (H, W, "camera_color_optical_frame")
        points = cloud_to_numpy(c)
        np.testing.assert_array_equal(points["label"], mask)
        depth = sample.depth if aux_enc == "32FC1" else np.round(sample.depth * 1000) / 1000
        valid = np.isfinite(depth) & (depth > 0)
        np.testing.assert_allclose(points["z"][valid], depth[valid], rtol=1e-6)
        assert np.isnan(points["z"][~valid]).all()
        v, u = np.argwhere(valid)[len(np.argwhere(valid)) // 2]
        cam = sample.camera
        assert points["x"][v, u] == pytest.approx((u - cam.cx) * depth[v, u] / cam.fx, rel=1e-5)
        assert points["y"][v, u] == pytest.approx((v - cam.cy) * depth[v, u] / cam.fy, rel=1e-5)
    h.wait(lambda: h.class_names, "latched class names")
    assert json.loads(h.class_names[0].data)["classes"] == list(CLASSES)


class Spy:
    """Counts the calls of a function and calls it."""

    def __init__(self, target) -> None:
        self.target, self.calls = target, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.target(*args, **kwargs)

    def __get__(self, instance, owner):  # as a method: bind like a function does
        return self if instance is None else functools.partial(self, instance)


def test_only_subscribed_outputs_are_computed(harness_factory, monkeypatch):
    h = harness_factory(subscribe=("mask",))
    everything = harness_factory()  # both warmed up before the spies go in
    spies = {
        "overlay": Spy(outputs.overlay),
        "cloud": Spy(cloud_module.semantic_cloud),
        "confidence": Spy(outputs.Segmentation.confidence_mono8),
        "confidence_float": Spy(outputs.Segmentation.confidence),
    }
    monkeypatch.setattr(outputs, "overlay", spies["overlay"])
    monkeypatch.setattr(cloud_module, "semantic_cloud", spies["cloud"])
    monkeypatch.setattr(outputs.Segmentation, "confidence_mono8", spies["confidence"])
    monkeypatch.setattr(outputs.Segmentation, "confidence", spies["confidence_float"])
    h.served(_frame(0), t=200.0)
    assert {name: spy.calls for name, spy in spies.items()} == dict.fromkeys(spies, 0)
    # The same frame with every output subscribed does all of that work: the spies can see it.
    everything.served(_frame(0), t=200.0, output="cloud")
    assert all(spy.calls > 0 for spy in spies.values()), {n: s.calls for n, s in spies.items()}


def test_a_node_nobody_listens_to_never_runs_the_model(harness_factory):
    h = harness_factory(subscribe=())
    infer = h.node.segmenter.backend.infer = Spy(h.node.segmenter.backend.infer)
    wanted = h.node._wanted = Spy(h.node._wanted)
    for i in range(3):
        h.send(_frame(i), t=250.0 + i)
        h.wait(lambda: wanted.calls > i, f"the inference worker taking frame {i}")
    assert infer.calls == 0 and h.count("frames_out") == 0


def test_bad_input_is_counted_and_the_node_keeps_serving(harness_factory):
    h = harness_factory(warn_throttle=60.0)
    sample = _frame(1)
    header = Image().header
    header.stamp = h.stamp(300.0)
    bad = {
        "bad_encoding": _rgb_msg(sample.rgb, "rgb8", header),  # an rgb8 image on the depth topic
        "size_mismatch": numpy_to_image(np.zeros((H // 2, W // 2), np.uint16), "16UC1", header),
        "bad_image": Image(
            header=header, height=H, width=W, encoding="16UC1", step=2 * W, data=bytes(10)
        ),
        "aux_all_invalid": numpy_to_image(np.full((H, W), np.nan, np.float32), "32FC1", header),
    }
    t = 300.0
    for counter, aux in bad.items():
        t += 1.0
        aux.header.stamp = h.stamp(t)
        h.send(sample, t=t, aux=aux)
        h.wait(lambda: h.node.health.counts()[counter] >= 1, counter)
    # An all-NaN depth frame is still segmented, from RGB alone.
    h.wait(lambda: h.by_stamp("mask", h.stamp(t)), "the mask of the all-NaN depth frame")
    # Stamps out of order: a frame older than one already served is dropped.
    h.send(sample, t=t - 0.5)  # (further back is a time jump: served, order restarts)
    h.wait(lambda: h.node.health.counts()["out_of_order"] >= 1, "out_of_order")
    # A truncated rgb image.
    header.stamp = h.stamp(t + 1)
    h.send(
        sample,
        t=t + 1,
        rgb=Image(header=header, height=H, width=W, encoding="rgb8", step=3 * W, data=bytes(7)),
    )
    h.wait(lambda: h.node.health.counts()["bad_image"] >= 2, "truncated rgb")
    # And the node still serves good frames.
    good = h.send(sample, t=t + 2)
    h.wait(lambda: h.by_stamp("mask", good.stamp), "a good frame after the bad ones")
    report = h.report_after(0.0)
    assert int(report["bad_encoding"]) >= 1 and int(report["size_mismatch"]) >= 1
    with h.lock:  # a report after new bad inputs raises the level and says which
        warned = " ".join(
            s.message for d in h.diagnostics for s in d.status if s.level >= bytes([WARN])
        )
    assert "bad_encoding" in warned and "size_mismatch" in warned


def test_rgb_only_fallback_when_aux_stalls_and_recovery(harness_factory):
    clock = FakeClock()
    h = harness_factory(clock=clock, aux_timeout=0.5, subscribe=("mask",))
    sample = _frame(2)
    received = lambda: h.node.sync.stats().received[0]  # noqa: E731  (rgb messages seen)
    h.served(sample, t=400.0)
    assert h.node.assess(clock.now).level == OK
    clock.now += 0.3
    h.send(sample, t=400.1, aux_enc=None)  # rgb goes on, aux silent for 0.3 s: wait for it
    h.wait(lambda: received() == 2, "the second rgb")
    assert h.count("rgb_only_in") == 0 and not h.node.aux_monitor.stalled
    clock.now += 0.3  # aux silent for 0.6 s > aux_timeout while rgb flows
    h.served(sample, t=400.2, aux_enc=None)  # served from RGB alone
    assert h.count("rgb_only_in") == 1
    stalled = h.node.assess(clock.now)
    assert stalled.level == WARN and stalled.message.endswith(": serving RGB alone")
    assert f"{h.ns}/aux" in stalled.message
    h.served(sample, t=400.3)  # aux is back (this rgb may still come before it, served alone)
    h.wait(lambda: not h.node.aux_monitor.stalled, "the aux message of t=400.3")
    alone = h.count("rgb_only_in")
    h.served(sample, t=400.4)  # fused again, and diagnostics say so
    assert h.count("rgb_only_in") == alone and not h.node.aux_monitor.stalled
    assert (h.node.assess(clock.now).level, h.node.assess(clock.now).message) == (OK, "ok")


def test_a_whole_camera_pausing_is_no_aux_stall(harness_factory, monkeypatch):
    """Fault 11: neither loading the model nor a pause of both streams is an aux stall."""
    clock = FakeClock()
    warm_up = Segmenter.warm_up

    def slow_warm_up(segmenter):  # loading takes 10 s on this clock
        clock.now += 10.0
        return warm_up(segmenter)

    monkeypatch.setattr(Segmenter, "warm_up", slow_warm_up)
    h = harness_factory(clock=clock, aux_timeout=0.5, subscribe=("mask",))
    sample = _frame(2)
    h.served(sample, t=450.0)
    clock.now += 5.0  # the whole camera pauses
    h.served(sample, t=455.0)
    assert h.count("rgb_only_in") == 0 and h.count("pairs_in") == 2
    assert not h.node.aux_monitor.stalled


def test_the_late_aux_partner_of_a_frame_served_alone_is_not_served_twice(harness_factory):
    h = harness_factory(subscribe=("mask",))
    sample = _frame(5)
    header = Image().header
    header.stamp = h.stamp(700.0)
    rgb, aux = _rgb_msg(sample.rgb, "rgb8", header), _depth_msg(sample.depth, "16UC1", header)
    h.node._infer(Frame(rgb, None))  # served alone while aux was stalled
    h.node._infer(Frame(rgb, aux))  # then its aux arrives: the stream is back
    h.wait(lambda: h.by_stamp("mask", header.stamp), "the mask of the frame served alone")
    counts = h.node.health.counts()
    assert (counts["late_aux"], counts["out_of_order"]) == (1, 0)
    h.node._infer(Frame(rgb, aux))  # the same pair once more is a camera fault
    assert h.node.health.counts()["out_of_order"] == 1
    time.sleep(0.3)
    assert len(h.by_stamp("mask", header.stamp)) == 1


def test_flood_keeps_memory_bounded(harness_factory):
    """The model is held busy on one frame while 20 more pairs arrive: only the newest waits."""
    h = harness_factory(queue_size=5, subscribe=("mask",))
    release, entered = threading.Event(), threading.Event()
    backend = h.node.segmenter.backend
    run = backend.infer

    def held(inputs):
        entered.set()
        release.wait(30)
        return run(inputs)

    backend.infer = held
    sample = _frame(3)
    rgb, aux = _rgb_msg(sample.rgb, "rgb8", None), _depth_msg(sample.depth, "16UC1", None)
    for i in range(21):
        rgb.header.stamp, aux.header.stamp = h.stamp(500.0 + i), h.stamp(500.0 + i + 0.001)
        h.rgb_pub.publish(rgb)
        h.aux_pub.publish(aux)
        h.wait(lambda: h.count("pairs_in") > i, f"pair {i}")
        if i == 0:
            assert entered.wait(20), "the inference worker never took the first pair"
        assert max(len(q) for q in h.node.sync.synchronizer._queues) <= 5
    assert h.count("dropped_stale") == 19  # pairs 1..19 replaced, 20 waits
    release.set()
    # Two frames leave the inference stage: the held one and the newest. The output worker may
    # find the held one's logits already replaced by the newest's (counted, never queued).
    h.wait(lambda: h.by_stamp("mask", h.stamp(520.0)), "the newest frame's mask")
    h.wait(
        lambda: h.count("frames_out") + h.count("dropped_inferred") == 2,
        "the held frame and the newest one accounted for",
    )
    stamps = [m.header.stamp for m in h.received["mask"]]
    assert stamps in ([h.stamp(500.0), h.stamp(520.0)], [h.stamp(520.0)])
    assert all(worker.is_alive() for worker in h.node.workers)


def test_output_failure_is_counted_and_the_next_frames_are_served(harness_factory, monkeypatch):
    h = harness_factory(subscribe=("mask", "overlay"))
    sample = _frame(4)

    def broken(*args, **kwargs):
        raise RuntimeError("palette exploded")

    monkeypatch.setattr("ssma_ros.serve.outputs.overlay", broken)
    header = h.send(sample, t=600.0)
    h.wait(
        lambda: h.by_stamp("mask", header.stamp), "the mask published before the overlay failed"
    )
    h.wait(lambda: h.count("output_errors") == 1, "the output failure counted")
    failed = h.report_after(0.2)
    assert int(failed["output_errors"]) == 1 and failed["level"] >= bytes([WARN])
    monkeypatch.undo()
    header = h.send(sample, t=601.0)
    h.wait(lambda: h.by_stamp("overlay", header.stamp), "the overlay of the next frame")
    h.wait(lambda: h.count("frames_out") == 1, "the next frame counted")
    report = h.report_after(0.2)
    assert int(report["frames_out"]) == 1
    for kind in ("", "_cpu"):  # wall-clock and worker CPU time
        stages = [
            float(report[f"{name}{kind}_p50_ms"]) for name in ("input", "inference", "output")
        ]
        assert min(stages) > 0
        # one frame: the p50s add up, to the rounding of the four 2-decimal values in /diagnostics
        assert float(report[f"process{kind}_p50_ms"]) == pytest.approx(sum(stages), abs=0.02)


def test_parameter_file_matches_declarations():
    declared = {f.name: f.default for f in NodeParams.__dataclass_fields__.values()}
    on_file = yaml.safe_load((ROOT / "config" / "segment.yaml").read_text())["/**"][
        "ros__parameters"
    ]
    assert on_file == declared


def test_bad_parameter_is_refused(ros_context, tiny_bundle):
    with pytest.raises(ValueError, match="backend"):
        SegmentNode(
            context=ros_context,
            parameter_overrides=[
                Parameter("bundle", value=str(tiny_bundle)),
                Parameter("backend", value="cuda-magic"),
            ],
        )


def test_entry_point_starts_and_stops_cleanly_on_sigint(tiny_bundle):
    """The installed executable: a parameter file, what it serves in the log, exit 0 on Ctrl-C."""
    cmd = [
        sys.executable,
        "-m",
        "ssma_ros.node.segment_node",
        "--ros-args",
        "--params-file",
        str(ROOT / "config" / "segment.yaml"),
        "-p",
        f"bundle:={tiny_bundle}",
        "-p",
        "backend:=onnxruntime",
        "-r",
        "__ns:=/entry",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ
    )
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "ready: listening on" in line or not line:
            break
    assert any("serving tiny" in line and "onnxruntime" in line for line in lines), "".join(lines)
    assert "ready: listening on /entry/rgb, /entry/aux, /entry/camera_info" in lines[-1], "".join(
        lines
    )
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, "".join(lines) + out
    assert "Traceback" not in out


def test_readme_documents_every_parameter():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in NodeParams.__dataclass_fields__ if f"| `{name}` |" not in readme]
    assert not missing, f"README parameter table lacks {missing}"


def test_default_bundle_is_served_when_no_bundle_is_given(ros_context, monkeypatch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)  # a pip install: no ament index
    node = SegmentNode(
        context=ros_context, parameter_overrides=[Parameter("backend", value="onnxruntime")]
    )
    try:
        assert node.segmenter is None  # nothing is loaded before configure
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.segmenter.bundle.path == ROOT / "models" / "default"
        assert node.segmenter.uses_aux
    finally:
        node.destroy_node()


def test_entry_point_runs_opencv_sequentially(tmp_path):
    """OpenCV's pool would spin beside the backend: the executable turns it off at once."""
    code = (
        "import sys, cv2\nfrom ssma_ros.node import segment_node\n"
        "assert cv2.getNumThreads() > 1 or __import__('os').cpu_count() == 1\n"
        "try:\n    segment_node.main(sys.argv)\nexcept SystemExit:\n    pass\n"
        "print('opencv threads', cv2.getNumThreads())"
    )
    cmd = [sys.executable, "-c", code, "--ros-args", "-p", f"bundle:={tmp_path / 'nope'}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=os.environ)
    assert "opencv threads 1" in result.stdout, result.stdout + result.stderr
