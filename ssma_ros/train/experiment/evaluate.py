"""Score every run's checkpoint on the held-out scenes under every condition."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ssma_ros.data import synthetic
from ssma_ros.train.config import TrainConfig
from ssma_ros.train.experiment.spec import CONFUSIONS, RESULTS, Experiment, budgets
from ssma_ros.train.metrics import scores


def test_frames(exp: Experiment, cfg: TrainConfig) -> dict[str, list[dict[str, Any]]]:
    """Render the held-out frames by condition once: the same scenes under every condition."""
    t, d = exp.test, cfg.data
    aux = synthetic.GENERATOR_AUX[d.aux]
    return {
        c: list(
            synthetic.SyntheticDataset(
                t.split,
                t.samples,
                d.size[0],
                d.size[1],
                d.scene_seed,
                aux,
                conditions=(c,),
                strength=t.strength,
                benchmark=d.benchmark,
            )
        )
        for c in t.conditions
    }


def score_frames(
    model: Any,
    frames: Sequence[dict[str, Any]],
    preprocess: Any,
    num_classes: int,
    batch_size: int,
    blank: str | None = None,
    keep: int | None = None,
    gates: dict[str, dict[str, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Score `model` on `frames`.

    Returns per-frame (N, C, C) confusion matrices of `model` on `frames`, encoded with the
    model's own `preprocess` (as the node would), optionally with one modality blanked; and the
    prediction of frame `keep` (or None). For an SSMA model, `gates` (if given) receives the mean
    gate of each fusion block over the RGB half and the aux half of its channels.
    """
    import torch
    from torch.utils.data import DataLoader

    from ssma_ros.model.base import OUT
    from ssma_ros.model.ssma import capture_gates
    from ssma_ros.train.data import FixedFrames, SegDataset
    from ssma_ros.train.metrics import confusion_matrix
    from ssma_ros.train.trainer import model_inputs

    dataset = SegDataset(FixedFrames(frames), preprocess, blank=blank)
    loader = DataLoader(dataset, batch_size=batch_size)
    matrices, kept = [], None
    sums: dict[str, np.ndarray] = {}
    capture = capture_gates(model) if gates is not None else nullcontext({})
    with torch.no_grad(), capture as captured:
        for batch in loader:
            pred = model(*model_inputs(model, batch, torch.device("cpu")))[OUT].argmax(dim=1)
            for name, gate in captured.items():  # (N, 2C, H, W): rgb channels first
                halves = gate.unflatten(1, (2, -1)).mean(dim=(2, 3, 4)).sum(dim=0)
                sums[name] = sums.get(name, 0) + halves.double().numpy()
            for p, label, index in zip(pred, batch["label"], batch["index"].tolist()):
                matrices.append(confusion_matrix(p, label, num_classes).numpy())
                if index == keep:
                    kept = p.numpy().astype(np.uint8)
    if gates is not None:
        for name, total in sums.items():
            gates[name] = {"rgb": total[0] / len(dataset), "aux": total[1] / len(dataset)}
    return np.stack(matrices), kept


def evaluate(
    exp: Experiment, configs: Mapping[str, TrainConfig], output_dir: str | Path | None = None
) -> dict[str, Any]:
    """Score every run's checkpoint on the test frames; write RESULTS and CONFUSIONS."""
    from ssma_ros.data.preprocess import Preprocess
    from ssma_ros.model.checkpoint import load_checkpoint

    out = exp.results_dir(output_dir)
    t = exp.test
    # The aux sensor of the experiment: that of its first run that sees aux (RGB frames do
    # not depend on it, so the RGB-only runs score on the same frames).
    with_aux = [r.name for r in exp.runs if list(configs[r.name].model.modalities) != ["rgb"]]
    first_name = (with_aux or [exp.runs[0].name])[0]
    first = configs[first_name]
    frames = test_frames(exp, first)
    # A run sees the frames of its own aux sensor: an RGB-only run's preprocess carries the aux
    # encoding of its own training data (its RGB frames are the same for either sensor).
    by_aux = {first.data.aux: frames}
    arrays: dict[str, np.ndarray] = {}
    rows: dict[str, Any] = {}
    classes: list[str] = []
    for spec in exp.runs:
        cfg = configs[spec.name]
        path = Path(cfg.output_dir) / t.checkpoint
        model, meta = load_checkpoint(path)
        preprocess = Preprocess.from_dict(meta["preprocess"])
        if spec.name == first_name:  # the example inputs are `frames`: encoded as it saw them
            example_preprocess = preprocess
        classes = list(meta["classes"])
        variants = [(spec.name, spec.label, None)]
        if t.no_aux and model.arch != "adapnet":
            variants.append((f"{spec.name}_no_aux", f"{spec.label}, aux blanked", "aux"))
        for key, label, blank in variants:
            row = {
                "label": label,
                "run": spec.name,
                "blank": blank,
                "checkpoint": str(path),
                "iteration": meta.get("iteration"),
                "conditions": {},
            }
            gated = model.arch == "ssma" and blank is None
            if gated:
                row["gates"] = {}
            if cfg.data.aux not in by_aux:
                by_aux[cfg.data.aux] = test_frames(exp, cfg)
            for condition, items in by_aux[cfg.data.aux].items():
                gates: dict[str, dict[str, float]] | None = {} if gated else None
                matrices, pred = score_frames(
                    model,
                    items,
                    preprocess,
                    len(classes),
                    t.batch_size,
                    blank,
                    keep=t.example,
                    gates=gates,
                )
                if gates is not None:
                    row["gates"][condition] = gates
                arrays[f"{key}/{condition}"] = matrices
                if pred is not None:
                    arrays[f"{key}/{condition}/example"] = pred
                m = scores(matrices.sum(axis=0))
                row["conditions"][condition] = {
                    "miou": m.miou,
                    "pixel_accuracy": m.pixel_accuracy,
                    "iou": m.iou,
                }
            row["mean_miou"] = float(np.mean([v["miou"] for v in row["conditions"].values()]))
            rows[key] = row
            print(
                f"experiment: {label}: "
                + ", ".join(f"{c} {v['miou'] * 100:.1f}" for c, v in row["conditions"].items())
                + f", mean {row['mean_miou'] * 100:.1f}",
                flush=True,
            )
    for condition, items in frames.items():  # the example scene's inputs, as the models saw them
        e = items[t.example]
        arrays[f"input/{condition}/rgb"] = e["rgb"]
        arrays[f"input/{condition}/label"] = e["label"]
        arrays[f"input/{condition}/aux"] = example_preprocess.encode_aux(
            e["aux"], e["aux_encoding"], e.get("camera"), rgb=e["rgb"]
        )
    results = {
        "experiment": str(exp.path),
        "classes": classes,
        "test": {
            "split": t.split,
            "samples": t.samples,
            "conditions": list(t.conditions),
            "strength": t.strength,
            "benchmark": first.data.benchmark,
            "scene_seed": first.data.scene_seed,
            "size": list(first.data.size),
            "checkpoint": t.checkpoint,
        },
        "budgets": budgets(configs),
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps(results, indent=2))
    np.savez_compressed(out / CONFUSIONS, **arrays)
    return results
