"""Structured pruning on tiny networks.

Dependency groups across residual adds, the SSMA concat + gate + multiply, excluded layers,
fine-tuning, checkpoints, ONNX export and the ssma-prune CLI.
"""

from __future__ import annotations

import copy
import csv

import pytest
import torch

from ssma_ros.compress import cli
from ssma_ros.compress.finetune import Distillation, distillation_loss, finetune
from ssma_ros.compress.prune import (
    ChannelPruner,
    accumulate_gradients,
    excluded_layers,
    frozen_statistics,
    masked_reference,
)
from ssma_ros.compress.report import StepResult, choose  # noqa: E402
from ssma_ros.data.preprocess import Preprocess  # noqa: E402
from ssma_ros.data.synthetic import CLASSES, PALETTE  # noqa: E402
from ssma_ros.model import SegLoss, build_model, load_checkpoint, save_checkpoint  # noqa: E402
from ssma_ros.model.base import OUT, SIDE_EIGHTH, SIDE_QUARTER  # noqa: E402
from ssma_ros.model.info import count_params  # noqa: E402
from ssma_ros.train.config import TrainConfig  # noqa: E402

# Every structural element of lite (multiscale units, shortcuts, eASPP, SSMA at three levels,
# attention, side heads) at a size that prunes, trains and exports in seconds.
TINY = dict(
    stem_width=8,
    widths=(16, 32, 48, 64),
    units=(1, 2, 1, 1),
    multiscale=((1, 1, 1, 2), (3, 0, 2, 4)),
    aspp_width=8,
    aspp_out=16,
    decoder_width=16,
    skip_width=8,
    ssma_eta_aspp=4,
    ssma_eta_skip=2,
    dropout=0.3,
)
H, W = 32, 48


def inputs(batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, H, W, generator=g), torch.randn(batch, 3, H, W, generator=g)


