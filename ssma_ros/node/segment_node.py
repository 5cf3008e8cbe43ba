"""segment_node: synchronised rgb + aux in; mask, confidence, overlay and semantic cloud out.

A lifecycle node (rclpy.lifecycle), ROS glue only: every computation lives in a ROS-free module.
configure loads the bundle and the backend and warms it up; activate creates the subscriptions,
starts the workers and enables the publishers; deactivate stops them (no inference, no output)
and keeps the model; cleanup frees it. With `autostart` (the default) the executable configures
and activates itself; with `autostart: false` a lifecycle manager (Nav2's) drives it.

Threads while active: the executor runs the short subscription callbacks, which only hand the
newest rgb/aux pair to a one-slot mailbox. Two workers form a pipeline: the inference worker
takes the newest pair, decodes and encodes it and runs the model; the output worker turns the
logits into the subscribed outputs and publishes them, while the model already runs on the next
pair (the backends release the GIL). Each stage hands over through a one-slot mailbox, so a
slow stage drops frames (counted) instead of queueing them.

Long because: one lifecycle node is one class (the rclpy convention): five transitions, the
subscriptions, two workers, publishers, run-time parameters and diagnostics of one object. What
can live without ROS already does (serve/, params.py); the rest is glue that shares its state.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header, String

from ssma_ros.bundle import load_bundle
from ssma_ros.data.encodings import DEPTH_ENCODINGS, CameraIntrinsics, depth_to_metres
from ssma_ros.node.params import NodeParams, declare_parameters, updated
from ssma_ros.node.sync import create_sync
from ssma_ros.runtime import load_backend
from ssma_ros.runtime.base import BackendUnavailable
from ssma_ros.serve import cloud, outputs
from ssma_ros.serve.codec import make_converter
from ssma_ros.serve.decode import FrameDecoder
from ssma_ros.serve.gate import StampGate, Verdict
from ssma_ros.serve.health import (
    Assessment,
    AuxMonitor,
    Health,
    HealthRules,
    StageTimes,
    Throttle,
)
from ssma_ros.serve.latest import LatestSlot
from ssma_ros.serve.segmenter import Segmenter, default_bundle_path
from ssma_ros.serve.sync import stamp_ns

NAME = "ssma_segmentation"
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# REP-2003: a reliable publisher reaches reliable and best-effort subscribers alike. Depth 1:
# a subscriber that falls behind gets the newest frame, never a backlog.
RELIABLE_OUTPUT = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
)


NODE_PARAMETERS = frozenset(f.name for f in dataclasses.fields(NodeParams))


def qos_profile(name: str) -> QoSProfile:
    """Return the QoS of an `input_qos` / `output_qos` parameter value."""
    return qos_profile_sensor_data if name == "sensor_data" else RELIABLE_OUTPUT


@dataclass(frozen=True)
class Frame:
    """What the inference worker serves: an rgb message and its aux partner (None = RGB alone)."""

    rgb: Image
    aux: Image | None


@dataclass(frozen=True)
class Inferred:
    """What the output worker publishes from: one frame's decoded inputs and the model's logits."""

    header: Header  # of the rgb message
    stamp: int  # ns
    rgb: np.ndarray
    aux: np.ndarray | None  # metres for depth
    aux_encoding: str | None
    logits: np.ndarray
    wanted: dict[str, bool]
    wall: StageTimes  # inputs and inference so far; the output stage adds its own
    cpu: StageTimes


def _label_info_type():
    """vision_msgs/LabelInfo where installed (every Nav2 setup); None on a pip-only machine."""
    try:
        from vision_msgs.msg import LabelInfo, VisionClass
    except ImportError:
        return None
    return LabelInfo, VisionClass


class SegmentNode(LifecycleNode):
    """The segmentation node; nothing heavy happens before configure."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NAME, **kwargs)
        # Every attribute destroy_node touches exists before anything can fail.
        self.clock: Callable[[], float] = time.monotonic  # tests inject their own
        self.segmenter: Segmenter | None = None
        self.converter = None
        self.pubs: dict = {}  # per-frame outputs
        self._latched: dict = {}  # class names, label info
        self.diagnostics_pub = None
        self.sync = None
        self._inputs: list = []  # subscriptions while active
        self.slot: LatestSlot | None = None  # synchronised input -> inference worker
        self.inferred: LatestSlot | None = None  # inference worker -> output worker
        self.workers: list[threading.Thread] = []
        self._left_behind: list[threading.Thread] = []  # workers stuck past deactivation
        self._timer = None
        self.decoder: FrameDecoder | None = None
        self.rules: HealthRules | None = None  # made on activation, with the resolved topics
        self.failure: str | None = None  # why the last configure or activate failed
        self._autostarting = False  # main() says why a start failed: the transitions need not
        self.params: NodeParams = declare_parameters(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.health = Health()
        self.throttle = Throttle(self.params.warn_throttle)
        self.aux_monitor = AuxMonitor(self.params.aux_timeout, self.clock())
        self.gate = StampGate()  # stamps that jump (camera restart, bag loop, sim reset)
        self.geometry = cloud.CameraGeometry()  # the newest camera_info, rays cached per change
        self._topics: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str | None:
        """Configure and activate (what `autostart` does); None, or why it could not start."""
        for name, transition in (
            ("configure", self.trigger_configure),
            ("activate", self.trigger_activate),
        ):
            self._autostarting = True
            try:
                result = transition()
            finally:
                self._autostarting = False
            if result != TransitionCallbackReturn.SUCCESS:
                return self.failure or f"{name} failed"
        return None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load()
        except (ValueError, OSError, ImportError, BackendUnavailable) as exc:
            # A refusal (bad bundle or parameter, missing backend or converter): one clear line.
            self.failure = str(exc) or type(exc).__name__
            if not self._autostarting:
                self.get_logger().error(f"cannot configure: {self.failure}")
            self._unload()
            return TransitionCallbackReturn.FAILURE
        except Exception:  # a bug: keep its traceback
            self.failure = "internal error while configuring (traceback above)"
            self.get_logger().error(f"configure failed:\n{traceback.format_exc()}")
            self._unload()
            return TransitionCallbackReturn.FAILURE
        self.failure = None
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._publish_labels()
        try:
            self._start_serving()
        except (ValueError, ImportError) as exc:  # e.g. sync: message_filters, not installed
            self.failure = str(exc)
            if not self._autostarting:
                self.get_logger().error(f"cannot activate: {self.failure}")
            self._stop_serving()
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        inputs = ", ".join(self._topics.values())
        self.get_logger().info(f"ready: listening on {inputs}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        self.get_logger().info("inactive: not listening, model kept loaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        self._unload()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        self._unload()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured: configure may retry

    def destroy_node(self) -> None:
        """Safe in every state (also after a refused start)."""
        self._stop_serving()
        self._unload()
        super().destroy_node()

    def _load(self) -> None:
        """Configure: converter, bundle, backend (warmed up) and publishers."""
        self.converter = make_converter(self.params.image_codec)
        path = self.params.bundle or str(default_bundle_path())
        bundle = load_bundle(path)
        backend, _ = load_backend(
            bundle,
            self.params.backend,
            self.params.device,
            self.params.precision,
            logger=self.get_logger(),
            threads=self.params.cpu_threads,
            cache_dir=Path(self.params.engine_cache_dir) if self.params.engine_cache_dir else None,
        )
        try:
            self.segmenter = Segmenter(bundle, backend)
        except Exception:
            backend.close()
            raise
        self.decoder = FrameDecoder(
            self.segmenter.aux_modality,
            self.segmenter.aux_encodings,
            image_to_numpy=self.converter.image_to_numpy,
        )
        warm_up = self.segmenter.warm_up()
        aux = self.segmenter.aux_modality or "none (RGB-only model)"
        self.get_logger().info(
            f"serving {bundle.name} ({bundle.arch}, {bundle.num_classes} classes, input "
            f"{bundle.height}x{bundle.width}, aux: {aux}) with {backend.name} on "
            f"{backend.device} [{backend.precision}]; warmed up in {warm_up:.2f} s"
        )
        out_qos = qos_profile(self.params.output_qos)
        self.pubs = {
            "mask": self.create_lifecycle_publisher(Image, "~/mask", out_qos),
            "confidence": self.create_lifecycle_publisher(Image, "~/confidence", out_qos),
            "confidence_float": self.create_lifecycle_publisher(
                Image, "~/confidence_float", out_qos
            ),
            "overlay": self.create_lifecycle_publisher(Image, "~/overlay", out_qos),
            "cloud": self.create_lifecycle_publisher(PointCloud2, "~/cloud", out_qos),
        }
        self._latched = {
            "class_names": self.create_lifecycle_publisher(String, "~/class_names", LATCHED)
        }
        types = _label_info_type()
        if types is not None:
            self._latched["label_info"] = self.create_lifecycle_publisher(
                types[0], "~/label_info", LATCHED
            )
        self.diagnostics_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)

    def _unload(self) -> None:
        """Cleanup: publishers and the model (and its GPU memory)."""
        for pub in [*self.pubs.values(), *self._latched.values()]:
            self.destroy_lifecycle_publisher(pub)
        if self.diagnostics_pub is not None:
            self.destroy_lifecycle_publisher(self.diagnostics_pub)
        self.pubs, self._latched, self.diagnostics_pub = {}, {}, None
        if self.segmenter is not None:
            if any(worker.is_alive() for worker in self._left_behind):
                # Closing a backend a worker is still inside can crash the process (CUDA).
                self.get_logger().error("a worker is still in the model: backend left open")
            else:
                self.segmenter.close()
            self.segmenter = None
        self.converter = self.decoder = None

    def _start_serving(self) -> None:
        """Activate: fresh mailboxes, workers, subscriptions and the diagnostics timer."""
        # Stall clocks start now, with the model loaded: loading time is no silence.
        self.aux_monitor.restart(self.clock())
        self.geometry = cloud.CameraGeometry(self.resolve_topic_name("camera_info"))
        self.gate.reset()  # a new session may start anywhere in time
        self.slot, self.inferred = LatestSlot(), LatestSlot()
        self.workers = [
            threading.Thread(
                target=self._serve,
                args=(self.slot, self._infer, "inference_errors"),
                name="ssma_inference",
                daemon=True,
            ),
            threading.Thread(
                target=self._serve,
                args=(self.inferred, self._publish, "output_errors"),
                name="ssma_outputs",
                daemon=True,
            ),
        ]
        for worker in self.workers:
            worker.start()
        # Before the subscriptions: their callbacks report to the rules.
        paired = ("rgb", "aux") if self.segmenter.uses_aux else ("rgb",)
        self._topics = {name: self.resolve_topic_name(name) for name in (*paired, "camera_info")}
        self.rules = HealthRules(tuple(self._topics[n] for n in paired), self.clock())
        in_qos = qos_profile(self.params.input_qos)
        self._inputs = [
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, in_qos)
        ]
        if self.segmenter.uses_aux:
            self.sync = create_sync(
                self,
                [(Image, "rgb"), (Image, "aux")],
                self._on_pair,
                queue_size=self.params.queue_size,
                slop_s=self.params.slop,
                qos_profile=in_qos,
                prefer=self.params.sync,
                on_message=self._on_input,
            )
            # (message_filters' Subscriber holds its rclpy subscription in .sub)
            self._inputs += [getattr(sub, "sub", sub) for sub in self.sync.subscriptions]
            self.get_logger().info(
                f"pairing rgb and aux with {self.sync.backend} (slop {self.params.slop} s)"
            )
        else:
            self._inputs.append(
                self.create_subscription(Image, "rgb", lambda msg: self._on_input(0, msg), in_qos)
            )
        self._timer = self.create_timer(self.params.diagnostics_period, self._publish_diagnostics)

    def _stop_serving(self) -> None:
        """Deactivate: no more input, the workers finish their frame and end."""
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs, self.sync = [], None
        # In pipeline order, so nothing reaches the output stage after it has stopped.
        for slot, worker in zip((self.slot, self.inferred), self.workers):
            slot.close()
            worker.join(timeout=10.0)
            if worker.is_alive():
                self._warning(f"{worker.name} did not finish within 10 s; left behind")
                self._left_behind.append(worker)
        self.workers = []

    # -- run-time parameters ------------------------------------------------------------------

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        # Parameters that are not the node's own (use_sim_time, ...) are rclpy's business.
        ours = {p.name: p.value for p in parameters if p.name in NODE_PARAMETERS}
        try:
            params = updated(self.params, ours)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.params = params  # one reference swap: the workers see old or new, never a mix
        self.throttle.period = params.warn_throttle
        self.aux_monitor.timeout = params.aux_timeout
        if self.sync is not None:
            self.sync.set_slop(params.slop)
        return SetParametersResult(successful=True)

    # -- inputs (executor threads: keep short) ------------------------------------------------

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.geometry.update(msg)

    def _on_input(self, index: int, msg: Image) -> None:
        """Every rgb (index 0) and aux (index 1) message, before pairing: tracks both streams."""
        now = self.clock()
        self.rules.seen(index, now, stamp_ns(msg))
        if index == 1:
            event = self.aux_monitor.seen(now)
            if event is not None:
                self.get_logger().info(
                    f"aux stream is back after {event.silent_for:.1f} s: fused rgb+aux again"
                )
            return
        if self.sync is None:
            self._hand_over(Frame(msg, None), "pairs_in")
            return
        event = self.aux_monitor.check(now)
        if event is not None:
            self._warning(
                f"no aux message for {event.silent_for:.1f} s: "
                + (
                    "serving RGB alone until it returns"
                    if self.params.rgb_only_fallback
                    else "waiting for it"
                )
            )
        if self.params.rgb_only_fallback and self.aux_monitor.stalled:
            self._hand_over(Frame(msg, None), "rgb_only_in")

    def _on_pair(self, rgb: Image, aux: Image) -> None:
        self._hand_over(Frame(rgb, aux), "pairs_in")

    def _hand_over(self, frame: Frame, counter: str) -> None:
        self.health.count(counter)
        if self.slot.put(frame):
            self.health.count("dropped_stale")

    # -- the workers --------------------------------------------------------------------------

    def _serve(self, slot: LatestSlot, handle, failures: str) -> None:
        """Worker loop: handle the newest item of `slot` until the slot is closed."""
        while (item := slot.take()) is not None:
            try:
                handle(item)
            except Exception as exc:  # a model or output failure must not end the node
                self._bad(failures, f"frame skipped: {type(exc).__name__}: {exc}")

    def _wanted(self) -> dict[str, bool]:
        return {name: pub.get_subscription_count() > 0 for name, pub in self.pubs.items()}

    def _infer(self, frame: Frame) -> None:
        """Inference stage: decode, encode as in training, run the model, hand over the logits."""
        wanted = self._wanted()
        if not any(wanted.values()):
            return  # nobody listens: do no work
        admission = self.gate.admit(
            stamp_ns(frame.rgb), self.get_clock().now().nanoseconds, with_aux=frame.aux is not None
        )
        if admission.jump is not None:
            self.health.count("time_jumps")
            self._warning(admission.jump)
        if admission.verdict is Verdict.LATE_AUX:
            self.health.count("late_aux")  # its rgb was served alone already
            return
        if admission.verdict is Verdict.OUT_OF_ORDER:
            self._bad(
                "out_of_order",
                "dropping a frame not newer than the last one served (stamps out of order)",
            )
            return
        started, started_cpu = time.perf_counter(), time.thread_time()
        decoded = self.decoder.decode(frame.rgb, frame.aux)
        if decoded.problem is not None:
            self._bad(decoded.problem.counter, decoded.problem.message)
        if decoded.rgb is None:
            return
        rgb, aux, aux_encoding = decoded.rgb, decoded.aux, decoded.aux_encoding
        self.gate.served(admission, with_aux=aux is not None)
        camera = None
        if aux is not None and self.segmenter.needs_camera:
            camera = self._intrinsics(rgb.shape[1], rgb.shape[0])
            if camera is None:
                return  # counted and warned about by _intrinsics
        inputs = self.segmenter.inputs(rgb, aux, aux_encoding, camera)
        inference_start, inference_start_cpu = time.perf_counter(), time.thread_time()
        logits = self.segmenter.infer(inputs)
        wall = StageTimes(inference_start - started, time.perf_counter() - inference_start, 0.0)
        cpu = StageTimes(
            inference_start_cpu - started_cpu, time.thread_time() - inference_start_cpu, 0.0
        )
        done = Inferred(
            frame.rgb.header,
            admission.stamp,
            rgb,
            aux,
            aux_encoding,
            logits,
            wanted,
            wall,
            cpu,
        )
        if self.inferred.put(done):
            self.health.count("dropped_inferred")

    def _publish(self, frame: Inferred) -> None:
        """Output stage: mask, confidence, overlay and cloud at the input resolution.

        Only the outputs someone subscribes to are made.
        """
        started, started_cpu = time.perf_counter(), time.thread_time()
        wanted, header, rgb, params = frame.wanted, frame.header, frame.rgb, self.params
        seg = outputs.postprocess(frame.logits, rgb.shape[:2], upsampling=params.upsampling)
        mask = seg.mask
        if wanted["mask"]:
            self.pubs["mask"].publish(self.converter.numpy_to_image(mask, "mono8", header))
        if wanted["confidence"]:
            self.pubs["confidence"].publish(
                self.converter.numpy_to_image(seg.confidence_mono8(), "mono8", header)
            )
        if wanted["confidence_float"]:
            self.pubs["confidence_float"].publish(
                self.converter.numpy_to_image(seg.confidence(), "32FC1", header)
            )
        if wanted["overlay"]:
            bundle = self.segmenter.bundle
            image = outputs.overlay(
                rgb, mask, bundle.palette, params.overlay_alpha, bundle.void_indices
            )
            self.pubs["overlay"].publish(self.converter.numpy_to_image(image, "rgb8", header))
        if wanted["cloud"]:
            self._publish_cloud(header, frame.aux, frame.aux_encoding, mask, rgb)
        now_ros = self.get_clock().now().nanoseconds
        wall = dataclasses.replace(frame.wall, output=time.perf_counter() - started)
        cpu = dataclasses.replace(frame.cpu, output=time.thread_time() - started_cpu)
        self.health.frame_done(time.monotonic(), (now_ros - frame.stamp) / 1e9, wall, cpu)

    def _intrinsics(self, width: int, height: int) -> CameraIntrinsics | None:
        """Return the newest camera_info's K scaled to the image; None (counted) if unusable."""
        try:
            return self.geometry.intrinsics(width, height)
        except cloud.CameraInfoError as exc:
            self._bad_camera_info(exc, "the HHA-encoded model input")
            return None

    def _bad_camera_info(self, exc: cloud.CameraInfoError, needed_by: str) -> None:
        counter = "no_camera_info" if isinstance(exc, cloud.NoCameraInfo) else "bad_camera_info"
        self._bad(counter, f"{needed_by}: {exc}")

    def _publish_cloud(self, header, aux, aux_encoding, mask, rgb) -> None:
        if aux is None or aux_encoding not in DEPTH_ENCODINGS:
            return  # a cloud needs depth: none this frame (RGB-only service or an IR model)
        height, width = mask.shape
        try:
            rays = self.geometry.rays(width, height)  # distortion undone; cached per camera_info
        except cloud.CameraInfoError as exc:
            self._bad_camera_info(exc, "~/cloud")
            return
        # Full-resolution metres only here: the model input converts the pixels it samples.
        depth_m = depth_to_metres(aux, aux_encoding)
        self.pubs["cloud"].publish(cloud.semantic_cloud(header, depth_m, rays, mask, rgb))

    # -- outputs that are not per frame -------------------------------------------------------

    def _publish_labels(self) -> None:
        bundle = self.segmenter.bundle
        names = {
            "classes": list(bundle.classes),
            "palette": [list(c) for c in bundle.palette],
            "void": list(bundle.void_indices),
        }
        self._latched["class_names"].publish(String(data=json.dumps(names)))
        types = _label_info_type()
        if types is not None:
            label_info_type, vision_class_type = types
            msg = label_info_type()
            msg.class_map = [
                vision_class_type(class_id=i, class_name=n) for i, n in enumerate(bundle.classes)
            ]
            self._latched["label_info"].publish(msg)

    def assess(self, now: float) -> Assessment:
        """/diagnostics' level and message at `now` (the node's monotonic clock)."""
        return self.rules.assess(
            now,
            self.health.counts(),
            aux_stalled=self.sync is not None and self.aux_monitor.stalled,
            rgb_only_fallback=self.params.rgb_only_fallback,
        )

    def _publish_diagnostics(self) -> None:
        report = self.health.report(time.monotonic())
        backend = self.segmenter.backend if self.segmenter is not None else None
        assessment = self.assess(self.clock())
        status = DiagnosticStatus(
            name=f"{self.get_fully_qualified_name()}: segmentation",
            hardware_id=backend.device if backend else "",
            level=bytes([assessment.level]),
            message=assessment.message,
        )
        aux_state = "not used"
        if self.sync is not None:
            aux_state = "stalled (rgb only)" if self.aux_monitor.stalled else "ok"
        values = {
            "backend": backend.name if backend else "none",
            "device": backend.device if backend else "",
            "precision": backend.precision if backend else "",
            "aux": aux_state,
            **assessment.values,
            **{k: (f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in report.items()},
        }
        if self.sync is not None:
            stats = self.sync.stats()
            values["sync"] = self.sync.backend
            values["sync_matched"] = str(stats.matched)
            if stats.evicted is not None:
                values["sync_unmatched_dropped"] = str(sum(stats.evicted))
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)

    # -- logging ------------------------------------------------------------------------------

    def _bad(self, counter: str, message: str) -> None:
        """Count a bad input or failure; warn about it at most once per warn_throttle seconds."""
        self.health.count(counter)
        if self.throttle.ready(counter, time.monotonic()):
            self._warning(f"{message} [{counter}: {self.health.counts()[counter]} so far]")

    def _warning(self, message: str) -> None:
        logger = self.get_logger()
        (getattr(logger, "warning", None) or logger.warn)(message)  # Humble has only warn()


