"""Two-process DistributedDataParallel training and evaluation on CPU (gloo), started by torchrun.

Run as a script under torchrun, this file is the worker: it trains a tiny config and saves what
its rank saw. The test compares the ranks with each other and with a single-process evaluation
of the checkpoint rank 0 wrote.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2


def tiny_config(out: Path) -> dict:
    return {
        "stage": "fusion",
        "model": {"arch": "ssma", "config": "lite"},
        # 3 validation frames over 2 ranks: uneven shards, which padding samplers would double count.
        "data": {
            "size": [48, 64],
            "train_samples": 8,
            "val_samples": 3,
            "eval_conditions": ["clear"],
        },
        "optim": {"iterations": 2, "batch_size": 2},
        "eval": {"interval": 2, "batch_size": 2, "plots": False, "no_aux": False},
        "output_dir": str(out / "run"),
        "progress": False,
        "tensorboard": False,
        "log_interval": 1,
    }


def worker(out: Path) -> None:
    torch.set_num_threads(1)
    from ssma_ros.model import OUT
    from ssma_ros.train import dist
    from ssma_ros.train.config import from_dict
    from ssma_ros.train.metrics import ConfusionMeter
    from ssma_ros.train.trainer import Trainer

    ctx = dist.setup("cpu")
    try:
        trainer = Trainer(from_dict(tiny_config(out)), ctx=ctx)
        results = trainer.run()
        # The metrics code path of a rank that saw only its own shard, reduced over both ranks.
        own = ConfusionMeter(trainer.num_classes)
        shard = trainer._eval_loader(trainer.eval_sets["clear"])
        with torch.no_grad():
            for batch in shard:
                logits = trainer.model.eval()(batch["rgb"], batch["aux"])[OUT]
                own.update(logits, batch["label"])
        torch.save(
            {
                "confusion": torch.from_numpy(results["clear"].confusion),
                "miou": results["clear"].miou,
                "shard_pixels": int(own.matrix.sum()),
                "shard_size": len(shard.sampler),
                "state": trainer.model.state_dict(),
            },
            out / f"rank{ctx.rank}.pt",
        )
    finally:
        dist.teardown()


def test_two_process_ddp_matches_single_process_evaluation(tmp_path):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={WORLD}",
        __file__,
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    # Every rank reports the same, complete matrix (all-reduced), from its own shard.
    assert torch.equal(ranks[0]["confusion"], ranks[1]["confusion"])
    assert ranks[0]["miou"] == ranks[1]["miou"]
    assert sorted(r["shard_size"] for r in ranks) == [1, 2]
    assert sum(r["shard_pixels"] for r in ranks) == int(ranks[0]["confusion"].sum())
    # DDP kept the replicas identical.
    for key, tensor in ranks[0]["state"].items():
        assert torch.equal(tensor, ranks[1]["state"][key]), key

    # Only rank 0 wrote the run's files; its checkpoint, evaluated in one process on the same
    # data, gives the same confusion matrix.
    from ssma_ros.model.checkpoint import load_checkpoint
    from ssma_ros.train.config import from_dict
    from ssma_ros.train.data import build_datasets
    from ssma_ros.train.trainer import evaluate

    run = tmp_path / "run"
    rows = (run / "train.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header + one row per iteration, not one per rank
    model, meta = load_checkpoint(run / "last.pt")
    assert meta["resume"]["world_size"] == WORLD and len(meta["resume"]["rng"]) == WORLD
    np.testing.assert_array_equal(meta["confusion"]["clear"], ranks[0]["confusion"].numpy())
    _, eval_sets, info = build_datasets(from_dict(tiny_config(tmp_path)))
    loader = torch.utils.data.DataLoader(eval_sets["clear"], batch_size=3)
    single = evaluate(model, loader, len(info.classes), torch.device("cpu"))
    np.testing.assert_array_equal(single.confusion, ranks[0]["confusion"].numpy())
    assert single.miou == pytest.approx(ranks[0]["miou"], abs=0, nan_ok=True)
    print("2-rank DDP:", json.dumps({"miou": single.miou, "pixels": single.valid_pixels}))


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
