"""Tables, paired-bootstrap margins and the results file of an evaluated experiment."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssma_ros.train.experiment.figures import plot_figures
from ssma_ros.train.experiment.spec import CONFUSIONS, RESULTS, TABLE, TIMINGS, Experiment
from ssma_ros.train.metrics import scores


def bootstrap_margins(
    confusions: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    reference: str,
    others: Sequence[str],
    conditions: Sequence[str],
    resamples: int,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Paired bootstrap over test scenes of mIoU(reference) - mIoU(other).

    Per condition and for the mean over conditions. The same resampled scenes serve every model
    and condition (the test scenes are shared), so scene difficulty cancels. Given the
    confusions of several training seeds (a sequence), the margin is the mean over seeds and the
    bootstrap has two levels: seeds resampled, then scenes, so the interval also covers the
    spread between training runs. Returns, per other model and per condition + "mean": the
    observed margin and the 2.5 / 97.5 percentiles.
    """
    per_seed = [confusions] if isinstance(confusions, Mapping) else list(confusions)
    n = len(per_seed[0][f"{reference}/{conditions[0]}"])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    counts = np.stack([np.bincount(d, minlength=n) for d in draws])  # (R, n) weight of each scene
    # (R, S) seeds drawn per resample; one seed: always itself (the plain scene bootstrap)
    seeds = rng.integers(0, len(per_seed), size=(resamples, len(per_seed)))
    if len(per_seed) == 1:
        seeds[:] = 0

    def miou(arrays: Mapping[str, np.ndarray], key: str, weights: np.ndarray) -> np.ndarray:
        summed = np.einsum("rn,nij->rij", weights, arrays[key])
        return np.array([scores(m).miou for m in summed])

    ones = np.ones((1, n), dtype=np.int64)
    out: dict[str, dict[str, Any]] = {}
    for other in others:
        per: dict[str, Any] = {}
        boot_means, obs_means = [], []
        for c in conditions:
            ref, oth = f"{reference}/{c}", f"{other}/{c}"
            obs = np.mean([miou(a, ref, ones)[0] - miou(a, oth, ones)[0] for a in per_seed])
            by_seed = np.stack([miou(a, ref, counts) - miou(a, oth, counts) for a in per_seed])
            boot = np.take_along_axis(by_seed.T, seeds, axis=1).mean(axis=1)  # (R,)
            per[c] = {
                "margin": float(obs),
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
    """Markdown table: a row per model (and blanked-aux variant), mIoU % per condition, mean."""
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
            f"{per[c]['margin'] * 100:+.1f} "
            f"[{per[c]['low'] * 100:+.1f}, {per[c]['high'] * 100:+.1f}]"
            for c in [*conditions, "mean"]
        ]
        lines.append("| " + " | ".join([labels[other], *cells]) + " |")
    return "\n".join(lines)


#: How the budget is counted (the results file's recipe states it).
BUDGET_RULE = (
    "every fused model's final weights have been through the same number of optimiser steps "
    "(batch 8) along its chain: late fusion and SSMA through the experts' stage 1 plus their "
    "fused stages (stage 2, and stage 3 where run, which then halves stage 2); early fusion has "
    "no expert and gets the whole chain from scratch; the unimodal experts get stage 1 only"
)


def result_key(exp: Experiment, key: str) -> str:
    """Name of a row in the results file: the run key with the experiment's suffix."""
    base, blanked = (key[: -len("_no_aux")], "_no_aux") if key.endswith("_no_aux") else (key, "")
    if exp.suffix and not base.endswith(exp.suffix):
        base += exp.suffix
    return base + blanked