def main(args=None) -> None:
    """Run the executable.

    Refusals end in one "cannot start: ..." line and exit code 1; Ctrl-C (once or repeatedly)
    in a clean exit 0.
    """
    # OpenCV's own pool spins in sched_yield after every parallel call: 1-2 ms of CPU per 640x480
    # frame on 2 cores, taken from the backend and the other processes. The node's two workers
    # already overlap the stages, so OpenCV runs sequentially in each.
    cv2.setNumThreads(1)
    rclpy.init(args=args)
    node = None
    refusal = None
    # Made before the node, so a Ctrl-C right after "ready" finds it whole (rclpy.spin would build
    # one lazily, and an executor interrupted in its constructor fails in its destructor).
    executor = SingleThreadedExecutor()
    try:
        node = SegmentNode()
        executor.add_node(node)
        if node.params.autostart:
            refusal = node.start()
        if refusal is None:
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C: fall through to a clean shutdown
    except ValueError as exc:  # a parameter refused before configure
        refusal = str(exc)
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C while starting up invalidates the context under the constructor: a normal stop.
    finally:
        # A second Ctrl-C (a terminal and `ros2 launch` both send one) must not cut the cleanup.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        if refusal is not None and rclpy.ok():  # Ctrl-C during start-up fails it: no refusal
            rclpy.logging.get_logger(NAME).fatal(f"cannot start: {refusal}")
        else:
            refusal = None
        rclpy.try_shutdown()
    if refusal is not None:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
