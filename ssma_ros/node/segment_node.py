"""segment_node: synchronised rgb + aux in; mask, confidence, overlay and semantic cloud out.

ROS glue only: every computation lives in a pure module (codec, sync, segmenter, outputs, cloud,
health). Threads: the executor runs the short subscription callbacks, which only hand the
newest rgb/aux pair to a one-slot mailbox. Two workers form a pipeline: the inference worker
takes the newest pair, decodes and encodes it and runs the model; the output worker turns the
logits into the subscribed outputs and publishes them, while the model already runs on the next
pair (the backends release the GIL). Each stage hands over through a one-slot mailbox, so a
slow stage drops frames (counted) instead of queueing them.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header, String

from ssma_ros.bundle import load_bundle
from ssma_ros.data.encodings import (
    DEPTH_ENCODINGS,
    CameraIntrinsics,
    depth_to_metres,
    has_valid_depth,
)
from ssma_ros.node import cloud, outputs
from ssma_ros.node.codec import ImageFormatError, make_converter, to_rgb8
from ssma_ros.node.health import AuxMonitor, Health, StageTimes, Throttle
from ssma_ros.node.latest import LatestSlot
from ssma_ros.node.params import NodeParams, declare_parameters
from ssma_ros.node.segmenter import Segmenter, default_bundle_path
from ssma_ros.node.sync import create_sync, stamp_ns
from ssma_ros.runtime import load_backend
from ssma_ros.runtime.base import BackendUnavailable

LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


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
    camera: CameraIntrinsics | None
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


class SegmentNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("ssma_segmentation", **kwargs)
        self.params: NodeParams = declare_parameters(self)
        self.health = Health()
        self.aux_monitor = AuxMonitor(self.params.aux_timeout, time.monotonic())
        self.throttle = Throttle(self.params.warn_throttle)
        self.converter = make_converter(self.params.image_codec)
        self._camera_info: CameraInfo | None = None  # the newest one
        self._last_stamp = -1
        self._last_served_alone = False  # was the frame of _last_stamp served without aux?
        self.segmenter: Segmenter | None = None
        self.slot = LatestSlot()  # synchronised input -> inference worker
        self.inferred = LatestSlot()  # inference worker -> output worker
        self.workers: list[threading.Thread] = []
        self.configure()

        out_qos = qos_profile_sensor_data if self.params.input_qos == "sensor_data" else 10
        self.pubs = {
            "mask": self.create_publisher(Image, "~/mask", out_qos),
            "confidence": self.create_publisher(Image, "~/confidence", out_qos),
            "confidence_float": self.create_publisher(Image, "~/confidence_float", out_qos),
            "overlay": self.create_publisher(Image, "~/overlay", out_qos),
            "cloud": self.create_publisher(PointCloud2, "~/cloud", out_qos),
        }
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._publish_labels()

        in_qos = qos_profile_sensor_data if self.params.input_qos == "sensor_data" else 10
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, in_qos)
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
            self.get_logger().info(
                f"pairing rgb and aux with {self.sync.backend} (slop {self.params.slop} s)"
            )
        else:
            self.sync = None
            self.create_subscription(Image, "rgb", lambda msg: self._on_input(0, msg), in_qos)

        self._running = True
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
        self.create_timer(self.params.diagnostics_period, self._publish_diagnostics)
        inputs = ", ".join(
            self.resolve_topic_name(t)
            for t in (("rgb", "aux", "camera_info") if self.sync else ("rgb", "camera_info"))
        )
        self.get_logger().info(f"ready: listening on {inputs}")

    # -- model lifecycle (configure/cleanup, so a lifecycle wrapper stays a thin layer) --------

    def configure(self) -> None:
        """Load the bundle and start its backend; logs what runs where and why."""
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
        self.segmenter = Segmenter(bundle, backend)
        warm_up = self.segmenter.warm_up()
        aux = self.segmenter.aux_modality or "none (RGB-only model)"
        self.get_logger().info(
            f"serving {bundle.name} ({bundle.arch}, {bundle.num_classes} classes, "
            f"input {bundle.height}x{bundle.width}, aux: {aux}) with {backend.name} on "
            f"{backend.device} [{backend.precision}]; warmed up in {warm_up:.2f} s"
        )

    def cleanup(self) -> None:
        """Free the model (and its GPU memory)."""
        if self.segmenter is not None:
            self.segmenter.close()
            self.segmenter = None

    def destroy_node(self) -> None:
        self._running = False
        self.slot.close()
        self.inferred.close()
        for worker in self.workers:
            worker.join(timeout=5.0)
        self.cleanup()
        super().destroy_node()

    # -- inputs (executor threads: keep short) ------------------------------------------------

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_input(self, index: int, msg: Image) -> None:
        """Every rgb (index 0) and aux (index 1) message, before pairing: tracks aux health."""
        now = time.monotonic()
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
        """Worker loop: handle the newest item of `slot` until the node stops."""
        while self._running:
            item = slot.take(timeout=0.5)
            if item is None:
                continue
            try:
                handle(item)
            except (
                Exception
            ) as exc:  # a model or output failure must not end the node; count and say it
                self._bad(failures, f"frame skipped: {type(exc).__name__}: {exc}")

    def _wanted(self) -> dict[str, bool]:
        return {name: pub.get_subscription_count() > 0 for name, pub in self.pubs.items()}

    def _infer(self, frame: Frame) -> None:
        """Inference stage: decode, encode as in training, run the model, hand over the logits."""
        wanted = self._wanted()
        if not any(wanted.values()):
            return  # nobody listens: do no work
        stamp = stamp_ns(frame.rgb)
        if stamp == self._last_stamp and self._last_served_alone and frame.aux is not None:
            # The first aux after a stall completes the pair of an rgb frame already served alone.
            self.health.count("late_aux")
            self._last_served_alone = False  # a second such pair is a camera fault (out of order)
            return
        if stamp <= self._last_stamp:
            self._bad(
                "out_of_order",
                "dropping a frame not newer than the last one served (stamps out of order)",
            )
            return
        started, started_cpu = time.perf_counter(), time.thread_time()
        decoded = self._decode(frame)
        if decoded is None:
            return
        rgb, aux, aux_encoding = decoded
        self._last_stamp, self._last_served_alone = stamp, aux is None
        camera = self._intrinsics(rgb.shape[1], rgb.shape[0])
        inputs = self.segmenter.inputs(rgb, aux, aux_encoding, camera)
        inference_start, inference_start_cpu = time.perf_counter(), time.thread_time()
        logits = self.segmenter.infer(inputs)
        wall = StageTimes(inference_start - started, time.perf_counter() - inference_start, 0.0)
        cpu = StageTimes(
            inference_start_cpu - started_cpu, time.thread_time() - inference_start_cpu, 0.0
        )
        done = Inferred(
            frame.rgb.header, stamp, rgb, aux, aux_encoding, camera, logits, wanted, wall, cpu
        )
        if self.inferred.put(done):
            self.health.count("dropped_inferred")

    def _publish(self, frame: Inferred) -> None:
        """Output stage: mask, confidence, overlay, cloud at input resolution, for subscribers."""
        started, started_cpu = time.perf_counter(), time.thread_time()
        wanted, header, rgb = frame.wanted, frame.header, frame.rgb
        seg = outputs.postprocess(frame.logits, rgb.shape[:2], upsampling=self.params.upsampling)
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
                rgb, mask, bundle.palette, self.params.overlay_alpha, bundle.void_indices
            )
            self.pubs["overlay"].publish(self.converter.numpy_to_image(image, "rgb8", header))
        if wanted["cloud"]:
            self._publish_cloud(header, frame.aux, frame.aux_encoding, frame.camera, mask, rgb)
        now_ros = self.get_clock().now().nanoseconds
        wall = dataclasses.replace(frame.wall, output=time.perf_counter() - started)
        cpu = dataclasses.replace(frame.cpu, output=time.thread_time() - started_cpu)
        self.health.frame_done(time.monotonic(), (now_ros - frame.stamp) / 1e9, wall, cpu)

    def _decode(self, frame: Frame) -> tuple[np.ndarray, np.ndarray | None, str | None] | None:
        """Messages -> (rgb uint8 HxWx3, raw aux or None, aux encoding); None if unusable."""
        try:
            rgb = to_rgb8(self.converter.image_to_numpy(frame.rgb), frame.rgb.encoding)
        except ImageFormatError as exc:
            self._bad("bad_image" if "encoding" not in str(exc) else "bad_encoding", f"rgb: {exc}")
            return None
        if frame.aux is None:
            return rgb, None, None
        encoding = frame.aux.encoding
        if encoding not in self.segmenter.aux_encodings:
            self._bad(
                "bad_encoding",
                f"aux encoding {encoding!r} cannot feed a {self.segmenter.aux_modality} "
                f"model; expected one of {list(self.segmenter.aux_encodings)}",
            )
            return None
        try:
            aux = self.converter.image_to_numpy(frame.aux)
        except ImageFormatError as exc:
            self._bad("bad_image", f"aux: {exc}")
            return None
        if aux.shape[:2] != rgb.shape[:2]:
            self._bad(
                "size_mismatch",
                f"rgb is {rgb.shape[1]}x{rgb.shape[0]} but aux is {aux.shape[1]}x"
                f"{aux.shape[0]}: publish aux registered to the rgb camera "
                "(e.g. aligned depth)",
            )
            return None
        if encoding in DEPTH_ENCODINGS and not has_valid_depth(aux, encoding):
            self._bad(
                "aux_all_invalid",
                "depth frame has no valid pixel: serving this frame from RGB alone",
            )
            return rgb, None, None
        return rgb, aux, encoding

    def _intrinsics(self, width: int, height: int) -> CameraIntrinsics | None:
        """The newest camera_info's K, scaled to the image size; None if there is none (usable)."""
        if self._camera_info is None:
            return None
        try:
            return cloud.intrinsics_from_camera_info(self._camera_info, width, height)
        except ValueError as exc:
            self._bad("bad_camera_info", f"ignoring camera_info: {exc}")
            return None

    def _publish_cloud(self, header, aux, aux_encoding, camera, mask, rgb) -> None:
        if aux is None or aux_encoding not in DEPTH_ENCODINGS:
            return  # a cloud needs depth: none this frame (RGB-only service or an IR model)
        if camera is None:
            self._bad("no_camera_info", "no camera_info received yet: ~/cloud needs it")
            return
        # Full-resolution metres only here: the model input converts the pixels it samples.
        depth_m = depth_to_metres(aux, aux_encoding)
        self.pubs["cloud"].publish(cloud.semantic_cloud(header, depth_m, camera, mask, rgb))

    # -- outputs that are not per frame -------------------------------------------------------

    def _publish_labels(self) -> None:
        bundle = self.segmenter.bundle
        names = {
            "classes": list(bundle.classes),
            "palette": [list(c) for c in bundle.palette],
            "void": list(bundle.void_indices),
        }
        self.class_names_pub = self.create_publisher(String, "~/class_names", LATCHED)
        self.class_names_pub.publish(String(data=json.dumps(names)))
        types = _label_info_type()
        if types is not None:
            label_info_type, vision_class_type = types
            self.label_info_pub = self.create_publisher(label_info_type, "~/label_info", LATCHED)
            msg = label_info_type()
            msg.class_map = [
                vision_class_type(class_id=i, class_name=n) for i, n in enumerate(bundle.classes)
            ]
            self.label_info_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        report = self.health.report(time.monotonic())
        backend = self.segmenter.backend if self.segmenter is not None else None
        aux_ok = self.sync is None or not self.aux_monitor.stalled
        status = DiagnosticStatus(
            name=f"{self.get_fully_qualified_name()}: segmentation",
            hardware_id=backend.device if backend else "",
        )
        problems = sum(
            report[k]
            for k in (
                "bad_encoding",
                "bad_image",
                "size_mismatch",
                "inference_errors",
                "output_errors",
            )
        )
        if not aux_ok:
            status.level, status.message = (
                DiagnosticStatus.WARN,
                "aux stream stalled: serving RGB only",
            )
        elif problems:
            status.level, status.message = (
                DiagnosticStatus.WARN,
                f"{problems} bad inputs or failures so far",
            )
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        values = {
            "backend": backend.name if backend else "none",
            "device": backend.device if backend else "",
            "precision": backend.precision if backend else "",
            "aux": "stalled (rgb only)" if not aux_ok else ("ok" if self.sync else "not used"),
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
        (getattr(logger, "warning", None) or logger.warn)(
            message
        )  # Humble's rclpy has only warn()


def main(args=None) -> None:
    # OpenCV's own pool spins in sched_yield after every parallel call: 1-2 ms of CPU per 640x480
    # frame on 2 cores, taken from the backend and the other processes. The node's two workers
    # already overlap the stages, so OpenCV runs sequentially in each.
    cv2.setNumThreads(1)
    rclpy.init(args=args)
    node = None
    # Made before the node, so a Ctrl-C right after "ready" finds it whole (rclpy.spin would build
    # one lazily, and an executor interrupted in its constructor fails in its destructor).
    executor = SingleThreadedExecutor()
    try:
        node = SegmentNode()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C: fall through to a clean shutdown
    except (
        OSError,
        ValueError,
        BackendUnavailable,
    ) as exc:  # no bundle, a bad bundle or parameter, no backend
        rclpy.logging.get_logger("ssma_segmentation").fatal(f"cannot start: {exc}")
        raise SystemExit(1) from None
    except Exception:
        if rclpy.ok():
            raise
        # Ctrl-C while starting up invalidates the context under the constructor: a normal stop.
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