def write_results(
    path: Path,
    exp: Experiment,
    results: Mapping[str, Any],
    margins: Mapping[str, Mapping[str, Any]],
    timings: Mapping[str, Any],
    commands: Sequence[str],
) -> dict[str, Any]:
    """Merge this experiment's numbers into the results file `path`.

    Schema: {"models": {name: {condition: miou %}}, "margins": {"ssma<suffix>_minus_<name>":
    {condition: [margin, low, high]}} (points, 95 % paired bootstrap), "recipe": {...},
    "commands": [...]}; "mean" is the mean over the experiment's conditions.
    """
    data = json.loads(path.read_text()) if path.exists() else {}
    models = data.setdefault("models", {})
    all_margins = data.setdefault("margins", {})
    recipe = data.setdefault("recipe", {"budget_rule": BUDGET_RULE, "experiments": {}})
    known_commands = data.setdefault("commands", [])
    for key, row in results["rows"].items():
        entry = {c: round(v["miou"] * 100, 2) for c, v in row["conditions"].items()}
        entry["mean"] = round(row["mean_miou"] * 100, 2)
        models[result_key(exp, key)] = entry
    ref = f"ssma{exp.suffix}"
    for other, per in margins.items():
        all_margins[f"{ref}_minus_{result_key(exp, other)}"] = {
            c: [round(v["margin"] * 100, 2), round(v["low"] * 100, 2), round(v["high"] * 100, 2)]
            for c, v in per.items()
        }
    recipe["experiments"][str(exp.path)] = {
        "reference": result_key(exp, exp.reference),
        "test": results["test"],
        "bootstrap": {"resamples": exp.test.bootstrap, "seed": exp.test.seed},
        "runs": {
            result_key(exp, name): {
                **budget,
                "wall_s": timings.get(name, {}).get("wall_s"),
                "s_per_iteration": timings.get(name, {}).get("train_s_per_iteration"),
            }
            for name, budget in results["budgets"].items()
        },
    }
    known_commands.extend(c for c in commands if c not in known_commands)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def _evaluation(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The results and per-frame confusion matrices that `evaluate` wrote to `folder`."""
    results = json.loads((folder / RESULTS).read_text())
    with np.load(folder / CONFUSIONS) as data:
        return results, {k: data[k] for k in data.files}


def _margins(
    exp: Experiment,
    rows: Mapping[str, Any],
    confusions: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    conditions: Sequence[str],
    resamples: int,
) -> tuple[dict[str, dict[str, Any]], str]:
    """Margins of the reference over every other model (blanked rows aside), and their table."""
    labels = {k: r["label"] for k, r in rows.items()}
    ref = exp.reference
    others = [k for k, r in rows.items() if k != ref and r["blank"] is None]
    margins = bootstrap_margins(confusions, ref, others, conditions, resamples, exp.test.seed)
    return margins, margins_table(margins, labels, conditions, labels[ref])


def report(
    exp: Experiment,
    output_dir: str | Path | None = None,
    figures: str | Path | None = None,
    prefix: str = "experiment",
    results_file: str | Path | None = None,
    commands: Sequence[str] = (),
) -> str:
    """Write the tables (also returned) and, on request, the figures and the results file.

    `figures`: folder for the PNGs, named `<prefix>_*.png`; `results_file`: the JSON file to
    merge this experiment into (see `write_results`), with `commands` that reproduce it.
    """
    out = exp.results_dir(output_dir)
    results, arrays = _evaluation(out)
    timing_file = Path(output_dir or exp.output_dir) / TIMINGS
    timings = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    t = results["test"]
    margins, margin_rows = _margins(
        exp, results["rows"], arrays, t["conditions"], exp.test.bootstrap
    )
    text = "\n\n".join(
        [
            f"mIoU (%) on {t['samples']} held-out scenes per condition "
            f"({t['split']} split, benchmark {t.get('benchmark', 'v1')}, strength "
            f"{t['strength']}, {t['size'][0]}x{t['size'][1]}, checkpoint {t['checkpoint']})",
            table(results, timings),
            f"Margins of {results['rows'][exp.reference]['label']} in mIoU points, with 95% "
            f"paired-bootstrap intervals over test scenes ({exp.test.bootstrap} resamples)",
            margin_rows,
        ]
    )
    (out / TABLE).write_text(text + "\n")
    (out / "margins.json").write_text(json.dumps(margins, indent=2))
    if figures is not None:
        plot_figures(results, arrays, Path(figures), prefix)
    if results_file is not None:
        write_results(Path(results_file), exp, results, margins, timings, commands)
    return text


#: Resamples of the two-level (seeds, scenes) bootstrap of `pool`.
POOL_RESAMPLES = 2000


def pool(
    exp: Experiment,
    output_dirs: Sequence[str | Path],
    results_file: str | Path | None = None,
    commands: Sequence[str] = (),
) -> str:
    """Tables of one experiment evaluated with several training seeds (one folder each).

    mIoU is the mean over the seeds; margins come from the two-level bootstrap of
    `bootstrap_margins`. With `results_file`, these pooled numbers are merged into it.
    """
    per_seed, arrays = zip(*(_evaluation(exp.results_dir(out)) for out in output_dirs))
    first = per_seed[0]
    conditions = first["test"]["conditions"]
    rows: dict[str, Any] = {}
    for key, row in first["rows"].items():
        seeds = [r["rows"][key] for r in per_seed]
        rows[key] = {
            **row,
            "conditions": {
                c: {"miou": float(np.mean([s["conditions"][c]["miou"] for s in seeds]))}
                for c in conditions
            },
            "mean_miou": float(np.mean([s["mean_miou"] for s in seeds])),
            "seed_means": [s["mean_miou"] for s in seeds],
        }
    results = {
        **first,
        "rows": rows,
        "test": {**first["test"], "runs": list(map(str, output_dirs))},
    }
    margins, margin_rows = _margins(exp, rows, list(arrays), conditions, POOL_RESAMPLES)
    seed_means = "\n".join(
        f"- {r['label']}: " + " / ".join(f"{m * 100:.1f}" for m in r["seed_means"])
        for r in rows.values()
    )
    text = "\n\n".join(
        [
            f"mIoU (%), mean over {len(output_dirs)} training runs "
            f"({', '.join(map(str, output_dirs))}), {first['test']['samples']} test scenes per "
            "condition",
            table(results),
            "Mean mIoU of each training run:\n\n" + seed_means,
            f"Margins of {rows[exp.reference]['label']} in mIoU points, mean over the training "
            f"runs, with 95% intervals of a two-level bootstrap (runs, then scenes; "
            f"{POOL_RESAMPLES} resamples)",
            margin_rows,
        ]
    )
    if results_file is not None:
        write_results(Path(results_file), exp, results, margins, {}, commands)
    return text
