"""ssma-demo: the segmentation node live on a synthetic RGB-D camera, scored against ground truth.

Three processes talk over DDS as on a robot: `segment_node` (the command `ros2 run` would
start), the camera (`ssma_ros.sim_camera`: rgb8 + 16UC1 depth + camera_info from the synthetic
scene generator) and this one, the listener, which scores each mask against the generator's
labels and measures latency. Separate processes keep the listener's Python work from delaying
the camera (one interpreter lock each). It ends with a summary and a picture strip.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssma_ros.model.info import parse_size
from ssma_ros.sim_camera import DEPTH_DROPPED, PHASES, save_frames

NAMESPACE = "/demo"
NODE = f"{NAMESPACE}/ssma_segmentation"


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
        import torch

        from ssma_ros.train.metrics import confusion_matrix

        cm = confusion_matrix(
            torch.from_numpy(mask), torch.from_numpy(label), self.num_classes
        ).numpy()
        self.confusion[phase] = self.confusion.get(phase, 0) + cm
        self.frames[phase] = self.frames.get(phase, 0) + 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssma-demo", description=__doc__.splitlines()[0])
    p.add_argument(
        "--duration", type=float, default=20.0, help="seconds of camera stream (default 20)"
    )
    p.add_argument("--rate", type=float, default=10.0, help="camera frame rate in Hz (default 10)")
    p.add_argument("--condition", default="clear", help="clear | fog | night | glare | rain")
    p.add_argument("--strength", type=float, default=1.0, help="strength of the condition, 0..1")
    p.add_argument(
        "--size",
        type=parse_size,
        default="240x320",
        help="camera resolution HxW (default 240x320, the default model's own; try 480x640)",
    )
    p.add_argument("--backend", default="auto", help="auto | tensorrt | onnxruntime | torch")
    p.add_argument(
        "--cpu-threads",
        type=int,
        default=0,
        help="the node's cpu_threads parameter: CPU backend threads (0 = library default)",
    )
    p.add_argument(
        "--bundle", default="", help="model bundle folder (default: the shipped default model)"
    )
    p.add_argument(
        "--drop-depth",
        action="store_true",
        help="stop the depth stream from 40%% to 70%% of the run to show RGB-only fallback",
    )
    p.add_argument(
        "--no-overlay",
        action="store_true",
        help="listen to mask and confidence only, as a navigation stack does (no picture then)",
    )
    p.add_argument(
        "--no-score",
        action="store_true",
        help=(
            "only time the masks, do not score them (ssma-bench: no consumer work beside the node)"
        ),
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="scene seed; with 0 the frames are the test split the model card is scored on",
    )
    p.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="folder for the summary and picture"
    )
    return p.parse_args(argv)


def use_large_image_transport() -> str:
    """Point Fast DDS at config/fastdds_large_images.xml unless a profile is set already.

    This holds for this process and the node it starts; returns what is in effect. With Fast
    DDS's default 512 KiB shared-memory segment, most 640x480 rgb8 frames are lost between
    processes under load.
    """
    names = (
        "FASTDDS_DEFAULT_PROFILES_FILE",
        "FASTRTPS_DEFAULT_PROFILES_FILE",
    )  # Fast DDS 3.x, 2.x
    from ssma_ros.share import share_file

    profile = str(share_file("config/fastdds_large_images.xml"))
    current = next((os.environ[n] for n in names if os.environ.get(n)), None)
    if current is not None:
        return (
            current if current == profile else f"{current} (yours)"
        )  # ours: set by an earlier run
    # Fast DDS 2.x (Humble, Jazzy) reads only the old name; 3.x (Kilted, the pip wheels) warns
    # on it.
    old_fast_dds = os.environ.get("ROS_DISTRO") in ("humble", "iron", "jazzy")
    os.environ[names[1] if old_fast_dds else names[0]] = profile
    return profile


def start_node(args, out: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "ssma_ros.node.segment_node",
        "--ros-args",
        "-r",
        f"__ns:={NAMESPACE}",
        "-r",
        f"rgb:={NAMESPACE}/camera/color/image_raw",
        "-r",
        f"aux:={NAMESPACE}/camera/aligned_depth_to_color/image_raw",
        "-r",
        f"camera_info:={NAMESPACE}/camera/color/camera_info",
        "-p",
        f"backend:={args.backend}",
        "-p",
        "aux_timeout:=0.5",
        "-p",
        "diagnostics_period:=0.5",
        "-p",
        f"cpu_threads:={args.cpu_threads}",
    ]
    if args.bundle:
        cmd += ["-p", f"bundle:={Path(args.bundle).resolve()}"]
    log = open(out / "node.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ)


def depth_jet(depth: np.ndarray) -> np.ndarray:
    import matplotlib

    rgba = matplotlib.colormaps["turbo"](np.clip(np.nan_to_num(depth, nan=0.0) / 30.0, 0, 1))
    rgb = (rgba[..., :3] * 255).astype(np.uint8)
    rgb[~np.isfinite(depth)] = 0
    return rgb


def save_strip(kept: list[dict], classes, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ("RGB", "depth", "overlay", "confidence")
    fig, axes = plt.subplots(len(kept), 4, figsize=(13, 2.6 * len(kept)), squeeze=False)
    for row, frame in zip(axes, kept):
        for ax, name in zip(row, columns):
            image = frame[name]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(f"{frame['phase']}\nt={frame['t']:.1f} s", fontsize=9)
        if frame["phase"] == PHASES[DEPTH_DROPPED]:
            row[1].set_xlabel("(not sent: depth is off)", fontsize=8)
    for ax, name in zip(axes[0], columns):
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc); None where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_camera(args, frames_file: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "ssma_ros.sim_camera",
        str(frames_file),
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration),
        "--namespace",
        NAMESPACE,
    ] + (["--drop-depth"] if args.drop_depth else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(args) -> dict:
    import rclpy
    import torch
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from tqdm import tqdm

    from ssma_ros.data.synthetic import CLASSES, SPLITS, SyntheticScenes
    from ssma_ros.node.codec import image_to_numpy
    from ssma_ros.train.metrics import scores

    torch.set_num_threads(
        1
    )  # scoring one mask is small work: leave the cores to the camera and node
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    height, width = args.size
    dds_profile = use_large_image_transport()  # before any process here starts DDS
    node_proc = start_node(args, out)

    # The camera plays a loop of pre-rendered frames, so it keeps its rate whatever the CPU does;
    # they are rendered while the node loads its model.
    try:
        scenes = SyntheticScenes(height, width, seed=args.seed)
        n_frames = int(min(40, max(1, args.rate * args.duration)))
        first = SPLITS["test"]  # scenes no training run or checkpoint selection saw
        frames = [scenes.sample(first + i, args.condition, args.strength) for i in range(n_frames)]
        frames_file = out / "frames.npz"
        save_frames(
            frames_file,
            [f.rgb for f in frames],
            [f.depth for f in frames],
            [(f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy) for f in frames],
        )
    except BaseException:
        stop(node_proc)
        raise

    rclpy.init()
    node = rclpy.create_node("ssma_demo", namespace=NAMESPACE)
    truth: OrderedDict[int, tuple[int, str, float]] = (
        OrderedDict()
    )  # stamp -> (frame, phase, t); bounded
    known = threading.Condition()  # guards truth; notified when the camera reports a frame
    scored = Scored(len(CLASSES))
    overlays: dict[int, np.ndarray] = {}
    lock = threading.Lock()  # guards scored, overlays and diagnostics
    diagnostics: dict[str, str] = {}

    def frame_of(msg: Image) -> tuple[int, tuple[int, str, float] | None]:
        """The stamp and what the camera sent under it.

        The camera reports each frame before sending it.
        """
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        with known:
            known.wait_for(lambda: stamp in truth, timeout=1.0)
            return stamp, truth.get(stamp)

    def on_mask(msg: Image) -> None:
        arrived = time.time()
        stamp, entry = frame_of(msg)
        if entry is None:
            return
        with lock:
            scored.latencies.append(arrived - stamp / 1e9)
            scored.arrivals.append(time.monotonic())
        if not args.no_score:
            mask = image_to_numpy(msg)
            with lock:
                scored.add(entry[1], mask, frames[entry[0]].label)

    def on_overlay(msg: Image) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        image = image_to_numpy(msg)
        with lock:
            overlays[stamp] = image
            while len(overlays) > 8:
                overlays.pop(next(iter(overlays)))

    keep_at = (
        0.2,
        0.5,
        0.6,
        0.85,
    )  # fractions of the run: before, during (2x) and after a depth drop

    def on_confidence(msg: Image) -> None:
        stamp, entry = frame_of(msg)
        with lock:
            overlay = overlays.get(stamp)
            if entry is None or overlay is None or len(scored.kept) == len(keep_at):
                return
            index, phase, t = entry
            if t >= keep_at[len(scored.kept)] * args.duration:
                f = frames[index]
                scored.kept.append(
                    {
                        "RGB": f.rgb,
                        "depth": depth_jet(f.depth),
                        "overlay": overlay,
                        "confidence": image_to_numpy(msg),
                        "phase": phase,
                        "t": t,
                    }
                )

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(NODE):
                with lock:
                    diagnostics.update({kv.key: kv.value for kv in status.values})
                    diagnostics["message"] = status.message

    def ignore(msg: Image) -> None:
        """Timing only: the node makes what is subscribed; nothing here looks at it."""

    node.create_subscription(Image, "ssma_segmentation/mask", on_mask, qos_profile_sensor_data)
    if not args.no_overlay:
        node.create_subscription(
            Image,
            "ssma_segmentation/overlay",
            ignore if args.no_score else on_overlay,
            qos_profile_sensor_data,
        )
    node.create_subscription(
        Image,
        "ssma_segmentation/confidence",
        ignore if args.no_score else on_confidence,
        qos_profile_sensor_data,
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    camera_proc = None
    try:
        # The node starts by loading its model; its outputs exist once it has.
        deadline = time.monotonic() + 120
        while node.count_publishers(f"{NODE}/mask") == 0:
            if node_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "segment_node did not start; its log:\n" + (out / "node.log").read_text()
                )
            time.sleep(0.1)
        camera_proc = start_camera(args, frames_file)
        print(
            f"ssma-demo: node up; streaming {n_frames} distinct {args.condition} frames at "
            f"{args.rate:g} Hz ({width}x{height}) for {args.duration:g} s"
        )
        rgb_only_before = None
        start = cpu_start = None
        sent = 0
        with tqdm(
            total=int(round(args.duration * args.rate)),
            unit="frame",
            desc="ssma-demo",
            mininterval=1.0,
        ) as bar:
            for line in camera_proc.stdout:  # one line per frame sent, until the camera ends
                stamp, index, phase_index = (int(v) for v in line.split())
                if start is None:
                    start, cpu_start = time.monotonic(), process_cpu_seconds(node_proc.pid)
                sent += 1
                phase = PHASES[phase_index]
                with known:
                    truth[stamp] = (index, phase, time.monotonic() - start)
                    while len(truth) > 200:
                        truth.popitem(last=False)
                    known.notify_all()
                with lock:
                    if phase_index == DEPTH_DROPPED and rgb_only_before is None:
                        rgb_only_before = int(diagnostics.get("rgb_only_in", 0))
                    done = len(scored.latencies)
                    miou = (
                        scores(sum(scored.confusion.values())).miou
                        if scored.confusion
                        else float("nan")
                    )
                bar.set_postfix(masks=done, mIoU=f"{100 * miou:.1f}", refresh=False)
                bar.update(1)
        if camera_proc.wait() != 0:
            raise RuntimeError(f"the camera process failed (exit {camera_proc.returncode})")
        cpu_end = process_cpu_seconds(node_proc.pid)
        with lock:
            served = len(scored.latencies)
        time.sleep(1.0)  # let the last frames and a diagnostics message arrive
    finally:
        if camera_proc is not None:
            stop(camera_proc)
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        rclpy.try_shutdown()
        stop(node_proc)
        frames_file.unlink(missing_ok=True)

    with lock:
        total = sum(scored.confusion.values()) if scored.confusion else np.zeros((1, 1))
        lat = np.array(scored.latencies) * 1000.0
        arrivals = np.array(scored.arrivals)
        summary = {
            "condition": f"{args.condition} (strength {args.strength:g})",
            "camera": f"{width}x{height} at {args.rate:g} Hz",
            "rate_hz": args.rate,
            "dds_profile": dds_profile,
            "frames_sent": sent,
            "masks_received": int(len(scored.latencies)),
            "output_rate_hz": float((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]))
            if len(arrivals) > 1
            else 0.0,
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            # All the node process's threads (workers, executor, DDS) while the camera streamed.
            "node_cpu_ms_per_frame": (
                1000.0 * (cpu_end - cpu_start) / served
                if served and None not in (cpu_start, cpu_end)
                else float("nan")
            ),
            "miou": 100 * scores(total).miou if scored.confusion else float("nan"),
            "miou_by_phase": {p: 100 * scores(cm).miou for p, cm in scored.confusion.items()},
            "frames_by_phase": dict(scored.frames),
            "node": {
                k: diagnostics.get(k)
                for k in (
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
            },
        }
        if args.drop_depth:
            summary["rgb_only_frames_during_drop"] = int(diagnostics.get("rgb_only_in", 0)) - (
                rgb_only_before or 0
            )
        kept = list(scored.kept)
    strip = out / "demo_strip.png"
    if kept:
        save_strip(kept, CLASSES, strip)
        summary["picture"] = str(strip)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_summary(s: dict) -> None:
    node = s["node"]
    print("\n==== ssma-demo summary ====")
    print(f"camera        {s['camera']}, condition {s['condition']}")
    print(f"backend       {node['backend']} on {node['device']} [{node['precision']}]")
    print(
        f"frames        {s['frames_sent']} sent, {s['masks_received']} masks received "
        f"({s['output_rate_hz']:.1f} Hz out); node dropped {node['dropped_stale']} stale pairs"
    )
    print(
        f"latency       stamp-to-mask p50 {s['latency_p50_ms']:.0f} ms, "
        f"p95 {s['latency_p95_ms']:.0f} ms "
        f"(node p50: inputs {node['input_p50_ms']} ms, inference {node['inference_p50_ms']} ms, "
        f"outputs {node['output_p50_ms']} ms)"
    )
    print(
        f"node CPU      {s['node_cpu_ms_per_frame']:.1f} ms per frame served, all its threads "
        "(workers p50: "
        f"inputs {node['input_cpu_p50_ms']} ms, inference {node['inference_cpu_p50_ms']} ms, "
        f"outputs {node['output_cpu_p50_ms']} ms)"
    )
    if s["frames_by_phase"]:
        print(f"mIoU          {s['miou']:.1f} % against the generator's ground truth")
    if len(s["miou_by_phase"]) > 1 or "rgb_only_frames_during_drop" in s:
        for phase in PHASES:
            if phase in s["miou_by_phase"]:
                print(
                    f"  {phase:14s} mIoU {s['miou_by_phase'][phase]:.1f} % "
                    f"over {s['frames_by_phase'][phase]} frames"
                )
        print(
            f"fallback      {s.get('rgb_only_frames_during_drop', 0)} frames served from RGB "
            f"alone while depth was off; aux state at the end: {node['aux']}"
        )
    if "picture" in s:
        print(f"picture       {s['picture']}")
    print(
        f"details       {Path(s.get('picture', 'demo_out/x')).parent / 'summary.json'}, "
        "node log beside it"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    try:
        summary = run(args)
    except RuntimeError as exc:
        print(f"ssma-demo: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0 if summary["masks_received"] else 1


if __name__ == "__main__":
    sys.exit(main())
