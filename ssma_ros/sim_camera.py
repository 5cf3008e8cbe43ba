"""A synthetic RGB-D camera as its own process, as a camera driver runs on a robot.

    python -m ssma_ros.sim_camera FRAMES.npz --rate 30 --duration 20 [--drop-depth]

Plays the frames of FRAMES.npz in a loop (``rgb`` N x H x W x 3 uint8, ``depth`` N x H x W
uint16 millimetres, ``camera`` N x 4 fx, fy, cx, cy) as rgb8 + 16UC1 + camera_info, each message
built once so a frame costs little more than the publish (as a driver written in C++ would).
It starts when segment_node subscribes, and for every frame sent prints one line,
``<stamp ns> <frame index> <phase>``, before publishing it: ssma-demo reads these to score and
time what comes back. With ``--drop-depth`` no depth is sent from 40 % to 70 % of the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

FRAME_ID = "camera_color_optical_frame"
PHASES = ("before drop", "depth dropped", "after drop")
DEPTH_DROPPED = 1  # index into PHASES
TOPICS = {
    "rgb": "camera/color/image_raw",
    "depth": "camera/aligned_depth_to_color/image_raw",
    "camera_info": "camera/color/camera_info",
}


def phase_at(fraction: float, drop_depth: bool) -> int:
    """Index into PHASES for a point of the run (0..1): the depth drop spans [0.4, 0.7)."""
    if not drop_depth or fraction < 0.4:
        return 0
    return DEPTH_DROPPED if fraction < 0.7 else 2


def save_frames(
    path: Path,
    rgb: list[np.ndarray],
    depth_m: list[np.ndarray],
    cameras: list[tuple[float, float, float, float]],
) -> None:
    """Write frames for this camera.

    Depth in metres (NaN/inf invalid) becomes 16UC1 millimetres.
    """
    depth_mm = [
        np.where(np.isfinite(d), np.round(d * 1000.0), 0).clip(0, 65535).astype(np.uint16)
        for d in depth_m
    ]
    np.savez(
        path,
        rgb=np.stack(rgb),
        depth=np.stack(depth_mm),
        camera=np.asarray(cameras, dtype=np.float64),
    )


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m ssma_ros.sim_camera", description=__doc__.splitlines()[0]
    )
    p.add_argument("frames", type=Path, help=".npz with rgb, depth (mm) and camera arrays")
    p.add_argument("--rate", type=float, default=10.0, help="frames per second")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of stream")
    p.add_argument(
        "--drop-depth", action="store_true", help="send no depth from 40 %% to 70 %% of the run"
    )
    p.add_argument("--namespace", default="/demo")
    p.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for a subscriber to rgb"
    )
    return p.parse_args(argv)


def run(args) -> int:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from ssma_ros.node.codec import numpy_to_image

    data = np.load(args.frames)
    rgb, depth, cameras = data["rgb"], data["depth"], data["camera"]
    height, width = rgb.shape[1:3]
    messages = [
        (numpy_to_image(rgb[i], "rgb8"), numpy_to_image(depth[i], "16UC1"))
        for i in range(len(rgb))
    ]

    rclpy.init()
    node = rclpy.create_node("ssma_sim_camera", namespace=args.namespace)
    try:
        pubs = {
            key: node.create_publisher(
                Image if key != "camera_info" else CameraInfo, topic, qos_profile_sensor_data
            )
            for key, topic in TOPICS.items()
        }
        deadline = time.monotonic() + args.wait
        while node.count_subscribers(pubs["rgb"].topic_name) == 0:
            if time.monotonic() > deadline:
                print(
                    f"sim_camera: nobody subscribed to {pubs['rgb'].topic_name} "
                    f"in {args.wait:g} s",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.05)
        period, total = 1.0 / args.rate, int(round(args.duration * args.rate))
        start = time.monotonic()
        for sent in range(total):
            index = sent % len(messages)
            phase = phase_at(sent / total, args.drop_depth)
            stamp = node.get_clock().now()
            rgb_msg, depth_msg = messages[index]
            rgb_msg.header.stamp = depth_msg.header.stamp = stamp.to_msg()
            rgb_msg.header.frame_id = depth_msg.header.frame_id = FRAME_ID
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
            if phase != DEPTH_DROPPED:
                pubs["depth"].publish(depth_msg)
            time.sleep(max(0.0, start + (sent + 1) * period - time.monotonic()))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
