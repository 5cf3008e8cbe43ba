"""`ssma-train CONFIG.yaml [--override key=value ...] [--resume]`: train one stage.

Several GPUs or nodes: `torchrun --nproc_per_node=4 -m ssma_ros.train.cli CONFIG.yaml`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from ssma_ros.train.config import ConfigError, load_config


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ssma-train",
        description="Train one stage (expert, fusion, finetune) of an AdapNet++/SSMA model.",
    )
    parser.add_argument("config", help="YAML training config, e.g. config/train/smoke.yaml")
    parser.add_argument(
        "--override",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config value, e.g. -o optim.lr=5e-4 -o data.size=[48,64] (repeatable)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT_DIR/last.pt (model, optimizer, schedule, RNG, logs)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.override)
    except ConfigError as err:
        print(f"ssma-train: {args.config}: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0

    from ssma_ros.data.readers.folder import FolderDatasetError
    from ssma_ros.model.checkpoint import CheckpointError
    from ssma_ros.model.pretrained import PretrainedError
    from ssma_ros.train import dist
    from ssma_ros.train.trainer import (
        Trainer,  # torch and the model only once the config is known to be good
    )

    ctx = dist.setup(cfg.device)
    try:
        trainer = Trainer(cfg, resume=args.resume, ctx=ctx)
        results = trainer.run()
    except (CheckpointError, PretrainedError, FolderDatasetError) as err:
        # a bad checkpoint (init or --resume), weights file or dataset: the message names it
        print(f"ssma-train: {err}", file=sys.stderr)
        return 2
    finally:
        dist.teardown()
    if ctx.is_main:
        for name, m in results.items():
            miou = "n/a" if math.isnan(m.miou) else f"{m.miou * 100:.2f}%"
            print(f"{name}: mIoU {miou}, pixel accuracy {m.pixel_accuracy * 100:.2f}%")
        print(
            f"outputs in {cfg.output_dir} "
            "(last.pt, best.pt, train.csv, eval.csv, plots/, tensorboard/)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
