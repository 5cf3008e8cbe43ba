"""A synthetic RGB-D or RGB + thermal camera as its own process, as a driver runs on a robot.

    ssma-camera FRAMES.npz --rate 30 --duration 20 [--drop-aux]

Plays the frames of FRAMES.npz in a loop (``rgb`` N x H x W x 3 uint8, ``aux`` N x H x W uint16
with its ``aux_encoding``: 16UC1 depth in millimetres or mono16 thermal in centikelvin, ``camera``
N x 4 fx, fy, cx, cy) as rgb8 + the aux image on its topic (AUX_STREAMS) + camera_info, each
message built once so a frame costs little more than the publish (as a driver written in C++
would). It starts when segment_node subscribes, and for every frame sent prints one line,
``<stamp ns> <frame index> <phase>``, before publishing it: ssma-demo reads these to score and
time what comes back. With ``--drop-aux`` no aux image is sent from 40 % to 70 % of the run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

FRAME_ID = "camera_color_optical_frame"
AUX_DROPPED = 1  # index into phases(aux)
TOPICS = {"rgb": "camera/color/image_raw", "camera_info": "camera/color/camera_info"}
#: Per aux stream (ssma-demo --aux): its encoding and topic, as the camera's driver publishes it.
#: Both are pixel-aligned with RGB: the synthetic scene renders every sensor from one pinhole
#: camera (a real thermal camera needs registering to the colour camera first).
AUX_STREAMS = {
    "depth": ("16UC1", "camera/aligned_depth_to_color/image_raw"),  # millimetres
    "thermal": ("mono16", "camera/thermal/image_raw"),  # radiometric: centikelvin
}


def phases(aux: str) -> tuple[str, str, str]:
    """Name the phases of a run whose `aux` stream ("depth", "thermal") may be dropped."""
    return ("before drop", f"{aux} dropped", "after drop")


def phase_at(fraction: float, drop_aux: bool) -> int:
    """Index into phases() for a point of the run (0..1): the aux drop spans [0.4, 0.7)."""
    if not drop_aux or fraction < 0.4:
        return 0
    return AUX_DROPPED if fraction < 0.7 else 2


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """Depth in metres (NaN/inf invalid) as 16UC1 millimetres (0 invalid, saturating)."""
    return (
        np.where(np.isfinite(depth_m), np.round(depth_m * 1000.0), 0)
        .clip(0, 65535)
        .astype(np.uint16)
    )


def save_frames(
    path: Path,
    rgb: list[np.ndarray],
    aux: list[np.ndarray],
    aux_encoding: str,
    cameras: list[tuple[float, float, float, float]],
) -> None:
    """Write frames for this camera; `aux` already in `aux_encoding` (16UC1 or mono16)."""
    np.savez(
        path,
        rgb=np.stack(rgb),
        aux=np.stack(aux),
        aux_encoding=np.asarray(aux_encoding),
        camera=np.asarray(cameras, dtype=np.float64),
    )


def stream(
    frames: Path,
    rate: float,
    duration: float,
    *,
    drop_aux: bool = False,
    namespace: str = "/demo",
    wait: float = 120.0,
) -> int:
    """Publish the frames of `frames` once segment_node subscribes; the process exit status.

    Waits up to `wait` seconds for a subscriber to the RGB topic under `namespace`.
    """
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from ssma_ros.serve.codec import numpy_to_image

    data = np.load(frames)
    rgb, aux, cameras = data["rgb"], data["aux"], data["camera"]
    encoding = str(data["aux_encoding"])
    aux_topic = {enc: topic for enc, topic in AUX_STREAMS.values()}[encoding]
    height, width = rgb.shape[1:3]
    messages = [
        (numpy_to_image(rgb[i], "rgb8"), numpy_to_image(aux[i], encoding)) for i in range(len(rgb))
    ]

    rclpy.init()
    node = rclpy.create_node("ssma_sim_camera", namespace=namespace)
    try:
        pubs = {
            key: node.create_publisher(
                Image if key != "camera_info" else CameraInfo, topic, qos_profile_sensor_data
            )
            for key, topic in {**TOPICS, "aux": aux_topic}.items()
        }
        deadline = time.monotonic() + wait
        while node.count_subscribers(pubs["rgb"].topic_name) == 0:
            if time.monotonic() > deadline:
                print(
                    f"ssma-camera: nobody subscribed to {pubs['rgb'].topic_name} in {wait:g} s",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.05)
        period, total = 1.0 / rate, int(round(duration * rate))
        start = time.monotonic()
        for sent in range(total):
            index = sent % len(messages)
            phase = phase_at(sent / total, drop_aux)
            stamp = node.get_clock().now()
            rgb_msg, aux_msg = messages[index]
            rgb_msg.header.stamp = aux_msg.header.stamp = stamp.to_msg()
            rgb_msg.header.frame_id = aux_msg.header.frame_id = FRAME_ID
            fx, fy, cx, cy = cameras[index]
            info = CameraInfo(
                header=rgb_msg.header,
                width=int(width),
                height=int(height),
                k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
            )
            print(
                f"{stamp.nanoseconds} {index} {phase}", flush=True
            )  # before the node can answer it
            pubs["camera_info"].publish(info)
            pubs["rgb"].publish(rgb_msg)
            if phase != AUX_DROPPED:
                pubs["aux"].publish(aux_msg)
            time.sleep(max(0.0, start + (sent + 1) * period - time.monotonic()))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
