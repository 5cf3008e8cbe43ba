"""The demo's other processes, segment_node and the camera: start, stop, CPU time; DDS setup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ssma_ros.demo.camera import AUX_STREAMS
from ssma_ros.demo.config import DemoConfig

NAMESPACE = "/demo"
NODE = f"{NAMESPACE}/ssma_segmentation"


def use_large_image_transport() -> str:
    """Point Fast DDS at config/fastdds_large_images.xml unless set; return the profile in use.

    For this process and the node it starts. With Fast DDS's default 512 KiB shared-memory
    segment, most 640x480 rgb8 frames are lost between processes under load.
    """
    names = (
        "FASTDDS_DEFAULT_PROFILES_FILE",
        "FASTRTPS_DEFAULT_PROFILES_FILE",
    )  # Fast DDS 3.x, 2.x
    from ssma_ros.share import share_file

    profile = str(share_file("config/fastdds_large_images.xml"))
    current = next((os.environ[n] for n in names if os.environ.get(n)), None)
    if current is not None:
        # ours when an earlier run in this process set it
        return current if current == profile else f"{current} (yours)"
    # Fast DDS 2.x (Humble, Jazzy) reads only the old name; 3.x (Kilted, pip wheels) warns on it.
    old_fast_dds = os.environ.get("ROS_DISTRO") in ("humble", "iron", "jazzy")
    os.environ[names[1] if old_fast_dds else names[0]] = profile
    return profile


def start_node(config: DemoConfig, bundle: Path, out: Path) -> subprocess.Popen:
    """Start segment_node (as `ros2 run` would) on `bundle` in the demo's namespace.

    Its aux input is the camera's `config.aux` stream; its log goes to out/.
    """
    aux_topic = AUX_STREAMS[config.aux][1]
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
        f"aux:={NAMESPACE}/{aux_topic}",
        "-r",
        f"camera_info:={NAMESPACE}/camera/color/camera_info",
        "-p",
        f"backend:={config.backend}",
        "-p",
        "aux_timeout:=0.5",
        "-p",
        "diagnostics_period:=0.5",
        "-p",
        f"cpu_threads:={config.cpu_threads}",
        "-p",
        f"bundle:={bundle.resolve()}",
    ]
    with open(out / "node.log", "w") as log:  # the node keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ)


def start_camera(config: DemoConfig, frames_file: Path) -> subprocess.Popen:
    """Start the camera process on `frames_file`; it prints a line per frame it sends."""
    cmd = [
        sys.executable,
        "-m",
        "ssma_ros.demo.camera_cli",
        str(frames_file),
        "--rate",
        str(config.rate),
        "--duration",
        str(config.duration),
        "--namespace",
        NAMESPACE,
    ] + (["--drop-aux"] if config.drop_aux else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process as Ctrl-C would, killing it if it takes over 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def process_cpu_seconds(pid: int) -> float | None:
    """Return the user + system CPU seconds of a process so far (Linux /proc); None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
