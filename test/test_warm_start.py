"""SSMA's gate initialisation and the warm fusion stage (issue 14).

A fresh gate is exactly 0.5, and a warm-started SSMA computes its chosen expert's logits at
step 0.
"""

from pathlib import Path

import pytest
import torch

from ssma_ros.model.base import OUT
from ssma_ros.model.builder import build_model
from ssma_ros.model.checkpoint import load_checkpoint, save_checkpoint
from ssma_ros.model.ssma import capture_gates
from ssma_ros.train import stages
from ssma_ros.train.config import ConfigError, from_dict
from ssma_ros.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = (48, 64)


def trained_like_expert(modality: str, seed: int, num_classes: int = 6) -> torch.nn.Module:
    """Build an AdapNet++ with random weights and BN statistics, as a trained one has."""
    torch.manual_seed(seed)
    model = build_model("adapnet", "lite", num_classes, modality=modality)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5) if "var" in name else buf.uniform_(-0.5, 0.5)
        for name, p in model.named_parameters():
            if name.endswith("bn.weight") or ".1.weight" in name and p.dim() == 1:
                p.uniform_(0.5, 1.5)  # BN gammas away from 1, so the eASPP BN matters
            elif p.dim() == 1:
                p.uniform_(-0.2, 0.2)
    return model.eval()


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, *SIZE, generator=g), torch.randn(2, 3, *SIZE, generator=g)


def warm_ssma(modality: str, num_classes: int = 6):
    experts = {"rgb": trained_like_expert("rgb", 1), "aux": trained_like_expert("aux", 2)}
    torch.manual_seed(3)
    model = build_model("ssma", "lite", num_classes)
    for name, expert in experts.items():
        stages.load_expert(model, name, expert)
    copied = stages.warm_start(model, modality, experts[modality])
    return model, experts, copied


def test_fresh_ssma_gates_are_exactly_one_half():
    model = build_model("ssma", "lite", 6).eval()
    with capture_gates(model) as gates, torch.no_grad():
        model(*inputs())
    assert set(gates) == {"fuse_aspp", "fuse_eighth", "fuse_quarter"}
    for gate in gates.values():
        assert torch.equal(gate, torch.full_like(gate, 0.5))


@pytest.mark.parametrize("modality", ["rgb", "aux"])
def test_warm_ssma_reproduces_its_expert_at_step_zero(modality):
    model, experts, copied = warm_ssma(modality)
    decoder = [k for k in experts[modality].state_dict() if k.startswith("decoder.")]
    stream = [k for k in experts[modality].state_dict() if k.startswith("expert.")]
    assert copied == len(decoder) + len(stream)  # the whole decoder maps one to one
    rgb, aux = inputs()
    x = rgb if modality == "rgb" else aux
    model.eval()
    with torch.no_grad():
        fused, alone = model(rgb, aux)[OUT], experts[modality](x)[OUT]
    scale = alone.abs().max()
    assert (fused - alone).abs().max() <= 1e-5 * scale
    # The other modality does not matter at step 0: the fusion passes the chosen stream through.
    with torch.no_grad():
        swapped = model(*(rgb, torch.zeros_like(aux)) if modality == "rgb" else (rgb * 0, aux))
    assert (swapped[OUT] - alone).abs().max() <= 1e-5 * scale
    # Train mode (batch statistics): the eASPP projection's BN undoes itself up to eps.
    for net in (model, experts[modality]):
        net.train()
        for m in net.modules():  # dropout masks would differ between the two networks
            if isinstance(m, torch.nn.Dropout):
                m.eval()
    with torch.no_grad():
        out, ref = model(rgb, aux), experts[modality](x)
    for key in ref:  # logits and both side heads
        assert (out[key] - ref[key]).abs().max() <= 1e-3 * ref[key].abs().max(), key


def test_cold_ssma_does_not_reproduce_an_expert():
    """The control for the test above: without the warm start the logits are unrelated."""
    experts = {"rgb": trained_like_expert("rgb", 1), "aux": trained_like_expert("aux", 2)}
    model = build_model("ssma", "lite", 6)
    for name, expert in experts.items():
        stages.load_expert(model, name, expert)
    rgb, aux = inputs()
    with torch.no_grad():
        diff = (model.eval()(rgb, aux)[OUT] - experts["aux"](aux)[OUT]).abs().max()
    assert diff > 1e-2


def test_warm_start_learns_from_there():
    """One optimiser step moves the gates and the attention off their starting values."""
    model, _, _ = warm_ssma("aux")
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rgb, aux = inputs()
    target = torch.randint(0, 6, (2, *SIZE))
    loss = torch.nn.functional.cross_entropy(model(rgb, aux)[OUT], target)
    loss.backward()
    assert model.fuse_aspp.up.weight.grad.abs().sum() > 0
    assert model.decoder.attention_eighth.proj[1].weight.grad.abs().sum() > 0
    assert model.fuse_aspp.down.weight.grad.abs().sum() == 0  # until `up` has moved
    optimizer.step()
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(rgb, aux)[OUT], target).backward()
    assert all(b.down.weight.grad.abs().sum() > 0 for b in (model.fuse_aspp, model.fuse_quarter))
    with capture_gates(model.eval()) as gates, torch.no_grad():
        model(rgb, aux)
    assert (gates["fuse_aspp"] - 0.5).abs().max() > 1e-3


