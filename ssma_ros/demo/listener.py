"""The demo's listener: starts segment_node and the camera, then times and scores every mask.

Three processes talk over DDS as on a robot: `segment_node` (the command `ros2 run` would start),
the camera (ssma_ros.demo.camera: rgb8 + 16UC1 depth or mono16 thermal + camera_info from the
synthetic scene generator, the version the bundle was trained on) and this one, the listener,
which scores each mask against the generator's labels and measures latency. Separate processes
keep the listener's Python work from delaying the camera (one interpreter lock each). A run ends
with a summary and a picture strip.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssma_ros.demo.camera import AUX_DROPPED, AUX_STREAMS, depth_to_mm, phases, save_frames
from ssma_ros.demo.config import DemoConfig, bundle_and_benchmark
from ssma_ros.demo.processes import (
    NAMESPACE,
    NODE,
    process_cpu_seconds,
    start_camera,
    start_node,
    stop,
    use_large_image_transport,
)
from ssma_ros.demo.report import aux_picture, save_strip
from ssma_ros.metrics import confusion_counts, scores

#: Points of the run (fractions) whose frames go into the picture: before, during (2x) and
#: after an aux drop.
KEEP_AT = (0.2, 0.5, 0.6, 0.85)
#: The node's diagnostics values the summary reports.
NODE_KEYS = (
    "backend",
    "device",
    "precision",
    "aux",
    "rgb_only_in",
    "pairs_in",
    "frames_out",
    "dropped_stale",
    *(
        f"{stage}{kind}_p50_ms"
        for kind in ("", "_cpu")
        for stage in ("input", "inference", "output", "process")
    ),
)


@dataclass
class Scored:
    """What the listener learnt from the node's outputs, per phase of the run."""

    num_classes: int
    latencies: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    kept: list[dict] = field(default_factory=list)  # a few frames for the picture

    def add(self, phase: str, mask: np.ndarray, label: np.ndarray) -> None:
        """Count one mask against its labels."""
        cm = confusion_counts(mask, label, self.num_classes)
        self.confusion[phase] = self.confusion.get(phase, 0) + cm
        self.frames[phase] = self.frames.get(phase, 0) + 1

    def miou(self) -> float:
        """Return the mIoU of all masks scored so far (NaN before the first)."""
        return scores(sum(self.confusion.values())).miou if self.confusion else float("nan")


@dataclass
class Streamed:
    """What the stream loop saw: frames sent, and the node's CPU time and counter around it."""

    sent: int = 0
    cpu_start: float | None = None
    cpu_end: float | None = None
    served: int = 0  # masks received by the time the camera ended
    rgb_only_before: int | None = None  # the node's rgb_only_in when the aux drop began


def _stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


