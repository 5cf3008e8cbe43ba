"""What an experiment is: its runs, its test set, the fairness check and each run's budget.

Runs are ordinary `ssma-train` recipes; the fairness check makes sure that only the model
differs between them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssma_ros.data import synthetic
from ssma_ros.train.config import ConfigError, TrainConfig, apply_override, from_dict

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
    """Held-out frames: scenes `0 .. samples-1` of `split`, each under every condition.

    Every condition is rendered at `strength` on the runs' benchmark (`data.benchmark`).
    """

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
    # Appended to run names in the results file (unless a name ends with it), so that two
    # experiments that share a run (e.g. the RGB expert) keep their rows apart.
    suffix: str = ""
    # Folder of the evaluation's files (results, confusions, table); None = output_dir. Two
    # experiments that share their runs' folder keep their evaluations apart this way.
    report_dir: Path | None = None

    def results_dir(self, output_dir: str | Path | None = None) -> Path:
        """Where evaluate and report keep their files, with the output folder moved or not."""
        out = Path(output_dir or self.output_dir)
        if self.report_dir is None:
            return out
        return Path(_move(str(self.report_dir), self.output_dir, out))


def load_experiment(path: str | Path, test_overrides: Sequence[str] = ()) -> Experiment:
    """Read an experiment file; recipe paths are relative to its folder.

    `test_overrides`: `key=value` strings (value parsed as YAML) over its `test` section, e.g.
    `samples=50` or `conditions=[clear,fog]`, so that a rerun can draw another test set.
    """
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"output_dir", "runs", "test", "reference", "suffix", "report_dir"}
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
    for override in test_overrides:
        apply_override(test_data, override)
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
    out = Path(data.get("output_dir", "runs/experiment"))
    report_dir = Path(data["report_dir"]) if data.get("report_dir") else None
    return Experiment(path, out, runs, test, reference, str(data.get("suffix", "")), report_dir)


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def run_configs(
    exp: Experiment,
    overrides: Sequence[str] = (),
    output_dir: str | Path | None = None,
    budget_scale: float = 1.0,
) -> dict[str, TrainConfig]:
    """Build every run's TrainConfig.

    Each is its recipe, with paths under the experiment's output folder moved to `output_dir`
    (if given), its iterations times `budget_scale` (so every run keeps its share of the budget),
    then `overrides` (applied to every run).
    """
    if budget_scale <= 0:
        raise ConfigError(f"budget scale must be > 0, got {budget_scale}")
    configs = {}
    for spec in exp.runs:
        raw = yaml.safe_load(spec.recipe.read_text()) or {}
        iterations = _get(raw, "optim.iterations")
        if budget_scale != 1.0 and isinstance(iterations, int):
            apply_override(raw, f"optim.iterations={max(1, round(iterations * budget_scale))}")
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
    """Count each run's budget.

    Per run: its own iterations, the iterations along its longest chain of initialisations (an
    expert's stage-1 iterations count towards the fusion started from it; a stage 3 counts its
    stage 2), and the training samples all runs it depends on consumed.
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
