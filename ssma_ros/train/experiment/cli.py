"""ssma-experiment: train, evaluate and report an experiment (docs/EXPERIMENT.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssma_ros.data import synthetic
from ssma_ros.train.config import ConfigError
from ssma_ros.train.experiment.evaluate import evaluate
from ssma_ros.train.experiment.report import pool, report
from ssma_ros.train.experiment.run import run
from ssma_ros.train.experiment.spec import load_experiment, run_configs


def _mix(text: str) -> str:
    """`clear=0.4,fog=0.2` -> the override of data.train_conditions (shares, any positive sum)."""
    try:
        shares = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in text.split(","))}
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--mix {text!r}: expected name=share,...") from err
    return "data.train_conditions={" + ", ".join(f"{k}: {v}" for k, v in shares.items()) + "}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line of ssma-experiment."""
    parser = argparse.ArgumentParser(
        prog="ssma-experiment", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("command", choices=("run", "evaluate", "report", "all", "pool"))
    parser.add_argument("experiment", help="experiment file, e.g. config/experiment/v2/rgbd.yaml")
    parser.add_argument("--only", nargs="+", metavar="RUN", help="run: train only these runs")
    parser.add_argument(
        "--override",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a value in every run's config, e.g. -o optim.iterations=2",
    )
    rerun = parser.add_argument_group(
        "another draw (shortcuts for -o / --test; use with --output-dir to keep runs apart)"
    )
    rerun.add_argument("--seed", type=int, help="training seed of every run")
    rerun.add_argument("--scene-seed", type=int, help="generator seed: other scenes everywhere")
    rerun.add_argument("--mix", type=_mix, metavar="NAME=SHARE,...", help="training condition mix")
    rerun.add_argument(
        "--strength", type=float, nargs=2, metavar=("LOW", "HIGH"), help="training strengths"
    )
    rerun.add_argument(
        "--budget-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="every run's iterations times F (e.g. 1.5: experts 600, fused stage 300)",
    )
    rerun.add_argument("--test-samples", type=int, help="test scenes per condition")
    rerun.add_argument("--test-strength", type=float, help="strength of every test condition")
    rerun.add_argument("--test-conditions", nargs="+", metavar="NAME", help="test conditions")
    rerun.add_argument("--bootstrap-seed", type=int, help="seed of the paired bootstrap")
    rerun.add_argument(
        "--test",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a value of the experiment's test section, e.g. --test samples=50",
    )
    parser.add_argument(
        "--output-dir", help="move every path under the experiment's output folder here"
    )
    parser.add_argument(
        "--pool",
        nargs="+",
        metavar="DIR",
        help="pool: output folders of the same experiment trained with other seeds",
    )
    parser.add_argument(
        "--figures", help="report: write the PNG figures to this folder (e.g. docs/figures)"
    )
    parser.add_argument(
        "--figure-prefix", default="experiment", help="report: figure names <prefix>_*.png"
    )
    parser.add_argument(
        "--json", help="report: merge the numbers into this results file (issue-14 schema)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (default 2; on a shared CPU also set OMP_WAIT_POLICY=PASSIVE)",
    )
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(run overrides, test overrides) from -o/--test and the rerun shortcuts."""
    runs, test = list(args.override), list(args.test)
    if args.seed is not None:
        runs.append(f"seed={args.seed}")
    if args.scene_seed is not None:
        runs.append(f"data.scene_seed={args.scene_seed}")
    if args.mix is not None:
        runs.append(args.mix)
    if args.strength is not None:
        runs.append(f"data.strength=[{args.strength[0]}, {args.strength[1]}]")
    if args.test_samples is not None:
        test.append(f"samples={args.test_samples}")
    if args.test_strength is not None:
        test.append(f"strength={args.test_strength}")
    if args.test_conditions is not None:
        test.append(f"conditions=[{', '.join(args.test_conditions)}]")
    if args.bootstrap_seed is not None:
        test.append(f"seed={args.bootstrap_seed}")
    return runs, test


#: Options of `report` alone, left out of the run and evaluate commands.
REPORT_ONLY = ("--figures", "--figure-prefix", "--json")


def commands(argv: Sequence[str]) -> list[str]:
    """List the run, evaluate and report commands that reproduce this invocation."""
    rest = [a for a in argv if a not in ("run", "evaluate", "report", "all")]
    common = []
    skip = False
    for arg in rest:
        if skip:
            skip = False
        elif arg in REPORT_ONLY:
            skip = True
        elif not arg.startswith(REPORT_ONLY):
            common.append(arg)
    env = "OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE "
    # `python -m` works with or without the console script installed
    tool = "python -m ssma_ros.train.experiment"
    return [
        f"{env}{tool} run {' '.join(common)}",
        f"{env}{tool} evaluate {' '.join(common)}",
        f"{tool} report {' '.join(rest)}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ssma-experiment command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    run_overrides, test_overrides = overrides(args)
    try:
        exp = load_experiment(args.experiment, test_overrides)
        configs = run_configs(exp, run_overrides, args.output_dir, args.budget_scale)
    except (ConfigError, OSError, KeyError) as err:
        print(f"experiment: {err}", file=sys.stderr)
        return 2
    if args.command == "pool":
        if not args.pool:
            print("experiment: pool needs --pool DIR [DIR ...]", file=sys.stderr)
            return 2
        line = "python -m ssma_ros.train.experiment " + " ".join(argv)
        print(pool(exp, args.pool, args.json, [line]))
        return 0
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
        text = report(exp, out, args.figures, args.figure_prefix, args.json, commands(argv))
        print(text)
    return 0