def random_batches(count: int, num_classes: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [
        (inputs(2, seed + i), torch.randint(0, num_classes, (2, H, W), generator=g))
        for i in range(count)
    ]


def outputs(model: torch.nn.Module, x) -> list[torch.Tensor]:
    """Eval logits and the train-mode outputs (with side heads) with fixed BN statistics."""
    model.eval()
    with torch.no_grad():
        result = [model(*x)[OUT]]
        with frozen_statistics(model):
            train = model(*x)
            result += [train[OUT], train[SIDE_QUARTER], train[SIDE_EIGHTH]]
    return result


@pytest.fixture(scope="module")
def pruned():
    """A tiny SSMA pruned in two Taylor steps, with the unpruned original and the pruner."""
    torch.manual_seed(0)
    model = build_model("ssma", TINY, 6)
    original = copy.deepcopy(model)
    pruner = ChannelPruner(model, inputs(1), steps=2, ratio_per_step=0.2, max_ratio=0.75)
    references = []
    for step in range(2):
        accumulate_gradients(model, random_batches(2, 6, 10 * step), SegLoss())
        assert pruner.step() > 0
        references.append(masked_reference(original, pruner.removed_inputs()))
    return model, original, pruner, references


def test_pruning_shrinks_prunable_layers_and_keeps_excluded_ones(pruned) -> None:
    model, original, _, _ = pruned
    assert count_params(model)[0] < 0.75 * count_params(original)[0]
    modules, before = dict(model.named_modules()), dict(original.named_modules())
    excluded = excluded_layers(model)
    assert {
        "decoder.refine_quarter.2.0",
        "decoder.up_full.0",
        "decoder.side_quarter.0",
        "decoder.side_eighth.0",
        "rgb_expert.encoder.stem.0",
        "aux_expert.encoder.stem.0",
    } == set(excluded)
    for name in excluded:
        width = "num_features" if name.endswith("stem.0") else "out_channels"
        assert getattr(modules[name], width) == getattr(before[name], width), name
    # Input channels of excluded layers still follow their producers.
    assert (
        modules["decoder.side_quarter.0"].in_channels
        == modules["decoder.up_quarter.0"].out_channels
    )
    assert (
        modules["decoder.refine_quarter.2.0"].in_channels
        == modules["decoder.refine_quarter.1.0"].out_channels
    )
    # The residual stream of each stage keeps one width through shortcut, conv3s and stage BN.
    stage = model.rgb_expert.encoder.stages[1]
    widths = {
        stage[0].conv3.out_channels,
        stage[0].shortcut.out_channels,
        stage[1].conv3.out_channels,
        stage[1].preact[0].num_features,
        stage[2].num_features,
    }
    assert len(widths) == 1 and widths.pop() < 32


def test_ssma_gate_group_is_coupled_with_both_experts(pruned) -> None:
    model, _, _, _ = pruned
    for block, level in (
        (model.fuse_aspp, "easpp.fuse.0"),
        (model.fuse_eighth, "skip_eighth.0"),
        (model.fuse_quarter, "skip_quarter.0"),
    ):
        rgb = model.rgb_expert.get_submodule(level).out_channels
        aux = model.aux_expert.get_submodule(level).out_channels
        # concat(rgb, aux) -> down; gate `up` has one channel per concatenated channel;
        # projection reads x * gate.
        assert block.down.in_channels == block.up.out_channels == rgb + aux
        assert (
            block.project.get_submodule("0" if level.startswith("easpp") else "").in_channels
            == rgb + aux
        )
        assert block.down.out_channels == block.up.in_channels
    # The run really pruned through the gate at the eASPP level (16 + 16 channels before).
    assert model.fuse_aspp.up.out_channels < 32


def test_pruned_model_equals_masked_unpruned_model(pruned) -> None:
    model, original, _, references = pruned
    x = inputs(2, seed=5)
    got = outputs(model, x)
    want = outputs(references[-1], x)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # The masking matters: the original network gives other outputs.
    assert (outputs(original, x)[0] - got[0]).abs().max() > 1e-2


def test_masked_reference_catches_a_wrong_coupling(pruned) -> None:
    """The reference check is only worth something if a mis-aligned channel fails it."""
    model, original, pruner, _ = pruned
    removed = pruner.removed_inputs()
    name = "fuse_aspp.project.0"
    wrong = dict(removed)
    kept = sorted(set(range(original.fuse_aspp.project[0].in_channels)) - set(removed[name]))
    wrong[name] = sorted(removed[name][1:] + kept[:1])  # one removed and one kept channel swapped
    x = inputs(2, seed=6)
    diff = (outputs(masked_reference(original, wrong), x)[0] - outputs(model, x)[0]).abs().max()
    assert diff > 1e-3


def test_pruned_model_trains_and_round_trips(pruned, tmp_path) -> None:
    # ONNX export of pruned models is checked by the CLI test (every step is exported and
    # compared).
    model, _, _, _ = pruned
    model = copy.deepcopy(model)
    losses = finetune(model, iter(random_batches(3, 6, 50)), SegLoss(), 3, lr=1e-3)
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    path = save_checkpoint(tmp_path / "pruned.pt", model, pruned=True, note="tiny")
    loaded, meta = load_checkpoint(path)
    x = inputs(1, seed=7)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(*x)[OUT], model(*x)[OUT])
    assert meta == {"note": "tiny"}


