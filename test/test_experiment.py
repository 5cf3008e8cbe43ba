"""The fusion experiment: shipped recipes, runner, scoring, bootstrap and rerun overrides.

The shipped recipes (fair, same budget, servable SSMA; v1 and v2), the runner end to end on a
2-iteration budget, the test-set scoring, the paired bootstrap and the CLI's rerun overrides.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ssma_ros.data.synthetic import CONDITIONS_V2
from ssma_ros.train import experiment
from ssma_ros.train.config import ConfigError, from_dict
from ssma_ros.train.data import FixedFrames, SegDataset
from ssma_ros.train.experiment import cli as experiment_cli
from ssma_ros.train.metrics import scores
from ssma_ros.train.trainer import evaluate

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "config" / "experiment" / "experiment.yaml"
TINY = [
    "data.size=[48,64]",
    "data.crop=[32,48]",
    "data.train_samples=4",
    "data.val_samples=1",
    "data.eval_conditions=[clear]",
    "optim.iterations=2",
    "optim.batch_size=2",
    "eval.interval=2",
    "eval.batch_size=2",
]
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shipped_recipes_are_fair_and_give_every_fused_model_the_same_budget():
    exp = experiment.load_experiment(EXPERIMENT)
    configs = experiment.run_configs(exp)  # runs check_fair
    assert [r.name for r in exp.runs] == ["rgb", "aux", "early", "late", "ssma"]
    b = experiment.budgets(configs)
    assert (
        b["rgb"]["chain_iterations"]
        == b["aux"]["chain_iterations"]
        == configs["rgb"].optim.iterations
    )
    # Fusion from the experts counts their stage-1 iterations; early fusion as many from scratch.
    assert (
        b["ssma"]["chain_iterations"]
        == configs["rgb"].optim.iterations + configs["ssma"].optim.iterations
    )
    assert (
        b["early"]["chain_iterations"]
        == b["late"]["chain_iterations"]
        == b["ssma"]["chain_iterations"]
    )
    assert (
        b["ssma"]["samples"]
        == (2 * configs["rgb"].optim.iterations + configs["ssma"].optim.iterations) * 8
    )
    ssma = configs["ssma"]
    # What the ROS node needs from the default model: depth as jet, trained to run on RGB alone.
    assert (ssma.data.aux, ssma.data.aux_encoding, tuple(ssma.data.size)) == (
        "depth",
        "jet",
        (240, 320),
    )
    assert ssma.modality_dropout.aux > 0
    assert ssma.init.rgb == "runs/experiment/rgb/best.pt"


def test_check_fair_rejects_runs_that_differ_in_data():
    base = {"stage": "expert", "model": {"arch": "adapnet", "modalities": ["rgb"]}}
    a = from_dict(base)
    b = from_dict({**base, "data": {"crop": [32, 48]}})
    experiment.check_fair({"a": a, "a2": from_dict(base, ["optim.iterations=7", "output_dir=x"])})
    with pytest.raises(ConfigError, match="data.crop"):
        experiment.check_fair({"a": a, "b": b})


V2 = ROOT / "config" / "experiment" / "v2"


def test_v2_recipes_share_one_budget_rule_and_the_rgb_expert():
    rgbd = experiment.load_experiment(V2 / "rgbd.yaml")
    rgbt = experiment.load_experiment(V2 / "rgbt.yaml")
    d, t = experiment.run_configs(rgbd), experiment.run_configs(rgbt)  # both run check_fair
    assert rgbd.reference == "ssma_warm_s3" and rgbt.reference == "ssma_warm_s3_t"
    assert rgbt.suffix == "_t"
    # The two pairs share their runs' folder but keep their evaluations apart.
    assert rgbd.results_dir() == Path("runs/v2/rgbd") and rgbt.results_dir() == Path(
        "runs/v2/rgbt"
    )
    assert rgbd.results_dir("/tmp/x") == Path("/tmp/x/rgbd")
    for configs in (d, t):
        b = experiment.budgets(configs)
        fused = [k for k, c in configs.items() if c.model.arch != "adapnet"]
        chains = {b[k]["chain_iterations"] for k in fused if "half" not in k}
        assert len(chains) == 1, chains  # the same optimiser steps for every fused model
        assert all(c.data.benchmark == "v2" for c in configs.values())
        # the training mix covers every v2 condition; the test holds each at full strength
        assert all(set(c.data.train_conditions) == set(CONDITIONS_V2) for c in configs.values())
    assert set(rgbd.test.conditions) | set(rgbt.test.conditions) == set(CONDITIONS_V2)
    assert rgbd.test.strength == rgbt.test.strength == 1.0
    assert d["rgb"] == t["rgb"]  # one RGB expert serves both
    assert d["ssma_warm"].init.warm == "best" and d["ssma_cold"].init.warm is None
    assert d["ssma_warm_s3"].stage == "finetune"
    assert t["thermal"].data.aux == "infrared"
    # the seed checks repeat the deciding runs of each pair unchanged
    for check, full in (("seed_check.yaml", d), ("seed_check_t.yaml", t)):
        runs = experiment.run_configs(experiment.load_experiment(V2 / check))
        assert {"rgb", "late", "late_t"} & set(runs) and all(runs[k] == full[k] for k in runs)


def test_check_fair_lets_an_rgb_only_run_ignore_the_aux_sensor():
    rgb = {"stage": "expert", "model": {"arch": "adapnet", "modalities": ["rgb"]}}
    aux = {"stage": "expert", "model": {"arch": "adapnet", "modalities": ["aux"]}}
    thermal = ["data.aux=infrared", "data.aux_encoding=intensity", "data.cache=t.npz"]
    experiment.check_fair({"rgb": from_dict(rgb), "thermal": from_dict(aux, thermal)})
    with pytest.raises(ConfigError, match="data.aux"):
        experiment.check_fair({"depth": from_dict(aux), "thermal": from_dict(aux, thermal)})


def test_cli_reruns_on_another_draw(tmp_path):
    args = experiment_cli.parse_args(
        [
            "run",
            str(V2 / "rgbd.yaml"),
            "--seed",
            "3",
            "--scene-seed",
            "11",
            "--mix",
            "clear=0.5,sunlight=0.25,night_rain=0.25",
            "--strength",
            "0.7",
            "0.9",
            "--test-samples",
            "7",
            "--test-strength",
            "0.8",
            "--test-conditions",
            "clear",
            "range",
            "--bootstrap-seed",
            "5",
        ]
    )
    runs, test = experiment_cli.overrides(args)
    exp = experiment.load_experiment(args.experiment, test)
    assert (exp.test.samples, exp.test.strength, exp.test.seed) == (7, 0.8, 5)
    assert exp.test.conditions == ("clear", "range")
    configs = experiment.run_configs(exp, runs, tmp_path)
    for cfg in configs.values():
        assert (cfg.seed, cfg.data.scene_seed, cfg.data.strength) == (3, 11, (0.7, 0.9))
        assert cfg.data.train_conditions == {"clear": 0.5, "sunlight": 0.25, "night_rain": 0.25}
        assert cfg.output_dir.startswith(str(tmp_path))
    with pytest.raises(SystemExit):
        experiment_cli.parse_args(["run", "x.yaml", "--mix", "clear:1"])
    with pytest.raises(ConfigError, match="benchmark"):  # a v2 condition in a v1 experiment
        experiment.run_configs(
            experiment.load_experiment(EXPERIMENT), ["data.train_conditions={sunlight: 1}"]
        )


def test_budget_scale_keeps_every_runs_share_and_the_chain_rule():
    exp = experiment.load_experiment(V2 / "seed_check.yaml")
    base = experiment.run_configs(exp)
    args = experiment_cli.parse_args(["run", str(exp.path), "--budget-scale", "1.5"])
    scaled = experiment.run_configs(exp, budget_scale=args.budget_scale)
    for name, cfg in base.items():
        assert scaled[name].optim.iterations == round(1.5 * cfg.optim.iterations)
    chains = experiment.budgets(scaled)
    # experts 600; late fusion 600 + 300 and warm + stage 3 600 + 150 + 150: equal chains
    assert chains["rgb"]["chain_iterations"] == 600
    assert chains["late"]["chain_iterations"] == chains["ssma_warm_s3"]["chain_iterations"] == 900
    with pytest.raises(ConfigError, match="budget scale"):
        experiment.run_configs(exp, budget_scale=0)


def test_output_dir_moves_every_path_of_the_experiment(tmp_path):
    exp = experiment.load_experiment(EXPERIMENT)
    configs = experiment.run_configs(exp, TINY, tmp_path)
    assert configs["ssma"].init.aux == str(tmp_path / "aux" / "best.pt")
    assert configs["late"].output_dir == str(tmp_path / "late")
    assert configs["rgb"].data.cache == str(tmp_path / "train_frames.npz")
    with pytest.raises(FileNotFoundError, match="rgb/best.pt"):
        experiment.run(exp, configs, ["ssma"], tmp_path)
    with pytest.raises(ConfigError, match="no run named"):
        experiment.run(exp, configs, ["sma"], tmp_path)


def test_bootstrap_margins_are_zero_for_equal_models_and_positive_for_a_better_one():
    rng = np.random.default_rng(0)
    n, c = 12, 4
    truth = rng.integers(50, 100, size=(n, c))
    perfect = np.stack([np.diag(t) for t in truth])
    confused = perfect.copy()
    confused[:, 1, 1] -= 30
    confused[:, 1, 2] += 30  # every scene: 30 class-1 pixels taken for class 2
    arrays = {"ref/clear": perfect, "same/clear": perfect.copy(), "worse/clear": confused}
    m = experiment.bootstrap_margins(arrays, "ref", ["same", "worse"], ["clear"], resamples=200)
    assert m["same"]["clear"] == {"margin": 0.0, "low": 0.0, "high": 0.0}
    worse = m["worse"]["clear"]
    expected = scores(perfect.sum(0)).miou - scores(confused.sum(0)).miou
    assert worse["margin"] == pytest.approx(expected)
    assert 0 < worse["low"] <= worse["margin"] <= worse["high"]
    assert m["worse"]["mean"]["margin"] == pytest.approx(expected)


def test_pooled_margins_average_the_training_runs_and_widen_with_their_spread():
    rng = np.random.default_rng(1)
    n, c = 10, 3
    truth = rng.integers(50, 100, size=(n, c))
    perfect = np.stack([np.diag(t) for t in truth])

    def confused(pixels: int) -> np.ndarray:
        out = perfect.copy()
        out[:, 1, 1] -= pixels
        out[:, 1, 2] += pixels
        return out

    # run A: the reference is better by a little; run B: by a lot
    run_a = {"ref/clear": confused(5), "other/clear": confused(10)}
    run_b = {"ref/clear": perfect, "other/clear": confused(40)}
    one = experiment.bootstrap_margins(run_a, "ref", ["other"], ["clear"], 300)
    same = experiment.bootstrap_margins([run_a, run_a], "ref", ["other"], ["clear"], 300)
    assert same["other"]["clear"] == pytest.approx(one["other"]["clear"])
    both = experiment.bootstrap_margins([run_a, run_b], "ref", ["other"], ["clear"], 300)
    a, b = (
        experiment.bootstrap_margins(r, "ref", ["other"], ["clear"], 300)["other"]["clear"]
        for r in (run_a, run_b)
    )
    pooled = both["other"]["clear"]
    assert pooled["margin"] == pytest.approx((a["margin"] + b["margin"]) / 2)
    # the spread between the runs widens the interval beyond either run's own
    width = {k: r["high"] - r["low"] for k, r in (("a", a), ("b", b), ("pooled", pooled))}
    assert width["pooled"] > 2 * max(width["a"], width["b"])
    assert a["low"] < pooled["low"] < pooled["margin"] < pooled["high"] < b["high"]


def test_run_evaluate_report_on_a_two_iteration_budget(tmp_path):
    spec = yaml.safe_load(EXPERIMENT.read_text())
    for run in spec["runs"]:
        run["recipe"] = str(EXPERIMENT.parent / run["recipe"])
    spec["test"].update(
        samples=3, conditions=["clear", "night"], bootstrap=20, batch_size=2, example=1
    )
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    out, figures = tmp_path / "out", tmp_path / "figures"
    argv = [
        "all",
        str(path),
        "--output-dir",
        str(out),
        "--figures",
        str(figures),
        "--json",
        str(tmp_path / "results.json"),
        "--threads",
        "1",
    ]
    assert experiment_cli.main(argv + [arg for o in TINY for arg in ("-o", o)]) == 0

    timings = json.loads((out / experiment.TIMINGS).read_text())
    assert set(timings) == {"rgb", "aux", "early", "late", "ssma"}
    assert all(t["wall_s"] > 0 and t["iterations"] == 2 for t in timings.values())
    results = json.loads((out / experiment.RESULTS).read_text())
    assert list(results["rows"]) == [
        "rgb",
        "aux",
        "early",
        "early_no_aux",
        "late",
        "late_no_aux",
        "ssma",
        "ssma_no_aux",
    ]
    with np.load(out / experiment.CONFUSIONS) as data:
        for key, row in results["rows"].items():
            for condition in ("clear", "night"):
                matrices = data[f"{key}/{condition}"]
                assert matrices.shape == (3, 10, 10)
                assert row["conditions"][condition]["miou"] == pytest.approx(
                    scores(matrices.sum(0)).miou
                )
                assert data[f"{key}/{condition}/example"].shape == (48, 64)
    table = (out / experiment.TABLE).read_text()
    assert "| SSMA, aux blanked |" in table and "SSMA minus" in table
    for name in ("miou", "classes", "examples", "gates"):
        assert (figures / f"experiment_{name}.png").read_bytes()[:8] == PNG
    # SSMA's mean gates per condition and block: RGB half and aux half, each a sigmoid mean.
    gates = results["rows"]["ssma"]["gates"]
    assert set(gates) == {"clear", "night"}
    assert set(gates["clear"]) == {"fuse_aspp", "fuse_eighth", "fuse_quarter"}
    assert all(0 < g[h] < 1 for c in gates.values() for g in c.values() for h in ("rgb", "aux"))
    # The results file in the schema: mIoU % per model and condition, margins in points.
    summary = json.loads((tmp_path / "results.json").read_text())
    assert set(summary) == {"models", "margins", "recipe", "commands"}
    assert summary["models"]["ssma_no_aux"]["night"] == pytest.approx(
        results["rows"]["ssma_no_aux"]["conditions"]["night"]["miou"] * 100, abs=0.01
    )
    assert set(summary["margins"]) == {f"ssma_minus_{k}" for k in ("rgb", "aux", "early", "late")}
    for per in summary["margins"].values():
        assert set(per) == {"clear", "night", "mean"}
        assert all(lo <= hi for _, lo, hi in per.values())
    run_command = [c for c in summary["commands"] if " run " in c]
    assert len(run_command) == 1 and run_command[0].startswith("OMP_NUM_THREADS=2")
    assert "--json" not in run_command[0] and "--output-dir" in run_command[0]
    # pooling the same training run twice gives its own figures back
    pooled_file = tmp_path / "pooled.json"
    argv = ["pool", str(path), "--pool", str(out), str(out), "--json", str(pooled_file)]
    assert experiment_cli.main(argv) == 0
    pooled = json.loads(pooled_file.read_text())
    assert pooled["models"] == summary["models"]
    for key, per in summary["margins"].items():
        assert {c: v[0] for c, v in pooled["margins"][key].items()} == {
            c: v[0] for c, v in per.items()
        }
    assert pooled["commands"][0].endswith(f"pool {path} --pool {out} {out} --json {pooled_file}")


def test_an_rgb_expert_of_a_depth_pair_scores_in_a_thermal_pair(tmp_path):
    """The RGB expert is shared: its preprocess expects depth, the pair's frames carry thermal."""
    thermal = yaml.safe_load((EXPERIMENT.parent / "aux.yaml").read_text())
    thermal["data"].update(aux="infrared", aux_encoding="intensity", cache=None)
    thermal["output_dir"] = "runs/experiment/thermal"
    (tmp_path / "thermal.yaml").write_text(yaml.safe_dump(thermal))
    spec = {
        "output_dir": "runs/experiment",
        "reference": "thermal",
        "runs": [
            {"name": "rgb", "recipe": str(EXPERIMENT.parent / "rgb.yaml")},
            {"name": "thermal", "recipe": "thermal.yaml"},
        ],
        "test": {"samples": 2, "conditions": ["clear"], "bootstrap": 10, "batch_size": 2},
    }
    (tmp_path / "pair.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    argv = ["all", str(tmp_path / "pair.yaml"), "--output-dir", str(out), "--threads", "1"]
    assert experiment_cli.main(argv + [arg for o in TINY for arg in ("-o", o)]) == 0
    rows = json.loads((out / experiment.RESULTS).read_text())["rows"]
    assert set(rows) == {"rgb", "thermal"}


def test_score_frames_agrees_with_the_trainers_evaluation(tmp_path):
    cfg = from_dict({"stage": "fusion", "model": {"arch": "late"}}, TINY)
    from ssma_ros.data import synthetic
    from ssma_ros.model.builder import build_model
    from ssma_ros.train.data import build_datasets

    _, _, info = build_datasets(cfg)
    frames = list(synthetic.SyntheticDataset("test", 3, 48, 64, conditions=("fog",)))
    torch.manual_seed(0)
    model = build_model("late", "lite", 10).eval()
    matrices, kept = experiment.score_frames(
        model, frames, info.preprocess, 10, 2, blank="aux", keep=2
    )
    loader = torch.utils.data.DataLoader(
        SegDataset(FixedFrames(frames), info.preprocess, blank="aux"), batch_size=3
    )
    reference = evaluate(model, loader, 10, torch.device("cpu"))
    np.testing.assert_array_equal(matrices.sum(0), reference.confusion)
    assert kept is not None and kept.shape == (48, 64)


# -- the training-data features the experiment relies on: crops at native scale, cached frames --


def test_crop_is_a_window_of_the_whole_frame_at_its_own_scale():
    frames = list(synthetic_frames(2))
    cfg = from_dict({"stage": "expert", "model": {"arch": "adapnet", "modalities": ["rgb"]}}, TINY)
    from ssma_ros.train.data import build_datasets

    preprocess = build_datasets(cfg)[2].preprocess
    whole = SegDataset(FixedFrames(frames), preprocess)
    cropped = SegDataset(FixedFrames(frames), preprocess, crop=(32, 48))
    full = whole[1]["label"].numpy()
    for key in (1, 3, 5):  # frame 1 in epochs 0, 1, 2: different windows
        window = cropped[key]["label"].numpy()
        assert window.shape == (32, 48) and cropped[key]["rgb"].shape == (3, 32, 48)
        hits = [
            (y, x)
            for y in range(48 - 32 + 1)
            for x in range(64 - 48 + 1)
            if np.array_equal(full[y : y + 32, x : x + 48], window)
        ]
        assert hits, "the crop is not a window of the frame (rescaled or warped?)"


def test_modality_dropout_blanks_a_crop_with_the_blank_image():
    cfg = from_dict(
        {"stage": "fusion", "model": {"arch": "ssma"}},
        TINY + ["modality_dropout.aux=1.0", "modality_dropout.rgb=0.0"],
    )
    from ssma_ros.train.data import build_datasets

    train, _, info = build_datasets(cfg)
    sample = train[0]
    blank = info.preprocess.blank_aux(1)[0][:, :32, :48]
    np.testing.assert_array_equal(sample["aux"].numpy(), blank)


def test_crop_and_cache_are_validated():
    base = {"stage": "expert", "model": {"arch": "adapnet", "modalities": ["rgb"]}}
    with pytest.raises(ConfigError, match="data.crop"):
        from_dict(base, ["data.size=[48,64]", "data.crop=[40,48]"])
    with pytest.raises(ConfigError, match="data.crop"):
        from_dict(base, ["data.size=[48,64]", "data.crop=[64,48]"])
    with pytest.raises(ConfigError, match="data.cache"):
        from_dict(base, ["data.source=cityscapes", "data.root=x", "data.cache=x.npz"])


class CountingSource:
    def __init__(self, frames):
        self.frames, self.calls = frames, 0

    def __len__(self):
        return len(self.frames)

    def frame(self, index, epoch):
        self.calls += 1
        return self.frames[index]


def test_cached_frames_render_once_and_again_when_the_recipe_changes(tmp_path):
    from ssma_ros.train.data import CachedFrames

    source = CountingSource(list(synthetic_frames(3)))
    path = tmp_path / "frames.npz"
    first = CachedFrames(source, path, {"size": [48, 64]})
    assert source.calls == 3 and path.exists()
    again = CachedFrames(source, path, {"size": [48, 64]})
    assert source.calls == 3  # loaded, not rendered
    for i in range(3):
        a, b = again.frame(i, epoch=5), source.frames[i]
        np.testing.assert_array_equal(a["rgb"], b["rgb"])
        np.testing.assert_array_equal(a["aux"], b["aux"])  # NaN where depth is invalid
        np.testing.assert_array_equal(a["label"], b["label"])
        assert a["camera"] == b["camera"] and a["aux_encoding"] == b["aux_encoding"] == "32FC1"
    assert len(first) == 3
    CachedFrames(source, path, {"size": [48, 80]})
    assert source.calls == 6


def synthetic_frames(n):
    from ssma_ros.data import synthetic

    return synthetic.SyntheticDataset("train", n, 48, 64, conditions=("clear", "fog"))
