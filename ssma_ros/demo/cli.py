"""`ssma-demo`: segment_node live on a synthetic RGB-D or RGB-T camera, scored against truth."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ssma_ros.argtypes import parse_size
from ssma_ros.demo.config import AUX_BUNDLES, DemoConfig
from ssma_ros.demo.listener import Listener
from ssma_ros.demo.report import print_summary


def parse_args(argv: Sequence[str] | None = None) -> DemoConfig:
    """Read the command line into a DemoConfig."""
    p = argparse.ArgumentParser(prog="ssma-demo", description=__doc__.splitlines()[0])
    p.add_argument(
        "--duration", type=float, default=20.0, help="seconds of camera stream (default 20)"
    )
    p.add_argument("--rate", type=float, default=10.0, help="camera frame rate in Hz (default 10)")
    p.add_argument(
        "--condition",
        default="clear",
        help="clear | fog | night | glare | rain; a bundle trained on benchmark v2 also takes "
        "sunlight | range | specular | crossover | night_rain | dusk_sun",
    )
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
        "--aux",
        choices=list(AUX_BUNDLES),
        default="depth",
        help="the camera's second stream: depth (16UC1 mm) or thermal (mono16 centikelvin on "
        "camera/thermal/image_raw); default depth",
    )
    p.add_argument(
        "--bundle",
        default="",
        help="model bundle folder (default: the shipped model for --aux: models/default for "
        "depth, models/rgbt for thermal)",
    )
    p.add_argument(
        "--drop-aux",
        "--drop-depth",
        dest="drop_aux",
        action="store_true",
        help="stop the aux stream from 40%% to 70%% of the run to show RGB-only fallback",
    )
    p.add_argument(
        "--no-overlay",
        action="store_true",
        help="listen to mask and confidence only, as a navigation stack does (no picture then)",
    )
    p.add_argument(
        "--no-score",
        action="store_true",
        help="only time the masks, do not score them (no consumer work beside the node)",
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
    args = p.parse_args(argv)
    return DemoConfig(
        duration=args.duration,
        rate=args.rate,
        condition=args.condition,
        strength=args.strength,
        size=args.size,
        backend=args.backend,
        cpu_threads=args.cpu_threads,
        bundle=args.bundle,
        aux=args.aux,
        drop_aux=args.drop_aux,
        overlay=not args.no_overlay,
        score=not args.no_score,
        seed=args.seed,
        out=args.out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ssma-demo; 0 when masks came back."""
    config = parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    try:
        summary = Listener().run(config)
    except RuntimeError as exc:
        print(f"ssma-demo: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0 if summary["masks_received"] else 1


if __name__ == "__main__":
    sys.exit(main())