class Listener:
    """The demo's third process; `run(config)` runs the demo once and returns its summary."""

    def run(self, config: DemoConfig) -> dict:
        """Start node and camera, listen while the camera streams, stop both; the summary."""
        self.config = config
        bundle, benchmark = bundle_and_benchmark(config)  # refused before anything starts
        config.out.mkdir(parents=True, exist_ok=True)
        dds_profile = use_large_image_transport()  # before any process here starts DDS
        node_proc = start_node(config, bundle, config.out)
        frames_file = config.out / "frames.npz"
        try:
            # The camera plays a loop of pre-rendered frames, so it keeps its rate whatever the
            # CPU does; they are rendered while the node loads its model.
            self._render(frames_file, benchmark)
            streamed = self._listen(node_proc, frames_file)
        finally:
            stop(node_proc)
            frames_file.unlink(missing_ok=True)
        summary = self._summary(dds_profile, streamed)
        if self.scored.kept:
            strip = config.out / "demo_strip.png"
            save_strip(list(self.scored.kept), strip, config.aux)
            summary["picture"] = str(strip)
        (config.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    # -- the run ---------------------------------------------------------------------------------

    def _render(self, frames_file: Path, benchmark: str) -> None:
        from ssma_ros.data.synthetic import CLASSES, SPLITS, SyntheticScenes

        config = self.config
        height, width = config.size
        scenes = SyntheticScenes(height, width, seed=config.seed, benchmark=benchmark)
        count = int(min(40, max(1, config.rate * config.duration)))
        first = SPLITS["test"]  # scenes no training run or checkpoint selection saw
        self.frames = [
            scenes.sample(first + i, config.condition, config.strength) for i in range(count)
        ]
        thermal = config.aux == "thermal"  # as a radiometric camera sends it: centikelvin
        save_frames(
            frames_file,
            [f.rgb for f in self.frames],
            [f.thermal if thermal else depth_to_mm(f.depth) for f in self.frames],
            AUX_STREAMS[config.aux][0],
            [(f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy) for f in self.frames],
        )
        self.phases = phases(config.aux)
        self.scored = Scored(len(CLASSES))
        # stamp -> (frame index, phase, seconds into the run), the last 200 frames sent
        self.truth: OrderedDict[int, tuple[int, str, float]] = OrderedDict()
        self.known = threading.Condition()  # guards truth; notified when a frame is reported
        self.lock = threading.Lock()  # guards scored, overlays and diagnostics
        self.overlays: dict[int, np.ndarray] = {}
        self.diagnostics: dict[str, str] = {}

    def _listen(self, node_proc: Any, frames_file: Path) -> Streamed:
        """Subscribe, start the camera once the node is up, follow the stream to its end."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        rclpy.init()
        node = rclpy.create_node("ssma_demo", namespace=NAMESPACE)
        self._subscribe(node)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        camera_proc = None
        try:
            self._wait_for_node(node, node_proc)
            camera_proc = start_camera(self.config, frames_file)
            streamed = self._follow(camera_proc, node_proc)
            time.sleep(1.0)  # let the last frames and a diagnostics message arrive
            return streamed
        finally:
            if camera_proc is not None:
                stop(camera_proc)
            executor.shutdown(timeout_sec=2)
            node.destroy_node()
            rclpy.try_shutdown()

    def _wait_for_node(self, node: Any, node_proc: Any) -> None:
        """Wait until the node publishes masks (it loads its model first)."""
        deadline = time.monotonic() + 120
        while node.count_publishers(f"{NODE}/mask") == 0:
            if node_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "segment_node did not start; its log:\n"
                    + (self.config.out / "node.log").read_text()
                )
            time.sleep(0.1)

    def _follow(self, camera_proc: Any, node_proc: Any) -> Streamed:
        """Record each frame the camera reports until it ends, with a progress bar."""
        from tqdm import tqdm

        config = self.config
        height, width = config.size
        print(
            f"ssma-demo: node up; streaming {len(self.frames)} distinct {config.condition} "
            f"frames at {config.rate:g} Hz ({width}x{height}) for {config.duration:g} s"
        )
        streamed, start = Streamed(), None
        total = int(round(config.duration * config.rate))
        with tqdm(total=total, unit="frame", desc="ssma-demo", mininterval=1.0) as bar:
            for line in camera_proc.stdout:  # one line per frame sent, until the camera ends
                stamp, index, phase_index = (int(v) for v in line.split())
                if start is None:
                    start, streamed.cpu_start = (
                        time.monotonic(),
                        process_cpu_seconds(node_proc.pid),
                    )
                streamed.sent += 1
                with self.known:
                    self.truth[stamp] = (index, self.phases[phase_index], time.monotonic() - start)
                    while len(self.truth) > 200:
                        self.truth.popitem(last=False)
                    self.known.notify_all()
                with self.lock:
                    if phase_index == AUX_DROPPED and streamed.rgb_only_before is None:
                        streamed.rgb_only_before = int(self.diagnostics.get("rgb_only_in", 0))
                    done, miou = len(self.scored.latencies), self.scored.miou()
                bar.set_postfix(masks=done, mIoU=f"{100 * miou:.1f}", refresh=False)
                bar.update(1)
        if camera_proc.wait() != 0:
            raise RuntimeError(f"the camera process failed (exit {camera_proc.returncode})")
        streamed.cpu_end = process_cpu_seconds(node_proc.pid)
        with self.lock:
            streamed.served = len(self.scored.latencies)
        return streamed

    # -- what the node publishes -----------------------------------------------------------------

    def _subscribe(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        def images(topic: str, callback: Any) -> None:
            node.create_subscription(Image, topic, callback, qos_profile_sensor_data)

        # Timing only (ssma-bench): the node makes what is subscribed, nothing here looks at it.
        score = self.config.score
        images("ssma_segmentation/mask", self._on_mask)
        if self.config.overlay:
            images("ssma_segmentation/overlay", self._on_overlay if score else self._ignore)
        images("ssma_segmentation/confidence", self._on_confidence if score else self._ignore)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _frame_of(self, msg: Any) -> tuple[int, tuple[int, str, float] | None]:
        """Return the stamp and what the camera sent under it (reported before it was sent)."""
        stamp = _stamp_ns(msg)
        with self.known:
            self.known.wait_for(lambda: stamp in self.truth, timeout=1.0)
            return stamp, self.truth.get(stamp)

    def _on_mask(self, msg: Any) -> None:
        from ssma_ros.serve.codec import image_to_numpy

        arrived = time.time()
        stamp, entry = self._frame_of(msg)
        if entry is None:
            return
        with self.lock:
            self.scored.latencies.append(arrived - stamp / 1e9)
            self.scored.arrivals.append(time.monotonic())
        if self.config.score:
            mask = image_to_numpy(msg)
            with self.lock:
                self.scored.add(entry[1], mask, self.frames[entry[0]].label)

    def _on_overlay(self, msg: Any) -> None:
        from ssma_ros.serve.codec import image_to_numpy

        image = image_to_numpy(msg)
        with self.lock:
            self.overlays[_stamp_ns(msg)] = image
            while len(self.overlays) > 8:
                self.overlays.pop(next(iter(self.overlays)))

    def _on_confidence(self, msg: Any) -> None:
        from ssma_ros.serve.codec import image_to_numpy

        stamp, entry = self._frame_of(msg)
        kept = self.scored.kept
        with self.lock:
            overlay = self.overlays.get(stamp)
            if entry is None or overlay is None or len(kept) == len(KEEP_AT):
                return
            index, phase, t = entry
            if t >= KEEP_AT[len(kept)] * self.config.duration:
                frame = self.frames[index]
                kept.append(
                    {
                        "RGB": frame.rgb,
                        "aux": aux_picture(frame, self.config.aux),
                        "overlay": overlay,
                        "confidence": image_to_numpy(msg),
                        "phase": phase,
                        "t": t,
                    }
                )

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.startswith(NODE):
                with self.lock:
                    self.diagnostics.update({kv.key: kv.value for kv in status.values})
                    self.diagnostics["message"] = status.message

    def _ignore(self, msg: Any) -> None:
        """Take a message and do nothing with it."""

    # -- the summary -----------------------------------------------------------------------------

    def _summary(self, dds_profile: str, streamed: Streamed) -> dict:
        config, scored = self.config, self.scored
        height, width = config.size
        with self.lock:
            lat = np.array(scored.latencies) * 1000.0
            arrivals = np.array(scored.arrivals)
            cpu = (streamed.cpu_start, streamed.cpu_end)
            summary = {
                "condition": f"{config.condition} (strength {config.strength:g})",
                "aux_stream": config.aux,
                "camera": f"{width}x{height} at {config.rate:g} Hz",
                "rate_hz": config.rate,
                "dds_profile": dds_profile,
                "frames_sent": streamed.sent,
                "masks_received": int(len(scored.latencies)),
                "output_rate_hz": (
                    float((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]))
                    if len(arrivals) > 1
                    else 0.0
                ),
                "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
                # All the node process's threads (workers, executor, DDS) while the camera ran.
                "node_cpu_ms_per_frame": (
                    1000.0 * (cpu[1] - cpu[0]) / streamed.served
                    if streamed.served and None not in cpu
                    else float("nan")
                ),
                "miou": 100 * scored.miou(),
                "miou_by_phase": {p: 100 * scores(cm).miou for p, cm in scored.confusion.items()},
                "frames_by_phase": dict(scored.frames),
                "node": {k: self.diagnostics.get(k) for k in NODE_KEYS},
            }
            if config.drop_aux:
                summary["rgb_only_frames_during_drop"] = int(
                    self.diagnostics.get("rgb_only_in", 0)
                ) - (streamed.rgb_only_before or 0)
        return summary
