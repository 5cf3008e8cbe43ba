"""`ssma-dataset`: make training data from a robot's recordings.

ssma-dataset from-bag BAG --rgb TOPIC --aux TOPIC [--camera-info TOPIC] --out DIR
                      [--every N] [--slop S] [--queue-size Q]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssma_ros.recording.bag import DEFAULT_QUEUE, DEFAULT_SLOP


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ssma-dataset", description="Make training data from a robot's recordings."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    bag = commands.add_parser(
        "from-bag",
        help="rosbag2 (sqlite3 or MCAP) -> rgb/, aux/, index.csv, camera_info.yaml",
        description=(
            "Pair rgb and aux images of a rosbag2 as segment_node pairs them (its synchroniser, "
            "slop and queue size) and decode them with its codec; write rgb/*.png, aux/*.png "
            "(depth: 16-bit mm; infrared: raw), index.csv with the stamps, dataset.yaml and "
            "camera_info.yaml. Add labels/*.png and a classes YAML to train on it."
        ),
    )
    bag.add_argument("bag", help="rosbag2 folder, .db3 or .mcap file")
    bag.add_argument("--rgb", required=True, help="rgb topic (Image or CompressedImage)")
    bag.add_argument(
        "--aux", required=True, help="depth or infrared topic (Image or CompressedImage)"
    )
    bag.add_argument("--camera-info", help="CameraInfo topic: its first message is saved")
    bag.add_argument("--out", required=True, help="dataset folder to write")
    bag.add_argument("--every", type=int, default=1, help="keep every N-th pair (default 1)")
    bag.add_argument(
        "--slop",
        type=float,
        default=DEFAULT_SLOP,
        help=f"s: the most two stamps of a pair may differ (node default {DEFAULT_SLOP})",
    )
    bag.add_argument(
        "--queue-size",
        type=int,
        default=DEFAULT_QUEUE,
        help=f"synchroniser queue per input (node default {DEFAULT_QUEUE})",
    )
    bag.add_argument("--overwrite", action="store_true", help="write over an existing dataset")
    bag.add_argument("--no-progress", action="store_true", help="no progress bar")
    check = commands.add_parser(
        "check",
        help="read every label of a dataset folder and print its split",
        description=(
            "Check a dataset folder (rgb/, aux/, labels/, classes.yaml; see "
            "ssma_ros/data/readers/folder.py): every label's ids and size, and the train/val "
            "split training will use."
        ),
    )
    check.add_argument("root", help="dataset folder")
    check.add_argument("--classes", help="class-set file (default ROOT/classes.yaml)")
    check.add_argument("--val-fraction", type=float, default=0.2)
    check.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def check(args: argparse.Namespace) -> int:
    from ssma_ros.data.readers.folder import FolderDatasetError, FolderReader

    options = {"classes": args.classes, "val_fraction": args.val_fraction, "seed": args.seed}
    try:
        train, val = (FolderReader(args.root, split, **options) for split in ("train", "val"))
    except (FolderDatasetError, ValueError) as err:
        print(f"ssma-dataset: {err}", file=sys.stderr)
        return 1
    classes = train.class_set
    print(
        f"{args.root}: {len(train)} train + {len(val)} val labelled frames, aux "
        f"{train.aux_kind} ({train.aux_encoding}), {classes.num_classes} classes "
        f"({', '.join(classes.names)}; void {list(classes.void)})"
        + ("" if train.camera is None else ", camera_info.yaml")
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "check":
        return check(args)
    from ssma_ros.recording.bag import BagError, extract

    try:
        result = extract(
            args.bag,
            args.rgb,
            args.aux,
            args.out,
            camera_info_topic=args.camera_info,
            every=args.every,
            slop=args.slop,
            queue_size=args.queue_size,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except BagError as err:
        print(f"ssma-dataset: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