def test_warm_modality_best_takes_the_better_validated_expert():
    metrics = {"rgb": {"clear": 0.4, "fog": 0.2, "clear_no_aux": 0.9}, "aux": {"clear": 0.35}}
    assert stages.warm_modality("best", metrics) == "aux"  # 0.30 mean vs 0.35
    assert stages.warm_modality("rgb", metrics) == "rgb"
    with pytest.raises(ValueError, match="no validation metrics"):
        stages.warm_modality("best", {"rgb": {}, "aux": {"clear": 0.3}})
    with pytest.raises(ValueError, match="init.warm"):
        stages.warm_modality("depth", metrics)
    with pytest.raises(ValueError, match="warm-start"):
        stages.warm_start(build_model("late", "lite", 6), "aux", trained_like_expert("aux", 2))


def save_expert(tmp_path: Path, modality: str, seed: int, miou: float) -> Path:
    model = trained_like_expert(modality, seed, num_classes=10)
    meta = {"metrics": {"clear": miou}}
    return save_checkpoint(tmp_path / f"{modality}.pt", model, stage="expert", **meta)


def test_trainer_starts_warm_from_the_better_expert(tmp_path):
    rgb = save_expert(tmp_path, "rgb", 1, miou=0.5)
    aux = save_expert(tmp_path, "aux", 2, miou=0.3)
    raw = {
        "stage": "fusion",
        "model": {"arch": "ssma", "config": "lite", "modalities": ["rgb", "aux"]},
        "init": {"rgb": str(rgb), "aux": str(aux), "warm": "best"},
        "data": {"size": list(SIZE), "train_samples": 2, "val_samples": 1},
        "optim": {"iterations": 1, "batch_size": 2},
        "eval": {"interval": 1000, "batch_size": 2, "plots": False},
        "output_dir": str(tmp_path / "run"),
        "progress": False,
        "tensorboard": False,
    }
    trainer = Trainer(from_dict(raw))
    assert trainer.warm_modality == "rgb"
    expert, _ = load_checkpoint(rgb)
    x, y = inputs()
    with torch.no_grad():
        fused, alone = trainer.model.eval()(x, y)[OUT], expert.eval()(x)[OUT]
    assert (fused - alone).abs().max() <= 1e-5 * alone.abs().max()
    with pytest.raises(ConfigError, match="init.warm"):
        from_dict({**raw, "model": {**raw["model"], "arch": "late"}})
    with pytest.raises(ConfigError, match="init.warm"):
        from_dict({**raw, "init": {**raw["init"], "warm": "coldest"}})
    with pytest.raises(ConfigError, match="init.blend"):
        from_dict({**raw, "init": {**raw["init"], "blend": 1.0}})
    with pytest.raises(ConfigError, match="init.blend"):
        from_dict({**raw, "init": {**raw["init"], "warm": None, "blend": 0.5}})
    # blended: the trainer fits the maps on training crops and the step-0 logits change
    blended = Trainer(from_dict({**raw, "init": {**raw["init"], "blend": 0.5}}))
    with torch.no_grad():
        mixed = blended.model.eval()(x, y)[OUT]
    assert (mixed - alone).abs().max() > 1e-3 * alone.abs().max()


@pytest.mark.parametrize("block", ["fuse_aspp", "fuse_quarter"])
def test_blend_mixes_the_mapped_other_input_in_exactly(block):
    model, _, _ = warm_ssma("aux")
    fuse = getattr(model.eval(), block)
    channels = fuse.up.out_channels // 2
    g = torch.Generator().manual_seed(5)
    a, b = (torch.randn(2, channels, 6, 8, generator=g) for _ in range(2))
    weight = torch.randn(channels, channels, generator=g) / channels**0.5
    bias = torch.randn(channels, generator=g)
    with torch.no_grad():
        passed = fuse(a, b)
        fuse.blend(1, weight, bias, 0.25)
        out = fuse(a, b)
    assert torch.allclose(passed, b, atol=1e-4)  # the warm start passed aux through
    mapped = torch.einsum("oc,nchw->nohw", weight, a) + bias[:, None, None]
    assert torch.allclose(out, 0.75 * b + 0.25 * mapped, atol=1e-4)


def test_blend_of_a_stream_that_equals_the_warm_one_changes_nothing():
    """Two identical experts on identical inputs: the fitted maps are the identity (R^2 ~ 1)."""
    experts = {"rgb": trained_like_expert("rgb", 1), "aux": trained_like_expert("aux", 1)}
    model = build_model("ssma", "lite", 6)
    for name, expert in experts.items():
        stages.load_expert(model, name, expert)
    stages.warm_start(model, "aux", experts["aux"])
    rgb, _ = inputs()
    fits = stages.blend_other_stream(model, "aux", {"rgb": rgb, "aux": rgb}, 0.5)
    assert len(fits) == 3 and all(f > 0.999 for f in fits)
    with torch.no_grad():
        fused, alone = model.eval()(rgb, rgb)[OUT], experts["aux"](rgb)[OUT]
    assert (fused - alone).abs().max() <= 1e-2 * alone.abs().max()