class Confident(torch.nn.Module):
    """A teacher with sharp class distributions (a random network's are nearly uniform)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = build_model("ssma", TINY, 6)

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> dict[str, torch.Tensor]:
        return {OUT: 20 * self.net(rgb, aux)[OUT]}


def test_distillation_pulls_the_pruned_model_towards_its_teacher(pruned) -> None:
    model, _, _, _ = pruned
    student = copy.deepcopy(model)
    torch.manual_seed(3)
    logits = torch.randn(2, 6, 4, 5)
    assert distillation_loss(logits, logits, 2.0).abs() < 1e-6
    assert distillation_loss(logits, logits.flip(1), 2.0) > 0.1
    # All-void labels: the label loss is 0, so the losses are the distillation term alone.
    batches = [(inputs(2, seed=20 + i), torch.zeros(2, H, W, dtype=torch.long)) for i in range(4)]
    losses = finetune(
        student,
        iter(batches * 10),
        SegLoss(),
        40,
        lr=3e-3,
        distillation=Distillation(Confident(), weight=1.0),
    )
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    with pytest.raises(ValueError, match="must be > 0"):
        Distillation(Confident(), weight=0.0)


def test_pruner_rejects_bad_settings_and_missing_gradients() -> None:
    model = build_model("ssma", TINY, 4)
    with pytest.raises(ValueError, match="steps x ratio_per_step"):
        ChannelPruner(model, inputs(1), steps=5, ratio_per_step=0.2)
    pruner = ChannelPruner(model, inputs(1), steps=1, ratio_per_step=0.1)
    with pytest.raises(RuntimeError, match="accumulate_gradients"):
        pruner.step()


def _result(step: int, params: int, miou: float) -> StepResult:
    return StepResult(
        step=step,
        channels_removed=0.1 * step,
        params=params,
        flops=params,
        miou={"clear": miou, "fog": miou},
        onnx_max_diff=0.0,
    )


def test_choose_takes_the_smallest_model_within_the_budget() -> None:
    results = [
        _result(0, 100, 0.70),
        _result(1, 80, 0.702),
        _result(2, 60, 0.691),
        _result(3, 40, 0.65),
    ]
    assert choose(results, max_drop=1.0).step == 2
    assert choose(results, max_drop=0.5).step == 1
    assert choose(results[:1] + results[3:], max_drop=1.0).step == 0


def test_cli_writes_the_curve_and_a_stripped_checkpoint(tmp_path) -> None:
    torch.manual_seed(1)
    model = build_model("ssma", TINY, len(CLASSES))
    train_config = TrainConfig().to_dict()
    train_config["data"].update(
        size=[H, W], train_samples=8, val_samples=2, eval_conditions=["clear"]
    )
    train_config["optim"].update(batch_size=2)
    source = save_checkpoint(
        tmp_path / "best.pt",
        model,
        classes=list(CLASSES),
        palette=PALETTE.tolist(),
        void_index=0,
        preprocess=Preprocess(H, W).to_dict(),
        train_config=train_config,
        iteration=5,
        resume={"optimizer": {"state": {}}},
        confusion={"clear": [[1]]},
    )
    out = tmp_path / "prune"
    code = cli.main(
        [
            str(source),
            "--out",
            str(out),
            "--steps",
            "1",
            "--ratio-per-step",
            "0.3",
            "--finetune-iters",
            "1",
            "--importance-batches",
            "1",
            "--latency-runs",
            "2",
            "--final-iters",
            "2",
            "--target-reduction",
            "0.1",
            "--control",
            "--distill",
            "0.5",
        ]
    )
    assert code == 0
    with (out / "pruning.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "1", "final", "control"]
    params = [int(r["params"]) for r in rows]
    assert params[1] < 0.8 * params[0] and params[2] == params[1] and params[3] == params[0]
    assert all(float(r["latency_ms"]) > 0 and float(r["onnx_max_abs_diff"]) < 1e-4 for r in rows)
    # The final model is step 1 trained further: same shapes, other weights.
    step1, final = load_checkpoint(out / "step_1.pt")[0], load_checkpoint(out / "final.pt")[0]
    weights = [(a, b) for a, b in zip(step1.parameters(), final.parameters())]
    assert all(a.shape == b.shape for a, b in weights) and any(
        not torch.equal(a, b) for a, b in weights
    )
    assert {"miou_clear", "miou_clear_no_aux", "miou_mean"} <= set(rows[0])
    assert (out / "pruning.png").stat().st_size > 10_000
    assert "★" in (out / "pruning.md").read_text()
    # The final model is the chosen one, saved without training state.
    record = torch.load(out / "chosen.pt", weights_only=True)
    assert record["pruned"] and "resume" not in record and "confusion" not in record
    assert record["pruning"]["step"] == 1 and record["pruning"]["final_iterations"] == 2
    assert record["pruning"]["distill"] == 0.5
    assert record["classes"] == list(CLASSES)
    # The control is kept, so that it can be scored on the test split like the chosen model.
    control, control_meta = load_checkpoint(out / "control.pt")
    assert count_params(control)[0] == params[0]
    assert 100 * control_meta["metrics"]["clear"] == pytest.approx(
        float(rows[3]["miou_clear"]), abs=0.01
    )
    chosen, meta = load_checkpoint(out / "chosen.pt")
    assert count_params(chosen)[0] == params[1] and set(meta["metrics"]) == {
        "clear",
        "clear_no_aux",
    }


def test_cli_rejects_a_checkpoint_without_training_recipe(tmp_path, capsys) -> None:
    path = save_checkpoint(tmp_path / "bare.pt", build_model("ssma", TINY, 3))
    assert cli.main([str(path), "--out", str(tmp_path / "o")]) == 1
    assert "train_config" in capsys.readouterr().err
