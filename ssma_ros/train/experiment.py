"""The five-model experiment of the training module (docs/EXPERIMENT.md): RGB-only and aux-only
AdapNet++, early fusion, late fusion and SSMA, trained with one budget on the synthetic scenes,
then evaluated per condition on held-out scenes.

    python -m ssma_ros.train.experiment run      config/experiment/experiment.yaml
    python -m ssma_ros.train.experiment evaluate config/experiment/experiment.yaml
    python -m ssma_ros.train.experiment report   config/experiment/experiment.yaml --figures docs/figures

An experiment file names its runs (each an ordinary `ssma-train` recipe, run in order, so the
fusion runs find the experts' checkpoints) and its test set. `run` trains and records wall
times; `evaluate` scores every run's checkpoint on the test scenes under every condition (fused
models also with aux blanked) and keeps per-frame confusion matrices; `report` turns those into
a Markdown table, paired-bootstrap intervals of SSMA's margins, and figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ssma_ros.data import synthetic
from ssma_ros.train.config import ConfigError, TrainConfig, apply_override, from_dict
from ssma_ros.train.metrics import scores

RESULTS = "results.json"
CONFUSIONS = "confusions.npz"
TIMINGS = "timings.json"
TABLE = "table.md"
#: Config keys that may differ between the runs of one experiment; everything else must match
#: (same data, crops, augmentation, schedule shape, batch and seed), so only the model differs.
PER_RUN_KEYS = (
    "stage",
    "model",
    "init",
    "output_dir",
    "optim.iterations",
    "optim.encoder_lr_scale",
    "modality_dropout",
)
#: Data keys that an RGB-only model never sees, so one RGB expert serves experiments whose aux
#: sensors differ (its RGB frames are the same: the condition draw does not depend on aux).
AUX_ONLY_KEYS = ("data.aux", "data.cache", "data.eval_conditions")
#: Keys that hold paths under the experiment's output folder (moved by --output-dir).
PATH_KEYS = ("output_dir", "data.cache", "init.rgb", "init.aux", "init.checkpoint")


@dataclass(frozen=True)
class RunSpec:
    name: str
    label: str  # for tables and plots
    recipe: Path


@dataclass(frozen=True)
class TestSpec:
    """Held-out frames: scenes `0 .. samples-1` of `split`, each under every condition at `strength`."""

    split: str = "test"
    samples: int = 50
    conditions: tuple[str, ...] = synthetic.CONDITIONS
    strength: float = 1.0
    checkpoint: str = "best.pt"  # in each run's output_dir; best.pt is chosen on the val split
    batch_size: int = 8
    no_aux: bool = True  # fused models: also score them with aux blanked (a failed depth camera)
    bootstrap: int = 1000  # paired bootstrap resamples of the test scenes
    seed: int = 0  # of the bootstrap
    example: int = 0  # test scene shown in the qualitative figure


@dataclass(frozen=True)
class Experiment:
    path: Path
    output_dir: Path
    runs: tuple[RunSpec, ...]
    test: TestSpec = field(default_factory=TestSpec)
    reference: str = "ssma"  # the run whose margins over the others the report tests


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment file; recipe paths are relative to its folder."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"output_dir", "runs", "test", "reference"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    runs = tuple(
        RunSpec(r["name"], r.get("label", r["name"]), path.parent / r["recipe"])
        for r in data["runs"]
    )
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: run names must be unique, got {names}")
    test_data = dict(data.get("test") or {})
    if "conditions" in test_data:
        test_data["conditions"] = tuple(test_data["conditions"])
    try:
        test = TestSpec(**test_data)
    except TypeError as err:
        raise ConfigError(f"{path}: test: {err}") from err
    if set(test.conditions) - set(synthetic.CONDITIONS_V2) or test.samples <= 0:
        raise ConfigError(
            f"{path}: test.conditions must come from {synthetic.CONDITIONS_V2} and samples be > 0"
        )
    reference = data.get("reference", "ssma")
    if reference not in names:
        raise ConfigError(f"{path}: reference {reference!r} is not a run ({names})")
    return Experiment(path, Path(data.get("output_dir", "runs/experiment")), runs, test, reference)


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def run_configs(
    exp: Experiment, overrides: Sequence[str] = (), output_dir: str | Path | None = None
) -> dict[str, TrainConfig]:
    """Every run's TrainConfig: its recipe, with paths under the experiment's output folder moved
    to `output_dir` (if given), then `overrides` (applied to every run).
    """
    configs = {}
    for spec in exp.runs:
        raw = yaml.safe_load(spec.recipe.read_text()) or {}
        if output_dir is not None:
            for key in PATH_KEYS:
                value = _get(raw, key)
                if isinstance(value, str):
                    moved = _move(value, exp.output_dir, Path(output_dir))
                    if moved != value:
                        apply_override(raw, f"{key}={moved}")
        try:
            configs[spec.name] = from_dict(raw, overrides)
        except ConfigError as err:
            raise ConfigError(f"{spec.recipe}: {err}") from err
    check_fair(configs)
    return configs


def _move(path: str, old_root: Path, new_root: Path) -> str:
    try:
        return str(new_root / Path(path).relative_to(old_root))
    except ValueError:  # not under the experiment's folder: leave it
        return path


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _kind(flat: Mapping[str, Any]) -> str:
    rgb_only = flat.get("model.arch") == "adapnet" and list(flat.get("model.modalities")) == [
        "rgb"
    ]
    return "rgb_only" if rgb_only else "other"


def check_fair(configs: Mapping[str, TrainConfig]) -> None:
    """Raise ConfigError unless the runs differ only in PER_RUN_KEYS."""
    flat = {name: _flatten(cfg.to_dict()) for name, cfg in configs.items()}
    first = next(iter(flat))
    for name, values in flat.items():
        for key in sorted(set(values) | set(flat[first])):
            if key.startswith(PER_RUN_KEYS) or key in ("progress", "tensorboard"):
                continue
            if key.startswith(AUX_ONLY_KEYS) and "rgb_only" in (_kind(values), _kind(flat[first])):
                continue
            if values.get(key) != flat[first].get(key):
                raise ConfigError(
                    f"runs {first!r} and {name!r} differ in {key} "
                    f"({flat[first].get(key)!r} vs {values.get(key)!r}): an unfair comparison"
                )


def budgets(configs: Mapping[str, TrainConfig]) -> dict[str, dict[str, int]]:
    """Per run: its own iterations, the iterations along its longest chain of initialisations
    (an expert's stage-1 iterations count towards the fusion started from it), and the training
    samples all runs it depends on consumed.
    """
    by_output = {str(Path(cfg.output_dir)): name for name, cfg in configs.items()}
    out: dict[str, dict[str, int]] = {}

    def sources(cfg: TrainConfig) -> list[str]:
        paths = [p for p in (cfg.init.rgb, cfg.init.aux, cfg.init.checkpoint) if p is not None]
        return [by_output[str(Path(p).parent)] for p in paths if str(Path(p).parent) in by_output]

    def visit(name: str) -> dict[str, int]:
        if name not in out:
            cfg = configs[name]
            deps = [visit(s) for s in sources(cfg)]
            chain = cfg.optim.iterations + max((d["chain_iterations"] for d in deps), default=0)
            samples = cfg.optim.iterations * cfg.optim.batch_size + sum(d["samples"] for d in deps)
            out[name] = {
                "iterations": cfg.optim.iterations,
                "batch_size": cfg.optim.batch_size,
                "chain_iterations": chain,
                "samples": samples,
            }
        return out[name]

    for name in configs:
        visit(name)
    return out


# -- run ---------------------------------------------------------------------------------------


def run(
    exp: Experiment,
    configs: Mapping[str, TrainConfig],
    names: Sequence[str] | None = None,
    timings_dir: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Train the runs `names` (default all) in the experiment's order; returns and records
    (in TIMINGS, merged with earlier entries) each run's wall time.
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
        for path in (init.rgb, init.aux, init.checkpoint):
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
    import csv

    with (folder / "train.csv").open(newline="") as f:
        values = [float(row["seconds_per_iteration"]) for row in csv.DictReader(f)]
    return float(np.median(values)) if values else math.nan


def _threads() -> int:
    import torch

    return torch.get_num_threads()


# -- evaluate ----------------------------------------------------------------------------------


def test_frames(exp: Experiment, cfg: TrainConfig) -> dict[str, list[dict[str, Any]]]:
    """The held-out frames by condition, rendered once: the same scenes under every condition."""
    t, d = exp.test, cfg.data
    aux = "thermal" if d.aux == "infrared" else "depth"
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
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-frame (N, C, C) confusion matrices of `model` on `frames`, encoded with the model's own
    `preprocess` (as the node would), optionally with one modality blanked; and the prediction
    of frame `keep` (or None).
    """
    import torch
    from torch.utils.data import DataLoader

    from ssma_ros.train.data import FixedFrames, SegDataset
    from ssma_ros.train.metrics import confusion_matrix
    from ssma_ros.train.trainer import model_inputs

    dataset = SegDataset(FixedFrames(frames), preprocess, blank=blank)
    loader = DataLoader(dataset, batch_size=batch_size)
    matrices, kept = [], None
    with torch.no_grad():
        for batch in loader:
            pred = model(*model_inputs(model, batch, torch.device("cpu"))).argmax(dim=1)
            for p, label, index in zip(pred, batch["label"], batch["index"].tolist()):
                matrices.append(confusion_matrix(p, label, num_classes).numpy())
                if index == keep:
                    kept = p.numpy().astype(np.uint8)
    return np.stack(matrices), kept


def evaluate(
    exp: Experiment, configs: Mapping[str, TrainConfig], output_dir: str | Path | None = None
) -> dict[str, Any]:
    """Score every run's checkpoint on the test frames; write RESULTS and CONFUSIONS."""
    from ssma_ros.data.preprocess import Preprocess
    from ssma_ros.model.checkpoint import load_checkpoint

    out = Path(output_dir or exp.output_dir)
    t = exp.test
    first = configs[exp.runs[0].name]
    frames = test_frames(exp, first)
    arrays: dict[str, np.ndarray] = {}
    rows: dict[str, Any] = {}
    classes: list[str] = []
    for spec in exp.runs:
        cfg = configs[spec.name]
        path = Path(cfg.output_dir) / t.checkpoint
        model, meta = load_checkpoint(path)
        preprocess = Preprocess.from_dict(meta["preprocess"])
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
            for condition, items in frames.items():
                matrices, pred = score_frames(
                    model, items, preprocess, len(classes), t.batch_size, blank, keep=t.example
                )
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
    for (
        condition,
        items,
    ) in frames.items():  # the example scene's inputs, encoded as the models saw them
        e = items[t.example]
        arrays[f"input/{condition}/rgb"] = e["rgb"]
        arrays[f"input/{condition}/label"] = e["label"]
        arrays[f"input/{condition}/aux"] = preprocess.encode_aux(
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


# -- report ------------------------------------------------------------------------------------


def bootstrap_margins(
    confusions: Mapping[str, np.ndarray],
    reference: str,
    others: Sequence[str],
    conditions: Sequence[str],
    resamples: int,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap over test scenes of mIoU(reference) - mIoU(other), per condition and for
    the mean over conditions. The same resampled scenes serve every model and condition (the
    test scenes are shared), so scene difficulty cancels. Returns, per other model and per
    condition + "mean": the observed margin and the 2.5 / 97.5 percentiles.
    """
    n = len(confusions[f"{reference}/{conditions[0]}"])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    counts = np.stack([np.bincount(d, minlength=n) for d in draws])  # (R, n) weight of each scene

    def miou(key: str, weights: np.ndarray) -> np.ndarray:
        summed = np.einsum("rn,nij->rij", weights, confusions[key])
        return np.array([scores(m).miou for m in summed])

    ones = np.ones((1, n), dtype=np.int64)
    out: dict[str, dict[str, Any]] = {}
    for other in others:
        per: dict[str, Any] = {}
        boot_means, obs_means = [], []
        for c in conditions:
            obs = float(miou(f"{reference}/{c}", ones)[0] - miou(f"{other}/{c}", ones)[0])
            boot = miou(f"{reference}/{c}", counts) - miou(f"{other}/{c}", counts)
            per[c] = {
                "margin": obs,
                "low": float(np.percentile(boot, 2.5)),
                "high": float(np.percentile(boot, 97.5)),
            }
            boot_means.append(boot)
            obs_means.append(obs)
        mean_boot = np.mean(boot_means, axis=0)
        per["mean"] = {
            "margin": float(np.mean(obs_means)),
            "low": float(np.percentile(mean_boot, 2.5)),
            "high": float(np.percentile(mean_boot, 97.5)),
        }
        out[other] = per
    return out


def table(results: Mapping[str, Any], timings: Mapping[str, Any] | None = None) -> str:
    """Markdown table: one row per model (and blanked-aux variant), mIoU % per condition and mean."""
    conditions = results["test"]["conditions"]
    budget = results["budgets"]
    head = ["model", *conditions, "mean", "iterations (chain)", "train wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in results["rows"].items():
        cells = [f"{row['conditions'][c]['miou'] * 100:.1f}" for c in conditions]
        b = budget[row["run"]]
        wall = (timings or {}).get(row["run"], {}).get("wall_s")
        lines.append(
            "| "
            + " | ".join(
                [
                    row["label"],
                    *cells,
                    f"**{row['mean_miou'] * 100:.1f}**",
                    f"{b['iterations']} ({b['chain_iterations']})",
                    "" if row["blank"] or wall is None else f"{wall / 60:.1f} min",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def margins_table(
    margins: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, str],
    conditions: Sequence[str],
    reference_label: str,
) -> str:
    head = [f"{reference_label} minus", *conditions, "mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for other, per in margins.items():
        cells = [
            f"{per[c]['margin'] * 100:+.1f} [{per[c]['low'] * 100:+.1f}, {per[c]['high'] * 100:+.1f}]"
            for c in [*conditions, "mean"]
        ]
        lines.append("| " + " | ".join([labels[other], *cells]) + " |")
    return "\n".join(lines)


def report(
    exp: Experiment, output_dir: str | Path | None = None, figures: str | Path | None = None
) -> str:
    """Tables (printed, and written to TABLE) and, if `figures` is given, the PNG figures."""
    out = Path(output_dir or exp.output_dir)
    results = json.loads((out / RESULTS).read_text())
    timings = json.loads((out / TIMINGS).read_text()) if (out / TIMINGS).exists() else {}
    with np.load(out / CONFUSIONS) as data:
        arrays = {k: data[k] for k in data.files}
    conditions = results["test"]["conditions"]
    rows = results["rows"]
    labels = {k: r["label"] for k, r in rows.items()}
    ref = exp.reference
    others = [k for k, r in rows.items() if k != ref and r["blank"] is None]  # the four baselines
    margins = bootstrap_margins(arrays, ref, others, conditions, exp.test.bootstrap, exp.test.seed)
    text = "\n\n".join(
        [
            f"mIoU (%) on {results['test']['samples']} held-out scenes per condition "
            f"({results['test']['split']} split, strength {results['test']['strength']}, "
            f"{results['test']['size'][0]}x{results['test']['size'][1]}, checkpoint {results['test']['checkpoint']})",
            table(results, timings),
            f"Margins of {labels[ref]} in mIoU points, with 95% paired-bootstrap intervals over test scenes "
            f"({exp.test.bootstrap} resamples)",
            margins_table(margins, labels, conditions, labels[ref]),
        ]
    )
    (out / TABLE).write_text(text + "\n")
    (out / "margins.json").write_text(json.dumps(margins, indent=2))
    if figures is not None:
        plot_figures(results, arrays, Path(figures))
    return text


def plot_figures(
    results: Mapping[str, Any], arrays: Mapping[str, np.ndarray], folder: Path
) -> list[Path]:
    """experiment_miou.png (bars per condition), experiment_classes.png (per-class IoU, clear vs
    adverse), experiment_examples.png (one test scene under every condition, every model).
    """
    from matplotlib.figure import Figure

    from ssma_ros.train.plots import colorize

    folder.mkdir(parents=True, exist_ok=True)
    conditions = list(results["test"]["conditions"])
    rows = results["rows"]
    keys = list(rows)
    classes = results["classes"]
    palette = np.asarray(synthetic.PALETTE, np.uint8)
    paths = []

    fig = Figure(figsize=(11, 4.8))
    ax = fig.subplots()
    groups = [*conditions, "mean"]
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        values = [rows[key]["conditions"][c]["miou"] * 100 for c in conditions] + [
            rows[key]["mean_miou"] * 100
        ]
        hatch = "//" if rows[key]["blank"] else None
        ax.bar(
            np.arange(len(groups)) + (i - (len(keys) - 1) / 2) * width,
            values,
            width,
            label=rows[key]["label"],
            hatch=hatch,
            color=f"C{_colour_index(keys, key)}",
            alpha=0.55 if rows[key]["blank"] else 1.0,
            edgecolor="white" if hatch else None,
        )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("mIoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08)
    )  # below: bars reach the top
    ax.set_title(
        f"held-out scenes ({results['test']['samples']} per condition), lite models, same budget"
    )
    fig.tight_layout()
    paths.append(folder / "experiment_miou.png")
    fig.savefig(paths[-1], dpi=110)

    fig = Figure(figsize=(11, 0.5 * len(keys) + 2.2))
    axes = fig.subplots(1, 2, sharey=True)
    shown = [i for i, c in enumerate(classes) if c != "void"]
    adverse = [c for c in conditions if c != "clear"]
    for ax, group, name in (
        (axes[0], ["clear"], "clear"),
        (axes[1], adverse, "adverse (" + ", ".join(adverse) + ")"),
    ):
        grid = (
            np.array(
                [
                    [
                        scores(sum(arrays[f"{k}/{c}"].sum(axis=0) for c in group)).iou[i]
                        for i in shown
                    ]
                    for k in keys
                ]
            )
            * 100
        )
        im = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                ax.text(
                    c,
                    r,
                    f"{grid[r, c]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if grid[r, c] < 60 else "black",
                )
        ax.set_xticks(range(len(shown)), [classes[i] for i in shown], rotation=45, ha="right")
        ax.set_title(f"per-class IoU (%), {name}", fontsize=9)
    axes[0].set_yticks(range(len(keys)), [rows[k]["label"] for k in keys], fontsize=8)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    paths.append(folder / "experiment_classes.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")

    models = [k for k in keys if not rows[k]["blank"]]
    columns = ["rgb", "aux", "truth", *models]
    fig = Figure(figsize=(1.6 * len(columns), 1.25 * len(conditions) + 0.5))
    axes = fig.subplots(len(conditions), len(columns), squeeze=False)
    for r, c in enumerate(conditions):
        images = [
            arrays[f"input/{c}/rgb"],
            arrays[f"input/{c}/aux"],
            colorize(arrays[f"input/{c}/label"], palette),
            *[colorize(arrays[f"{k}/{c}/example"], palette) for k in models],
        ]
        for j, image in enumerate(images):
            axes[r, j].imshow(image)
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
            if r == 0:
                axes[r, j].set_title(
                    columns[j] if j < 3 else rows[columns[j]]["label"].split(" (")[0], fontsize=7
                )
        axes[r, 0].set_ylabel(c, fontsize=8)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.93, bottom=0.01, wspace=0.03, hspace=0.05)
    paths.append(folder / "experiment_examples.png")
    fig.savefig(paths[-1], dpi=100)
    return paths


def _colour_index(keys: Sequence[str], key: str) -> int:
    """A blanked-aux variant takes its model's colour."""
    runs = [k for k in keys if "_no_aux" not in k]
    return runs.index(key.removesuffix("_no_aux"))


# -- CLI ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ssma_ros.train.experiment", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=("run", "evaluate", "report", "all"))
    parser.add_argument(
        "experiment", help="experiment file, e.g. config/experiment/experiment.yaml"
    )
    parser.add_argument("--only", nargs="+", metavar="RUN", help="run: train only these runs")
    parser.add_argument(
        "--override",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a value in every run's config, e.g. -o optim.iterations=2",
    )
    parser.add_argument(
        "--output-dir", help="move every path under the experiment's output folder here"
    )
    parser.add_argument(
        "--figures", help="report: write the PNG figures to this folder (e.g. docs/figures)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (default 2; on a shared CPU also set OMP_WAIT_POLICY=PASSIVE)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        exp = load_experiment(args.experiment)
        configs = run_configs(exp, args.override, args.output_dir)
    except (ConfigError, OSError, KeyError) as err:
        print(f"experiment: {err}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    synthetic.tune_allocator()
    out = args.output_dir or exp.output_dir
    if args.command in ("run", "all"):
        try:
            run(exp, configs, args.only, out)
        except (ConfigError, FileNotFoundError) as err:
            print(f"experiment: {err}", file=sys.stderr)
            return 2
    if args.command in ("evaluate", "all"):
        evaluate(exp, configs, out)
    if args.command in ("report", "all"):
        print(report(exp, out, args.figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
