"""Training-speed options: optim.amp (bf16 tested on this CPU), channels_last, compile."""

from __future__ import annotations

import csv

import pytest
import torch
from test_train import tiny

from ssma_ros.train.config import ConfigError, from_dict
from ssma_ros.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def conv_dtypes(trainer: Trainer) -> list[torch.dtype]:
    """Run one training step and return the output dtypes of the first stem conv."""
    seen: list[torch.dtype] = []
    conv = trainer.model.rgb_expert.encoder.stem[1]
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    trainer.run(stop_at=trainer.iteration + 1)
    handle.remove()
    return seen


def test_bf16_autocast_trains_and_loss_falls(tmp_path):
    cfg = tiny(
        tmp_path,
        optim={"iterations": 12, "batch_size": 2, "lr": 3e-3, "amp": "bf16"},
        modality_dropout={"aux": 0.0, "rgb": 0.0},
        augment={"enabled": False},
        data={"train_samples": 2},
    )
    trainer = Trainer(from_dict(cfg))
    assert conv_dtypes(trainer) == [torch.bfloat16]  # the forward ran in bf16
    trainer.run()
    rows = list(csv.DictReader((tmp_path / "run" / "train.csv").open()))
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # fp32 master


def test_bf16_run_resumes_exactly(tmp_path):
    def config(name: str) -> dict:
        return tiny(tmp_path / name, optim={"iterations": 4, "batch_size": 2, "amp": "bf16"})

    straight = Trainer(from_dict(config("a")))
    straight.run()
    first = Trainer(from_dict(config("b")))
    first.run(stop_at=2)
    resumed = Trainer(from_dict(config("b")), resume=True)
    assert resumed.iteration == 2
    resumed.run()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    losses = [list(csv.reader((tmp_path / n / "run" / "train.csv").open()))[1:] for n in "ab"]
    assert [r[:2] for r in losses[0]] == [r[:2] for r in losses[1]]


def test_evaluation_stays_fp32_and_channels_last_matches(tmp_path):
    plain = Trainer(from_dict(tiny(tmp_path / "a")))
    fast = Trainer(from_dict(tiny(tmp_path / "b", optim={"amp": "bf16", "channels_last": True})))
    fast.model.load_state_dict(plain.model.state_dict())
    conv = fast.model.rgb_expert.encoder.stem[1].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    # Metrics are computed in fp32 whatever the training step runs in: identical.
    for name, m in plain.evaluate_all().items():
        other = fast.evaluate_all()[name]
        assert m.confusion.tolist() == other.confusion.tolist()
    # channels_last alone (fp32) gives the same loss as the default layout.
    cl = Trainer(from_dict(tiny(tmp_path / "c", optim={"channels_last": True})))
    cl.model.load_state_dict(plain.model.state_dict())
    for model in (plain.model, cl.model):  # dropout masks follow the memory layout
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    batch = next(iter(plain._train_loader()))
    loss_plain, loss_cl = plain.step(batch), cl.step(batch)
    assert loss_cl == pytest.approx(loss_plain, rel=1e-5)


def test_compile_wraps_the_training_model_only(tmp_path):
    trainer = Trainer(from_dict(tiny(tmp_path, optim={"compile": True})))
    assert isinstance(trainer.net, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.net._orig_mod is trainer.model  # checkpoints and evaluation: the eager model


@pytest.mark.parametrize(
    "optim, device, message",
    [
        ({"amp": "fp16"}, "cpu", "fp16 needs device 'cuda'; on a CPU use bf16"),
        ({"amp": "fp8"}, "cpu", r"optim.amp: 'fp8' is not one of \['off', 'bf16', 'fp16'\]"),
        ({"amp": True}, "cpu", r"optim.amp: True is not one of"),
    ],
)
def test_amp_config_errors(tmp_path, optim, device, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(tiny(tmp_path, optim=optim, device=device))


def test_amp_off_as_yaml_reads_it():

    assert from_dict({"optim": {"amp": False}}).optim.amp == "off"  # YAML: `amp: off`
    assert from_dict({}, ["optim.amp=off"]).optim.amp == "off"
