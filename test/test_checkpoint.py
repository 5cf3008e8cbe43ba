"""Checkpoint files: atomic saves, and loads that name a bad file and what is intact (fault 9)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch

from ssma_ros.model.builder import build_model
from ssma_ros.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    previous_path,
    save_checkpoint,
)
from ssma_ros.train import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return [build_model("early", "lite", 4) for _ in range(2)]


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_an_interrupted_save_leaves_the_previous_file_intact(tmp_path, models, monkeypatch):
    """Fault 9: torch.save over last.pt left a truncated file and no previous copy."""
    path = save_checkpoint(tmp_path / "last.pt", models[0], iteration=10)
    real_save = torch.save

    def dies_half_way(obj, f, *args, **kwargs):
        whole = io.BytesIO()
        real_save(obj, whole, *args, **kwargs)
        half = whole.getvalue()[: len(whole.getvalue()) // 2]
        if isinstance(f, (str, os.PathLike)):
            Path(f).write_bytes(half)
        else:
            f.write(half)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="No space left on device"):
        save_checkpoint(path, models[1], iteration=20)
    monkeypatch.undo()
    model, meta = load_checkpoint(path)
    assert meta["iteration"] == 10 and same_weights(model, models[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left over


def test_keep_previous_keeps_the_replaced_file(tmp_path, models):
    path = tmp_path / "last.pt"
    save_checkpoint(path, models[0], keep_previous=True, iteration=10)
    assert not previous_path(path).exists()
    save_checkpoint(path, models[1], keep_previous=True, iteration=20)
    assert previous_path(path) == tmp_path / "last.prev.pt"
    assert load_checkpoint(path)[1]["iteration"] == 20
    assert load_checkpoint(previous_path(path))[1]["iteration"] == 10


def test_a_truncated_checkpoint_names_itself_and_the_intact_ones(tmp_path, models):
    """Fault 9: the load ended in a zip-archive traceback that did not name the file."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, models[0], keep_previous=True, iteration=10)
    save_checkpoint(path, models[1], keep_previous=True, iteration=20)
    save_checkpoint(tmp_path / "best.pt", models[0], iteration=10)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a readable checkpoint (")
    assert f"the previous one, {tmp_path / 'last.prev.pt'}, is intact: move it to last.pt" in (
        message
    )
    assert f"{tmp_path / 'best.pt'} is intact (weights only: it cannot resume training)" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "is not a readable checkpoint"),
        (None, r"is not an ssma_ros.checkpoint/1 checkpoint \(format: None\)"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_refused_by_name(tmp_path, content, message):
    path = tmp_path / "model.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(str(path))


def test_resume_from_a_truncated_last_pt_says_which_file_and_what_is_intact(tmp_path, capsys):
    out = tmp_path / "run"
    args = [str(ROOT / "config" / "train" / "smoke.yaml")]
    for override in (
        f"output_dir={out}",
        "optim.iterations=2",
        "eval.interval=1",
        "data.size=[48, 64]",
        "data.val_samples=2",
        "eval.plots=false",
        "progress=false",
        "tensorboard=false",
        "eval.batch_size=2",
    ):
        args += ["-o", override]
    assert cli.main(args) == 0
    last = out / "last.pt"
    assert previous_path(last).exists()  # the trainer keeps the last.pt it replaces
    with open(last, "r+b") as f:
        f.truncate(last.stat().st_size - 100)
    capsys.readouterr()
    assert cli.main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ssma-train: {last} is not a readable checkpoint (")
    assert f"the previous one, {out / 'last.prev.pt'}, is intact" in err
