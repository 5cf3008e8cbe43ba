"""The training module: schedule, augmentation, modality dropout, stages, trainer, resume, CLI."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ssma_ros.data import synthetic
from ssma_ros.data.preprocess import AuxSpec, Preprocess
from ssma_ros.model.builder import build_model
from ssma_ros.model.checkpoint import load_checkpoint, save_checkpoint
from ssma_ros.train import cli, stages
from ssma_ros.train.augment import AugmentConfig, random_matrix, warp
from ssma_ros.train.config import ConfigError, ModalityDropoutSection, from_dict, load_config
from ssma_ros.train.data import FixedFrames, SegDataset, blank_rgb
from ssma_ros.train.optim import PolyLR, poly_factor
from ssma_ros.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SIZE = (48, 64)
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(tmp_path: Path, arch: str = "ssma", **sections) -> dict:
    """A raw config of a few iterations at 48x64; `sections` replace or extend its sections."""
    fused = arch != "adapnet"
    cfg = {
        "stage": "fusion" if fused else "expert",
        "model": {
            "arch": arch,
            "config": "lite",
            "modalities": ["rgb", "aux"] if fused else ["rgb"],
        },
        "data": {
            "size": list(SIZE),
            "train_samples": 8,
            "val_samples": 2,
            "eval_conditions": ["clear"],
        },
        "optim": {"iterations": 4, "batch_size": 2},
        "eval": {"interval": 1000, "batch_size": 2, "plots": False, "no_aux": False},
        "output_dir": str(tmp_path / "run"),
        "progress": False,
        "tensorboard": False,
        "log_interval": 1,
    }
    for name, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(name, {}).update(value)
        else:
            cfg[name] = value
    return cfg


def frame(index: int = 0) -> dict:
    return synthetic.SyntheticDataset("val", 1, *SIZE, conditions=("clear",))[index]


def preprocess() -> Preprocess:
    return Preprocess(*SIZE, aux_spec=AuxSpec("depth", "jet"))


# -- poly schedule ------------------------------------------------------------------------------


def test_poly_factor_values():
    assert poly_factor(0, 100) == 1.0
    assert poly_factor(50, 100, 0.9) == pytest.approx(0.5**0.9)
    assert poly_factor(75, 100, 2.0) == pytest.approx(0.0625)
    assert poly_factor(100, 100) == 0.0
    assert poly_factor(150, 100) == 0.0  # never negative past the end
    with pytest.raises(ValueError):
        poly_factor(0, 0)


def test_poly_scheduler_decays_every_group_from_its_own_base_lr():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [a], "lr": 1e-4}, {"params": [b], "lr": 1e-3}])
    sched = PolyLR(opt, max_iterations=10, power=0.9)
    for it in range(1, 11):
        opt.step()
        sched.step()
        expected = (1 - it / 10) ** 0.9
        assert sched.get_last_lr() == pytest.approx([1e-4 * expected, 1e-3 * expected])


# -- augmentation and modality dropout ----------------------------------------------------------


def test_geometric_augmentation_moves_every_modality_and_the_label_together():
    rng = np.random.default_rng(0)
    label = np.kron(rng.integers(1, 6, (6, 8)), np.ones((8, 8), np.int64)).astype(
        np.uint8
    )  # 48x64 blocks
    aux = np.repeat((label * 40)[..., None], 3, axis=2)
    cfg = AugmentConfig(scale=(0.5, 2.0))
    changed = 0
    for seed in range(8):
        m = random_matrix(np.random.default_rng(seed), SIZE, SIZE, cfg)
        warped_label = warp(label, m, SIZE, nearest=True, fill=0)
        warped_aux = warp(aux, m, SIZE, nearest=True, fill=0)
        assert warped_label.shape == SIZE and warped_aux.shape == (*SIZE, 3)
        np.testing.assert_array_equal(warped_aux[..., 0], warped_label.astype(np.int64) * 40)
        changed += not np.array_equal(warped_label, label)
    assert changed == 8
    # Zoomed far out, the border comes from outside the image: void label, "no data" aux.
    m = random_matrix(
        np.random.default_rng(1),
        SIZE,
        SIZE,
        AugmentConfig(scale=(0.5, 0.5), rotation_deg=0, skew=0),
    )
    assert warp(label, m, SIZE, True, 0)[0, 0] == 0 and warp(aux, m, SIZE, True, 0)[
        0, 0
    ].tolist() == [0, 0, 0]


def test_flip_only_augmentation_is_an_exact_mirror():
    label = np.arange(SIZE[0] * SIZE[1], dtype=np.int32).reshape(SIZE) % 251
    cfg = AugmentConfig(scale=(1.0, 1.0), rotation_deg=0, skew=0, flip=True)
    results = set()
    for seed in range(10):
        out = warp(
            label.astype(np.uint8),
            random_matrix(np.random.default_rng(seed), SIZE, SIZE, cfg),
            SIZE,
            True,
            0,
        )
        if np.array_equal(out, label):
            results.add("same")
        else:
            np.testing.assert_array_equal(out, label[:, ::-1])
            results.add("mirror")
    assert results == {"same", "mirror"}


def test_photometric_augmentation_changes_rgb_only():
    p = preprocess()
    still = AugmentConfig(scale=(1.0, 1.0), rotation_deg=0, skew=0, flip=False, photometric_p=1.0)
    plain = SegDataset(FixedFrames([frame()]), p)
    augmented = SegDataset(FixedFrames([frame()]), p, seed=3, augment=still)
    a, b = plain[0], augmented[0]
    assert torch.equal(a["aux"], b["aux"]) and torch.equal(a["label"], b["label"])
    assert (a["rgb"] - b["rgb"]).abs().mean() > 0.05


def test_modality_dropout_rate_and_blank_values_match_the_node():
    p = preprocess()
    n = 400
    ds = SegDataset(
        FixedFrames([frame()] * n), p, seed=1, dropout=ModalityDropoutSection(aux=0.3, rgb=0.1)
    )
    blank_aux = torch.from_numpy(p.blank_aux(1)[0])  # what the node feeds when aux is missing
    blank_rgb_ = torch.from_numpy(blank_rgb(p)[0])
    assert torch.allclose(blank_aux, torch.full_like(blank_aux, -1.0))  # black, normalised
    aux_dropped = rgb_dropped = 0
    for key in range(n):
        s = ds[key]
        a, r = torch.equal(s["aux"], blank_aux), torch.equal(s["rgb"], blank_rgb_)
        assert not (a and r)
        aux_dropped += a
        rgb_dropped += r
    # Binomial: 4 standard deviations.
    assert abs(aux_dropped - 0.3 * n) < 4 * math.sqrt(n * 0.3 * 0.7)
    assert abs(rgb_dropped - 0.1 * n) < 4 * math.sqrt(n * 0.1 * 0.9)
    assert all(torch.equal(ds[k]["aux"], ds[k]["aux"]) for k in range(5))  # reproducible per key


# -- stages: expert -> fusion mapping, freezing -------------------------------------------------


def expert_checkpoint(
    tmp_path: Path, modality: str, seed: int, num_classes: int = 10
) -> tuple[Path, dict]:
    torch.manual_seed(seed)
    model = build_model("adapnet", "lite", num_classes, modality=modality)
    with torch.no_grad():  # non-default BN statistics, so buffers are checked too
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5)
    path = save_checkpoint(tmp_path / f"{modality}{num_classes}.pt", model, stage="expert")
    return path, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "arch, prefixes",
    [
        ("ssma", {"expert.": "{m}_expert."}),
        ("late", {"expert.": "{m}_net.expert.", "decoder.": "{m}_net.decoder."}),
    ],
)
def test_expert_weights_land_exactly_in_each_stream(tmp_path, arch, prefixes):
    torch.manual_seed(0)
    fused = build_model(arch, "lite", 10)
    before = {k: v.clone() for k, v in fused.state_dict().items()}
    copied = set()
    for modality, seed in (("rgb", 1), ("aux", 2)):
        path, state = expert_checkpoint(tmp_path, modality, seed)
        expert, _ = load_checkpoint(path)
        n = stages.load_expert(fused, modality, expert)
        after = fused.state_dict()
        expected = 0
        for key, tensor in state.items():
            for src, dst in prefixes.items():
                if key.startswith(src):
                    target = dst.format(m=modality) + key[len(src) :]
                    assert torch.equal(after[target], tensor), target
                    copied.add(target)
                    expected += 1
        assert n == expected > 0
    # Everything else (fusion blocks, SSMA decoder) is untouched.
    for key, tensor in fused.state_dict().items():
        if key not in copied:
            assert torch.equal(tensor, before[key]), key
    if arch == "ssma":
        assert not any(k.startswith("decoder.") for k in copied)


def test_expert_mapping_rejects_what_does_not_fit(tmp_path):
    rgb_path, _ = expert_checkpoint(tmp_path, "rgb", 1)
    rgb, _ = load_checkpoint(rgb_path)
    with pytest.raises(ValueError, match="trained on 'rgb'"):
        stages.load_expert(build_model("ssma", "lite", 10), "aux", rgb)
    with pytest.raises(ValueError, match="cannot start from unimodal experts"):
        stages.load_expert(build_model("early", "lite", 10), "rgb", rgb)
    other, _ = load_checkpoint(expert_checkpoint(tmp_path, "rgb", 1, num_classes=7)[0])
    with pytest.raises(ValueError, match="does not fit"):
        stages.load_expert(build_model("late", "lite", 10), "rgb", other)  # decoder has 7 classes


def test_fusion_stage_starts_from_experts_with_slower_streams(tmp_path):
    rgb_path, rgb_state = expert_checkpoint(tmp_path, "rgb", 1)
    aux_path, aux_state = expert_checkpoint(tmp_path, "aux", 2)
    raw = tiny(
        tmp_path,
        init={"rgb": str(rgb_path), "aux": str(aux_path)},
        optim={"lr": 1e-3, "encoder_lr_scale": 0.1},
    )
    trainer = Trainer(from_dict(raw))
    state = trainer.model.state_dict()
    for prefix, expert_state in (("rgb_", rgb_state), ("aux_", aux_state)):
        for key, tensor in expert_state.items():
            if key.startswith("expert."):
                assert torch.equal(state[prefix + key], tensor), prefix + key
    streams, rest = stages.split_parameters(trainer.model)
    lrs = {id(p): g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all(lrs[id(p)] == pytest.approx(1e-4) for p in streams)
    assert all(lrs[id(p)] == pytest.approx(1e-3) for p in rest)
    assert len(lrs) == len(streams) + len(rest)


def test_finetune_stage_freezes_the_streams(tmp_path):
    torch.manual_seed(0)
    source = build_model("ssma", "lite", len(synthetic.CLASSES))
    path = save_checkpoint(tmp_path / "fusion.pt", source, stage="fusion")
    raw = tiny(
        tmp_path,
        stage="finetune",
        init={"checkpoint": str(path)},
        optim={"iterations": 2, "lr": 1e-3},
    )
    trainer = Trainer(from_dict(raw))
    trainer.run()
    model, src = trainer.model, source.state_dict()
    streams = stages.stream_modules(model)
    for module in streams:
        assert not module.training  # BN statistics and dropout fixed
        for p in module.parameters():
            assert not p.requires_grad and p.grad is None
    for key, tensor in model.state_dict().items():
        if key.startswith(("rgb_expert.", "aux_expert.")):
            assert torch.equal(tensor, src[key]), (
                key
            )  # weights and BN running statistics unchanged
    assert not torch.equal(
        model.state_dict()["decoder.up_eighth.0.weight"], src["decoder.up_eighth.0.weight"]
    )
    assert model.decoder.training and model.fuse_aspp.training
    optimised = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not optimised & {id(p) for m in streams for p in m.parameters()}


# -- trainer ------------------------------------------------------------------------------------


def test_tiny_run_loss_falls_and_writes_logs_plots_and_checkpoints(tmp_path):
    raw = tiny(
        tmp_path,
        arch="adapnet",
        augment={"enabled": False},
        data={"train_samples": 4},
        optim={"iterations": 30, "batch_size": 4, "lr": 3e-3},
        eval={"interval": 15, "plots": True, "plot_samples": 2},
        tensorboard=True,
        seed=0,
    )
    trainer = Trainer(from_dict(raw))
    results = trainer.run()
    out = Path(raw["output_dir"])
    with (out / "train.csv").open() as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows]
    assert [int(r["iteration"]) for r in rows] == list(range(1, 31))
    print("tiny adapnet run, loss per iteration:", [round(v, 3) for v in losses])
    assert losses[-1] < 0.7 * losses[0]
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])
    with (out / "eval.csv").open() as f:
        evals = list(csv.DictReader(f))
    assert [(int(r["iteration"]), r["set"]) for r in evals] == [(15, "clear"), (30, "clear")]
    assert float(evals[-1]["miou"]) == pytest.approx(results["clear"].miou, abs=1e-6)
    assert f"iou_{synthetic.CLASSES[-1]}" in evals[0]
    for name in ("curves.png", "confusion_clear.png", "samples_clear.png"):
        assert (out / "plots" / name).read_bytes()[:8] == PNG
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    model, meta = load_checkpoint(out / "last.pt")
    assert (
        model.arch == "adapnet"
        and meta["iteration"] == 30
        and meta["classes"] == list(synthetic.CLASSES)
    )
    assert Preprocess.from_dict(meta["preprocess"]) == trainer.info.preprocess
    assert meta["metrics"]["clear"] == pytest.approx(results["clear"].miou)
    _, best = load_checkpoint(out / "best.pt")
    assert best["iteration"] in (15, 30) and "resume" not in best


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    def config(name: str) -> dict:
        return tiny(
            tmp_path / name,
            optim={"iterations": 4, "batch_size": 2},
            modality_dropout={"aux": 0.3, "rgb": 0.2},
            eval={"interval": 1000},
        )

    straight = Trainer(from_dict(config("a")))
    straight.run()
    first = Trainer(from_dict(config("b")))
    first.run(stop_at=2)
    assert first.iteration == 2
    resumed = Trainer(from_dict(config("b")), resume=True)
    assert resumed.iteration == 2
    resumed.run()
    assert resumed.iteration == straight.iteration == 4
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    sa, sb = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for pid, state in sa["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(sb["state"][pid][name], value, rtol=0, atol=1e-6)
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()
    losses = [list(csv.reader((tmp_path / n / "run" / "train.csv").open()))[1:] for n in "ab"]
    assert [r[:2] for r in losses[0]] == [r[:2] for r in losses[1]]  # same iterations, same losses


def write_cityscapes(root: Path, split: str, n: int) -> None:
    """A tiny Cityscapes copy in the released layout: sky above, cars in the middle, road below."""
    import json

    import cv2

    rng = np.random.default_rng(len(split))
    h, w = 64, 128
    for i in range(n):
        folders = {
            k: root / k / split / "aachen"
            for k in ("leftImg8bit", "disparity", "camera", "gtFine")
        }
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        stem = f"aachen_{i:06d}_000019"
        ids = np.full((h, w), 7, np.uint8)  # road
        ids[: h // 3] = 23  # sky
        ids[h // 3 : h // 2, 20 + 10 * i : 70 + 10 * i] = 26  # car
        rgb = np.select(
            [ids[..., None] == 23, ids[..., None] == 26],
            [[70, 130, 180], [10, 10, 140]],
            [[128, 64, 128]],
        ).astype(np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
        disparity = np.where(ids == 23, 0, np.linspace(2, 60, h)[:, None] * 256 + 1).astype(
            np.uint16
        )
        cv2.imwrite(str(folders["leftImg8bit"] / f"{stem}_leftImg8bit.png"), rgb[..., ::-1])
        cv2.imwrite(str(folders["disparity"] / f"{stem}_disparity.png"), disparity)
        cv2.imwrite(str(folders["gtFine"] / f"{stem}_gtFine_labelIds.png"), ids)
        (folders["camera"] / f"{stem}_camera.json").write_text(
            json.dumps(
                {
                    "intrinsic": {"fx": 140.0, "fy": 140.0, "u0": 64.0, "v0": 32.0},
                    "extrinsic": {"baseline": 0.21},
                }
            )
        )


def test_trains_on_a_dataset_reader(tmp_path):
    from ssma_ros.data.readers import READERS
    from ssma_ros.train.config import SOURCES

    assert set(SOURCES) == {"synthetic", *READERS}
    root = tmp_path / "cityscapes"
    write_cityscapes(root, "train", 4)
    write_cityscapes(root, "val", 3)
    raw = tiny(
        tmp_path,
        data={
            "source": "cityscapes",
            "root": str(root),
            "size": [32, 64],
            "val_samples": 2,
            "aux_encoding": "hha",
        },
        eval={"no_aux": True},
    )
    trainer = Trainer(from_dict(raw))
    assert trainer.info.classes[:2] == ("void", "sky") and len(trainer.info.classes) == 12
    assert (
        sorted(trainer.eval_sets) == ["val", "val_no_aux"] and len(trainer.eval_sets["val"]) == 2
    )
    assert len(trainer.train_set) == 4
    sample = trainer.eval_sets["val"][0]
    assert sample["aux"].shape == (3, 32, 64) and set(sample["label"].unique().tolist()) == {
        1,
        3,
        8,
    }
    results = trainer.run()
    assert set(results) == {"val", "val_no_aux"}
    assert int(results["val"].confusion.sum()) == 2 * 32 * 64
    with pytest.raises(ValueError, match="no split argument"):
        Trainer(from_dict(tiny(tmp_path, data={"source": "sunrgbd", "root": str(root)})))


# -- config and CLI -----------------------------------------------------------------------------


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="did you mean 'optim.lr'"):
        from_dict({"optim": {"lrr": 1e-3}})
    with pytest.raises(ConfigError, match="stage 'expert'"):
        from_dict({"stage": "expert"})
    with pytest.raises(ConfigError, match="data.size"):
        from_dict({}, ["data.size=[50,64]"])
    with pytest.raises(ConfigError, match="optim.lr: expected float"):
        from_dict({}, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="init.checkpoint"):
        from_dict({"stage": "finetune"})


def test_smoke_config_is_valid_and_small():
    cfg = load_config(ROOT / "config" / "train" / "smoke.yaml")
    assert (cfg.model.arch, cfg.model.config, cfg.data.source) == ("ssma", "lite", "synthetic")
    assert cfg.data.size == (64, 80) and cfg.optim.iterations == 20


def test_cli_trains_and_reports(tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        str(ROOT / "config" / "train" / "smoke.yaml"),
        "-o",
        f"output_dir={out}",
        "-o",
        "optim.iterations=2",
        "-o",
        f"data.size={list(SIZE)}",
        "-o",
        "data.val_samples=2",
        "-o",
        "eval.plots=false",
        "-o",
        "progress=false",
        "-o",
        "tensorboard=false",
        "-o",
        "eval.batch_size=2",
    ]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "clear: mIoU" in printed and "clear_no_aux: mIoU" in printed
    assert (out / "last.pt").exists() and (out / "best.pt").exists()
    assert cli.main(args + ["--resume"]) == 0  # already at the last iteration: evaluates only
    assert (
        cli.main([str(ROOT / "config" / "train" / "smoke.yaml"), "-o", "optim.iteration=3"]) == 2
    )
    assert "did you mean 'optim.iterations'" in capsys.readouterr().err
