"""Train an experiment's runs in order and record their wall times."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssma_ros.train.config import ConfigError, TrainConfig
from ssma_ros.train.experiment.spec import TIMINGS, Experiment


def run(
    exp: Experiment,
    configs: Mapping[str, TrainConfig],
    names: Sequence[str] | None = None,
    timings_dir: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Train the runs `names` (default all) in the experiment's order.

    Returns and records (in TIMINGS, merged with earlier entries) each run's wall time.
    """
    from ssma_ros.train.trainer import Trainer

    known = [r.name for r in exp.runs]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise ConfigError(f"no run named {unknown} in {exp.path}; its runs are {known}")
    names = [name for name in known if names is None or name in names]
    for i, name in enumerate(names):  # fail now, not after an hour of training
        init = configs[name].init
        earlier = {Path(configs[n].output_dir) for n in names[:i]}
        backbone = init.backbone if isinstance(init.backbone, dict) else {"": init.backbone}
        for path in (init.rgb, init.aux, init.checkpoint, *backbone.values()):
            if path is not None and Path(path).parent not in earlier and not Path(path).exists():
                raise FileNotFoundError(
                    f"run {name!r} starts from {path}, which does not exist; "
                    "train the run that writes it first"
                )
    out = Path(timings_dir or exp.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / TIMINGS
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for name in names:
        cfg = configs[name]
        load = os.getloadavg()[0]
        tick = time.perf_counter()
        trainer = Trainer(cfg)
        built = time.perf_counter() - tick
        trainer.run()
        wall = time.perf_counter() - tick
        record[name] = {
            "wall_s": round(wall, 1),
            "setup_s": round(built, 1),
            "iterations": cfg.optim.iterations,
            "batch_size": cfg.optim.batch_size,
            "train_s_per_iteration": round(_median_step(Path(cfg.output_dir)), 4),
            "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2),
            "torch_threads": _threads(),
            "cpus": os.cpu_count(),
        }
        record_path.write_text(json.dumps(record, indent=2))
        print(f"experiment: {name} took {wall:.0f} s", flush=True)
    return record


def _median_step(folder: Path) -> float:
    """Median seconds per training iteration (data + step) from a run's train.csv."""
    with (folder / "train.csv").open(newline="") as f:
        values = [float(row["seconds_per_iteration"]) for row in csv.DictReader(f)]
    return float(np.median(values)) if values else math.nan


def _threads() -> int:
    import torch

    return torch.get_num_threads()
