"""The fusion experiment of docs/EXPERIMENT.md.

Unimodal experts, early fusion, late fusion and SSMA (with its warm-start ablation) are trained
on one budget rule on the synthetic scenes, then evaluated per condition on held-out scenes.

    ssma-experiment run      config/experiment/v2/rgbd.yaml
    ssma-experiment evaluate config/experiment/v2/rgbd.yaml
    ssma-experiment report   config/experiment/v2/rgbd.yaml --figures docs/figures \
        --json docs/experiment_results.json

(`python -m ssma_ros.train.experiment` is the same command.) An experiment file names its runs
(each an ordinary `ssma-train` recipe, run in order, so the fusion runs find the experts'
checkpoints) and its test set. `run` trains and records wall times; `evaluate` scores every
run's checkpoint on the test scenes under every condition (fused models also with aux blanked)
and keeps per-frame confusion matrices and SSMA's mean gates; `report` turns those into Markdown
tables, paired-bootstrap intervals of the reference SSMA's margins, the results file and figures.

Modules: ``spec`` (experiment files, fairness, budgets), ``run``, ``evaluate``, ``report``,
``figures``, ``cli``.
"""

from ssma_ros.train.experiment.evaluate import evaluate, score_frames, test_frames
from ssma_ros.train.experiment.report import bootstrap_margins, margins_table, report, table
from ssma_ros.train.experiment.run import run
from ssma_ros.train.experiment.spec import (
    CONFUSIONS,
    RESULTS,
    TABLE,
    TIMINGS,
    Experiment,
    RunSpec,
    TestSpec,
    budgets,
    check_fair,
    load_experiment,
    run_configs,
)

__all__ = [
    "CONFUSIONS",
    "RESULTS",
    "TABLE",
    "TIMINGS",
    "Experiment",
    "RunSpec",
    "TestSpec",
    "bootstrap_margins",
    "budgets",
    "check_fair",
    "evaluate",
    "load_experiment",
    "margins_table",
    "report",
    "run",
    "run_configs",
    "score_frames",
    "table",
    "test_frames",
]
