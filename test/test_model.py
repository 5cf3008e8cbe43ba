"""Networks (AdapNet++, SSMA, early/late fusion), configs, loss, checkpoints and model info."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ssma_ros.model import (
    CONFIGS,
    ModelConfig,
    SegLoss,
    build_model,
    capture_gates,
    get_config,
    load_checkpoint,
    save_checkpoint,
)
from ssma_ros.model.adapnet import Expert
from ssma_ros.model.backbone import MultiscaleConv
from ssma_ros.model.base import OUT, SIDE_EIGHTH, SIDE_QUARTER, SegmentationModel
from ssma_ros.model.info import count_flops, count_params
from ssma_ros.model.info_cli import main as info_main

ARCHS = ("adapnet", "ssma", "early", "late")
TWO_INPUTS = ("ssma", "early", "late")


def inputs(arch: str, n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    count = 2 if arch in TWO_INPUTS else 1
    return tuple(torch.randn(n, 3, h, w, generator=g) for _ in range(count))


@pytest.fixture(scope="module")
def lite_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {arch: build_model(arch, "lite", 12) for arch in ARCHS}


# --- full size ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_adapnet() -> torch.nn.Module:
    return build_model("adapnet", "full", 12)


def test_full_parameter_counts_match_the_paper(full_adapnet) -> None:
    """Parameter counts with 12 classes are within 1 % of the published ones.

    Trainable parameters (nn.Parameter elements; BN running mean/var are buffers and not counted)
    must be within 1 % of the published 30.20 M (AdapNet++) and 56.44 M (SSMA). SSMA is built on
    the meta device: counting needs shapes, not weights. One tiny forward checks the full network
    end to end.
    """
    _, adapnet_params = count_params(full_adapnet)
    print(f"full AdapNet++: {adapnet_params:,} params")
    assert abs(adapnet_params / 30.20e6 - 1) < 0.01
    with torch.device("meta"):
        ssma = build_model("ssma", "full", 12)
    _, ssma_params = count_params(ssma)
    print(f"full SSMA: {ssma_params:,} params")
    assert abs(ssma_params / 56.44e6 - 1) < 0.01

    full_adapnet.eval()
    with torch.no_grad():
        assert full_adapnet(torch.randn(1, 3, 32, 48))[OUT].shape == (1, 12, 32, 48)


def test_full_config_has_the_paper_dilations() -> None:
    full = get_config("full")
    assert full.unit_dilations(1, 3) == (1, 2)
    assert [full.unit_dilations(2, u) for u in range(2, 6)] == [(1, 2), (1, 4), (1, 8), (1, 16)]
    assert [full.unit_dilations(3, u) for u in range(3)] == [(2, 4), (2, 8), (2, 16)]
    assert full.unit_dilations(2, 0) is None


# --- structure ------------------------------------------------------------------------------


def test_multiscale_unit_uses_configured_rates_and_same_parameters_as_a_3x3(full_adapnet) -> None:
    model = full_adapnet
    unit = model.expert.encoder.stages[3][2]  # res5c
    assert isinstance(unit.conv2, MultiscaleConv)
    assert unit.conv2.a.dilation == (2, 2) and unit.conv2.b.dilation == (16, 16)
    mid = 2048 // 4
    assert sum(p.numel() for p in unit.conv2.parameters()) == 9 * mid * mid
    plain = model.expert.encoder.stages[2][0].conv2  # res4a: strided single-scale
    assert isinstance(plain, torch.nn.Conv2d) and plain.stride == (2, 2)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(32, 32), (64, 96), (112, 80)])
def test_output_is_one_type_in_eval_and_train(
    lite_models, arch: str, size: tuple[int, int]
) -> None:
    """A dict in both modes: the logits under "out"; the side heads in train mode only."""
    model = lite_models[arch]
    h, w = size
    model.eval()
    with torch.no_grad():
        out = model(*inputs(arch, 1, h, w))
    assert type(out) is dict and set(out) == {OUT} and out[OUT].shape == (1, 12, h, w)
    model.train()
    with torch.no_grad():
        outs = model(*inputs(arch, 2, h, w))
    assert type(outs) is dict and set(outs) == {OUT, SIDE_QUARTER, SIDE_EIGHTH}
    assert all(o.shape == (2, 12, h, w) for o in outs.values())


def test_model_attributes(lite_models) -> None:
    for arch, model in lite_models.items():
        assert model.arch == arch and model.num_classes == 12 and model.config == CONFIGS["lite"]
    assert lite_models["adapnet"].input_names == ("rgb",)
    assert lite_models["ssma"].input_names == ("rgb", "aux")
    aux_net = build_model("adapnet", "lite", 5, modality="aux")
    assert aux_net.input_names == ("aux",)
    with pytest.raises(ValueError, match="'aux'"):
        aux_net(torch.zeros(1, 3, 40, 32))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(30, 32), (32, 40), (8, 8)])
def test_sizes_not_divisible_by_16_raise(lite_models, arch: str, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        lite_models[arch](*inputs(arch, 1, *size))


def test_mismatched_or_malformed_inputs_raise(lite_models) -> None:
    with pytest.raises(ValueError, match="share batch and size"):
        lite_models["ssma"](torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 48))
    with pytest.raises(ValueError, match="3 channels"):
        lite_models["ssma"](torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        lite_models["adapnet"](torch.zeros(3, 32, 32))


def test_build_model_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("segnet", "lite", 12)
    with pytest.raises(ValueError, match="unknown model config"):
        build_model("ssma", "huge", 12)
    with pytest.raises(ValueError, match="modality only applies"):
        build_model("ssma", "lite", 12, modality="aux")


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_every_trainable_parameter(lite_models, arch: str) -> None:
    model = lite_models[arch]
    model.train()
    model.zero_grad(set_to_none=True)
    target = torch.randint(0, 12, (2, 48, 64), generator=torch.Generator().manual_seed(1))
    SegLoss()(model(*inputs(arch, 2, 48, 64)), target).backward()
    # A fresh SSMA gate's last conv is zero (gate exactly 0.5), so its first conv gets gradients
    # only once the last has moved (test_warm_start covers that step).
    later = (".down.",) if arch == "ssma" else ()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad
        and (p.grad is None or not p.grad.abs().sum() > 0)
        and not any(part in n for part in later)
    ]
    assert not missing, f"no gradient for {missing[:10]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_ssma_gates_lie_strictly_between_0_and_1(lite_models) -> None:
    model = lite_models["ssma"].eval()
    cfg = CONFIGS["lite"]
    with capture_gates(model) as gates, torch.no_grad():
        model(*inputs("ssma", 2, 64, 96))
    assert set(gates) == {"fuse_aspp", "fuse_eighth", "fuse_quarter"}
    assert gates["fuse_aspp"].shape == (2, 2 * cfg.aspp_out, 4, 6)
    assert gates["fuse_eighth"].shape == (2, 2 * cfg.skip_width, 8, 12)
    assert gates["fuse_quarter"].shape == (2, 2 * cfg.skip_width, 16, 24)
    for gate in gates.values():
        assert gate.min() > 0 and gate.max() < 1
    # The hooks are gone once the block exits, so export and later forwards see a plain model.
    assert all(not m._forward_hooks for m in model.modules())


def test_eval_mode_is_deterministic(lite_models) -> None:
    model = lite_models["ssma"].eval()
    x = inputs("ssma", 1, 48, 64)
    with torch.no_grad():
        assert torch.equal(model(*x)[OUT], model(*x)[OUT])


# --- the model contract (base.SegmentationModel) ---------------------------------------------


def test_every_arch_names_its_streams(lite_models) -> None:
    expected = {
        "adapnet": lambda m: [m.expert],
        "early": lambda m: [m.expert],
        "ssma": lambda m: [m.rgb_expert, m.aux_expert],
        "late": lambda m: [m.rgb_net.expert, m.aux_net.expert],
    }
    for arch, model in lite_models.items():
        assert isinstance(model, SegmentationModel)
        streams = model.streams()
        assert all(isinstance(s, Expert) for s in streams)
        assert [id(s) for s in streams] == [id(s) for s in expected[arch](model)], arch
        assert model.input_channels == (3,) * len(model.input_names)


@pytest.mark.parametrize("arch", ARCHS)
def test_expert_prefixes_cover_each_stream_with_tensors_that_fit(lite_models, arch) -> None:
    """Expert tensors land on tensors of their shape and cover that modality's stream whole.

    Unimodal AdapNet++ and early fusion take none.
    """
    model = lite_models[arch]
    target = model.state_dict()
    if arch in ("adapnet", "early"):
        assert model.expert_prefixes("rgb") == {}
        return
    names = {id(m): name for name, m in model.named_modules()}
    for modality, stream in zip(("rgb", "aux"), model.streams()):
        expert = build_model("adapnet", "lite", 12, modality=modality).state_dict()
        landed = set()
        for src, dst in model.expert_prefixes(modality).items():
            for key, tensor in expert.items():
                if key.startswith(src):
                    place = dst + key[len(src) :]
                    assert target[place].shape == tensor.shape, place
                    landed.add(place)
        stream_keys = {f"{names[id(stream)]}.{k}" for k in stream.state_dict()}
        assert stream_keys <= landed, modality
        assert all(k.startswith(f"{modality}_") for k in landed), modality  # its own side only
    with pytest.raises(ValueError, match="'depth'"):
        model.expert_prefixes("depth")


# --- configs --------------------------------------------------------------------------------


def test_config_dict_round_trip_and_validation() -> None:
    lite = get_config("lite")
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in lite.to_dict().items()}
    assert get_config(as_json) == lite
    assert get_config(lite) is lite
    with pytest.raises(ValueError, match="output stride"):
        dataclasses.replace(lite, strides=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="does not exist"):
        dataclasses.replace(lite, multiscale=((1, 9, 1, 2),))
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"depth": 3})


def test_lite_is_a_small_multistage_network() -> None:
    lite, full = CONFIGS["lite"], CONFIGS["full"]
    assert len(lite.widths) == 4 and lite.multiscale and sum(lite.units) < sum(full.units)
    _, params = count_params(build_model("ssma", "lite", 12))
    assert 1e6 <= params <= 3e6


# --- loss -----------------------------------------------------------------------------------


def _seg_batch(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    outputs = {k: torch.randn(2, 5, 8, 8, generator=g) for k in (OUT, SIDE_QUARTER, SIDE_EIGHTH)}
    target = torch.randint(0, 5, (2, 8, 8), generator=g)
    target[:, :2] = 0  # a band of void
    return outputs, target


def test_seg_loss_has_the_0_6_and_0_5_side_weights() -> None:
    outputs, target = _seg_batch()
    ce = {k: F.cross_entropy(o, target, ignore_index=0) for k, o in outputs.items()}
    expected = ce[OUT] + 0.6 * ce[SIDE_QUARTER] + 0.5 * ce[SIDE_EIGHTH]
    assert torch.allclose(SegLoss()(outputs, target), expected)
    assert torch.allclose(SegLoss()({OUT: outputs[OUT]}, target), ce[OUT])  # eval mode
    both = ce[OUT] + ce[SIDE_EIGHTH]
    assert torch.allclose(SegLoss(side_weights=(0.0, 1.0))(outputs, target), both)


@pytest.mark.parametrize(
    "arch, train_loss, eval_loss",
    [  # computed with the code before the model contract (tuple in train, tensor in eval)
        ("adapnet", 4.366948127746582, 1.804773211479187),
        # ssma: since issue 14 its gates start at exactly 0.5 (was 4.3970189, 1.7915001)
        ("ssma", 4.380666732788086, 1.7919939756393433),
        ("early", 4.307192325592041, 1.8079684972763062),
        ("late", 4.100599765777588, 1.8025001287460327),
    ],
)
def test_loss_of_a_fixed_batch_is_unchanged(arch, train_loss, eval_loss) -> None:
    torch.manual_seed(0)
    model = build_model(arch, "lite", 6).train()
    g = torch.Generator().manual_seed(3)
    x = [torch.randn(2, 3, 32, 48, generator=g) for _ in range(2 if arch in TWO_INPUTS else 1)]
    target = torch.randint(0, 6, (2, 32, 48), generator=g)
    target[:, :5] = 0
    torch.manual_seed(1)  # dropout
    assert SegLoss()(model(*x), target).item() == pytest.approx(train_loss, rel=1e-5)
    model.eval()
    with torch.no_grad():
        assert SegLoss()(model(*x), target).item() == pytest.approx(eval_loss, rel=1e-5)


def test_seg_loss_ignores_void_pixels() -> None:
    outputs, target = _seg_batch()
    loss = SegLoss()(outputs, target)
    void = (target == 0).unsqueeze(1).expand_as(outputs[OUT])
    changed = {k: torch.where(void, o * 10 + 3, o) for k, o in outputs.items()}
    assert torch.allclose(SegLoss()(changed, target), loss)
    valid_changed = {k: torch.where(void, o, o * 10 + 3) for k, o in outputs.items()}
    assert not torch.allclose(SegLoss()(valid_changed, target), loss)
    # Normalised over valid pixels: the loss does not shrink as the void fraction grows.
    uniform = torch.zeros(1, 5, 4, 4)
    mostly_void = torch.zeros(1, 4, 4, dtype=torch.long)
    mostly_void[0, 0, 0] = 2
    assert torch.allclose(SegLoss()({OUT: uniform}, mostly_void), torch.log(torch.tensor(5.0)))


def test_seg_loss_all_void_is_zero_not_nan() -> None:
    logits = torch.randn(1, 4, 4, 4, requires_grad=True)
    outputs = {OUT: logits, SIDE_QUARTER: logits, SIDE_EIGHTH: logits}
    loss = SegLoss()(outputs, torch.zeros(1, 4, 4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


# --- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path) -> None:
    model = build_model("ssma", "lite", 12)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    SegLoss()(model(*inputs("ssma", 2, 32, 32)), torch.randint(0, 12, (2, 32, 32))).backward()
    opt.step()
    meta = {
        "classes": [f"c{i}" for i in range(12)],
        "palette": [[i, i, i] for i in range(12)],
        "preprocess": {"rgb": {"mean": [0.5] * 3}},
        "metrics": {"miou": 0.61},
        "optimizer": opt.state_dict(),
    }
    path = save_checkpoint(tmp_path / "m.pt", model, **meta)

    record = torch.load(path, weights_only=True)
    assert record["format"] == "ssma_ros.checkpoint/1"
    assert (record["arch"], record["config"], record["num_classes"]) == ("ssma", "lite", 12)

    loaded, loaded_meta = load_checkpoint(path)
    assert not loaded.training and loaded.arch == "ssma" and loaded.config == model.config
    assert loaded_meta["classes"] == meta["classes"] and loaded_meta["metrics"] == {"miou": 0.61}
    opt.load_state_dict(loaded_meta["optimizer"])  # resumable
    model.eval()
    x = inputs("ssma", 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded(*x)[OUT], model(*x)[OUT])


def test_checkpoint_keeps_custom_config_and_modality(tmp_path) -> None:
    custom = dataclasses.replace(get_config("lite"), aux_channels=1, skip_width=8)
    model = build_model("adapnet", custom, 4, modality="aux")
    path = save_checkpoint(tmp_path / "aux.pt", model)
    assert isinstance(torch.load(path, weights_only=True)["config"], dict)
    loaded, meta = load_checkpoint(path)
    assert meta == {} and loaded.config == custom and loaded.input_names == ("aux",)
    assert loaded(torch.zeros(1, 1, 32, 32))[OUT].shape == (1, 4, 32, 32)
    assert loaded.input_channels == (1,)


def test_checkpoint_with_the_old_side_head_names_loads(tmp_path) -> None:
    """Files from before the rename call the side heads decoder.aux_quarter / aux_eighth."""
    model = build_model("late", "lite", 5)
    record = torch.load(save_checkpoint(tmp_path / "new.pt", model), weights_only=True)
    old = {k.replace("decoder.side_", "decoder.aux_"): v for k, v in record["model"].items()}
    assert "rgb_net.decoder.aux_quarter.0.weight" in old
    torch.save({**record, "model": old}, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key


def test_checkpoint_rejects_unsafe_meta_and_reserved_keys(tmp_path) -> None:
    model = build_model("adapnet", "lite", 3)
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path / "a.pt", model, stats={"hist": object()})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "b.pt", model, arch="ssma")
    torch.save({"state": 1}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="not an ssma_ros.checkpoint/1"):
        load_checkpoint(tmp_path / "c.pt")


def test_pruned_checkpoint_round_trip(tmp_path) -> None:
    tp = pytest.importorskip("torch_pruning")
    model = build_model("ssma", "lite", 6)
    example = inputs("ssma", 2, 32, 32)
    head = model.decoder
    keep = [head.up_full[0], head.refine_quarter[2][0], head.side_quarter[0], head.side_eighth[0]]
    pruner = tp.pruner.MagnitudePruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=0.25,
        ignored_layers=keep,
    )
    pruner.step()
    _, before = count_params(build_model("ssma", "lite", 6))
    _, after = count_params(model)
    assert after < 0.8 * before

    # A pruned model needs pruned=True: a plain state dict does not fit the unpruned build.
    with pytest.raises(ValueError, match="pruned=True"):
        load_checkpoint(save_checkpoint(tmp_path / "plain.pt", model))
    path = save_checkpoint(tmp_path / "pruned.pt", model, pruned=True, note="25% channels")
    torch.load(path, weights_only=True)  # the raw file is weights_only-safe
    loaded, meta = load_checkpoint(path)
    assert meta == {"note": "25% channels"} and count_params(loaded)[1] == after
    model.eval()
    x = inputs("ssma", 1, 48, 64)
    with torch.no_grad():
        assert torch.equal(loaded(*x)[OUT], model(*x)[OUT])


# --- info -----------------------------------------------------------------------------------


def test_flops_scale_with_resolution() -> None:
    model = build_model("adapnet", "lite", 12)
    small, wide = count_flops(model, 64, 64), count_flops(model, 64, 128)
    # Everything but the global-pool branches scales with the pixel count.
    assert 1.95 < wide / small <= 2.0


def test_info_cli_prints_params_and_flops(capsys) -> None:
    argv = ["--arch", "early", "--config", "lite", "--classes", "5", "--size", "64x96"]
    assert info_main(argv) == 0
    out = capsys.readouterr().out
    total, _ = count_params(build_model("early", "lite", 5))
    assert f"{total:,} total" in out and "FLOPs:" in out and "2 x MACs" in out
    with pytest.raises(SystemExit):
        info_main(["--arch", "early", "--config", "lite", "--size", "60x96"])
