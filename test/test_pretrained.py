"""ImageNet initialisation of the encoders (ssma_ros/model/pretrained.py).

timm and torchvision do not run on this CPU-only torch, so the state dicts are built here from
their documented key layouts and shapes, and the reference forward pass of timm's pre-activation
ResNet-50 is written with torch.nn.functional.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ssma_ros.model.backbone import build_encoder
from ssma_ros.model.config import CONFIGS, ModelConfig
from ssma_ros.model.pretrained import (
    TIMM,
    TORCHVISION,
    PretrainedError,
    init_backbones,
    load_backbone,
)

WIDTHS, UNITS = (256, 512, 1024, 2048), (3, 4, 6, 3)
#: Multiscale units and dilations off: the architecture timm's resnetv2_50 has (at output
#: stride 16: no stride on the last stage, as timm's output_stride=16 without its dilation).
PLAIN = ModelConfig(multiscale=(), dilations=(1, 1, 1, 1))


def _bn(state: dict, key: str, n: int, g: torch.Generator) -> None:
    # Positive scales: with them, BN+ReLU before or after the stem max-pool is the same.
    state[f"{key}.weight"] = torch.rand(n, generator=g) + 0.5
    state[f"{key}.bias"] = torch.randn(n, generator=g) * 0.1
    state[f"{key}.running_mean"] = torch.randn(n, generator=g) * 0.1
    state[f"{key}.running_var"] = torch.rand(n, generator=g) + 0.5
    state[f"{key}.num_batches_tracked"] = torch.tensor(0)


def _conv(out_ch: int, in_ch: int, k: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(out_ch, in_ch, k, k, generator=g) * (2.0 / (in_ch * k * k)) ** 0.5


def timm_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Build a state dict in timm's resnetv2_50 layout: random values of the right shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {"stem.conv.weight": _conv(64, 3, 7, g)}
    in_ch = 64
    for s, (width, n) in enumerate(zip(WIDTHS, UNITS)):
        mid = width // 4
        for u in range(n):
            p = f"stages.{s}.blocks.{u}"
            _bn(state, f"{p}.norm1", in_ch, g)
            state[f"{p}.conv1.weight"] = _conv(mid, in_ch, 1, g)
            _bn(state, f"{p}.norm2", mid, g)
            state[f"{p}.conv2.weight"] = _conv(mid, mid, 3, g)
            _bn(state, f"{p}.norm3", mid, g)
            state[f"{p}.conv3.weight"] = _conv(width, mid, 1, g) * 0.2
            if u == 0:
                state[f"{p}.downsample.conv.weight"] = _conv(width, in_ch, 1, g)
            in_ch = width
    _bn(state, "norm", 2048, g)
    state["head.fc.weight"] = _conv(1000, 2048, 1, g)
    state["head.fc.bias"] = torch.zeros(1000)
    return state


def torchvision_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Build a state dict in torchvision's resnet50 layout (v1.5: stride on the 3x3 conv)."""
    g = torch.Generator().manual_seed(seed)
    state = {"conv1.weight": _conv(64, 3, 7, g)}
    _bn(state, "bn1", 64, g)
    in_ch = 64
    for s, (width, n) in enumerate(zip(WIDTHS, UNITS)):
        mid = width // 4
        for u in range(n):
            p = f"layer{s + 1}.{u}"
            state[f"{p}.conv1.weight"] = _conv(mid, in_ch, 1, g)
            _bn(state, f"{p}.bn1", mid, g)
            state[f"{p}.conv2.weight"] = _conv(mid, mid, 3, g)
            _bn(state, f"{p}.bn2", mid, g)
            state[f"{p}.conv3.weight"] = _conv(width, mid, 1, g)
            _bn(state, f"{p}.bn3", width, g)
            if u == 0:
                state[f"{p}.downsample.0.weight"] = _conv(width, in_ch, 1, g)
                _bn(state, f"{p}.downsample.1", width, g)
            in_ch = width
    state["fc.weight"] = torch.randn(1000, 2048, generator=g) * 0.01
    state["fc.bias"] = torch.zeros(1000)
    return state


def reference_forward(
    state: dict[str, torch.Tensor], x: torch.Tensor, strides=(1, 2, 2, 1)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run timm's ResNetV2 forward pass over `state`, written from its layout.

    Stem conv, max-pool, pre-activation bottlenecks, final norm; returns the pre-activated
    outputs of stages 0, 1 and 3, as our encoder does.
    """

    def bn_relu(t: torch.Tensor, key: str) -> torch.Tensor:
        return F.relu(
            F.batch_norm(
                t,
                state[f"{key}.running_mean"],
                state[f"{key}.running_var"],
                state[f"{key}.weight"],
                state[f"{key}.bias"],
                training=False,
                eps=1e-5,
            )
        )

    x = F.conv2d(x, state["stem.conv.weight"], stride=2, padding=3)
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    stage_outputs = []
    for s, n in enumerate(UNITS):
        for u in range(n):
            p = f"stages.{s}.blocks.{u}"
            pre = bn_relu(x, f"{p}.norm1")
            if u == 0 and s > 0:
                stage_outputs.append(pre)  # stage s-1's output, as the next unit sees it
            stride = strides[s] if u == 0 else 1
            shortcut = (
                F.conv2d(pre, state[f"{p}.downsample.conv.weight"], stride=stride) if u == 0 else x
            )
            h = F.conv2d(pre, state[f"{p}.conv1.weight"])
            h = F.conv2d(
                bn_relu(h, f"{p}.norm2"), state[f"{p}.conv2.weight"], stride=stride, padding=1
            )
            h = F.conv2d(bn_relu(h, f"{p}.norm3"), state[f"{p}.conv3.weight"])
            x = h + shortcut
    return stage_outputs[0], stage_outputs[1], bn_relu(x, "norm")


def input_bn(encoder, x: torch.Tensor) -> torch.Tensor:
    """Our encoder's own first layer (the learned input normalisation, not in timm's network)."""
    return encoder.stem[0](x)


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet") / "resnetv2_50.safetensors"
    save_file(timm_state(), str(path))
    return path


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet") / "resnet50.pth"
    torch.save(torchvision_state(), path)
    return path


@torch.no_grad()
def test_timm_encoder_reproduces_reference_forward(timm_file):
    torch.manual_seed(0)
    encoder = build_encoder(PLAIN, 3).eval()
    report = load_backbone(encoder, timm_file)
    assert report.layout == TIMM
    assert report.skipped == ["head.fc.bias", "head.fc.weight"]
    assert report.kept == [
        "stem.0.weight",
        "stem.0.bias",
        "stem.0.running_mean",
        "stem.0.running_var",
    ]
    assert report.negative_scale_channels == 0
    x = torch.randn(2, 3, 64, 96)
    ours = encoder(x)
    ref = reference_forward(timm_state(), input_bn(encoder, x))
    assert [o.shape for o in ours] == [r.shape for r in ref]
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=0, atol=1e-5)


@torch.no_grad()
def test_multiscale_units_take_the_kernel_halves(timm_file):
    # Multiscale units with both dilations 1 are the same convolution as the pretrained kernel.
    config = ModelConfig(
        dilations=(1, 1, 1, 1), multiscale=((1, 3, 1, 1), (2, 2, 1, 1), (3, 1, 1, 1))
    )
    encoder = build_encoder(config, 3).eval()
    load_backbone(encoder, timm_file)
    x = torch.randn(1, 3, 48, 64)
    for o, r in zip(encoder(x), reference_forward(timm_state(), input_bn(encoder, x))):
        torch.testing.assert_close(o, r, rtol=0, atol=1e-5)
    # The paper's config: the halves A and B of every split kernel, in order.
    full = build_encoder(CONFIGS["full"], 3)
    load_backbone(full, timm_file)
    kernel = timm_state()["stages.2.blocks.5.conv2.weight"]
    unit = full.stages[2][5]
    assert torch.equal(torch.cat([unit.conv2.a.weight, unit.conv2.b.weight]), kernel)
    assert unit.conv2.a.dilation == (1, 1) and unit.conv2.b.dilation == (16, 16)


@torch.no_grad()
def test_one_channel_input_sums_the_stem_kernel_over_rgb(timm_file):
    encoder = build_encoder(PLAIN, 1).eval()
    load_backbone(encoder, timm_file)
    stem = timm_state()["stem.conv.weight"]
    torch.testing.assert_close(encoder.stem[1].weight, stem.sum(dim=1, keepdim=True))
    # A grey image through it equals the RGB network on the grey image in three channels.
    gray = torch.randn(1, 1, 48, 64)
    ours = encoder(gray)
    ref = reference_forward(timm_state(), input_bn(encoder, gray).expand(-1, 3, -1, -1))
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=0, atol=1e-4)


def test_torchvision_takes_conv_weights_only(torchvision_file):
    encoder = build_encoder(CONFIGS["full"], 3)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    report = load_backbone(encoder, torchvision_file)
    assert report.layout == TORCHVISION
    source = torchvision_state()
    # 1 stem + 16 units x 3 convs + 4 projections; every BN and the classifier skipped.
    assert len(report.taken) == 53
    assert sorted(report.skipped + list(report.taken)) == sorted(source)
    assert all(
        ".bn" in k or "downsample.1" in k or k.startswith(("bn1", "fc")) for k in report.skipped
    )
    after = encoder.state_dict()
    assert torch.equal(after["stem.1.weight"], source["conv1.weight"])
    assert torch.equal(after["stages.1.0.conv2.weight"], source["layer2.0.conv2.weight"])
    assert torch.equal(after["stages.3.0.shortcut.weight"], source["layer4.0.downsample.0.weight"])
    split = torch.cat([after["stages.3.2.conv2.a.weight"], after["stages.3.2.conv2.b.weight"]])
    assert torch.equal(split, source["layer4.2.conv2.weight"])
    for key, value in after.items():  # our BNs keep their own init
        if ".bn" in key or "preact" in key or key.startswith("stem.0") or key.startswith("stem.2"):
            assert torch.equal(value, before[key]), key
    assert "post-activation" in report.summary()


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s: s.pop("stages.2.blocks.4.norm3.running_var"),
            "missing 1 tensors stages.2.blocks.4.norm3.running_var",
        ),
        (
            lambda s: s.update({"stages.4.blocks.0.conv1.weight": torch.zeros(1)}),
            "surplus 1 tensors stages.4.blocks.0.conv1.weight",
        ),
        (
            lambda s: s.update({"stages.1.blocks.2.conv3.weight": torch.zeros(512, 64, 1, 1)}),
            "tensor stages.1.blocks.2.conv3.weight (512, 64, 1, 1) does not fit encoder "
            "stages.1.2.conv3.weight",
        ),
        (
            lambda s: s.update({"stages.2.blocks.3.conv2.weight": torch.zeros(300, 256, 3, 3)}),
            "tensor stages.2.blocks.3.conv2.weight (300, 256, 3, 3) does not fit encoder "
            "stages.2.3.conv2.a.weight",
        ),
    ],
)
def test_timm_file_with_a_wrong_tensor_fails_with_its_name(tmp_path, change, message):
    state = timm_state()
    change(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    encoder = build_encoder(CONFIGS["full"], 3)
    before = encoder.stem[1].weight.clone()
    with pytest.raises(PretrainedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_backbone(encoder, path)
    assert torch.equal(encoder.stem[1].weight, before)  # nothing half-loaded


def test_torchvision_file_with_a_wrong_tensor_fails_with_its_name(tmp_path):
    state = torchvision_state()
    del state["layer3.5.bn2.weight"]
    state["layer3.5.conv2.weight"] = torch.zeros(128, 256, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(PretrainedError, match=r"missing 1 tensors layer3\.5\.bn2\.weight"):
        load_backbone(build_encoder(CONFIGS["full"], 3), path)
    state["layer3.5.bn2.weight"] = torch.ones(256)
    torch.save(state, path)
    with pytest.raises(PretrainedError, match=r"layer3\.5\.conv2\.weight \(128, 256, 3, 3\)"):
        load_backbone(build_encoder(CONFIGS["full"], 3), path)


def test_lite_config_and_unknown_files_fail_clearly(tmp_path, timm_file):
    with pytest.raises(
        PretrainedError, match=r"surplus .* has \(1, 2, 3, 2\) units .* fit model config 'full'"
    ):
        load_backbone(build_encoder(CONFIGS["lite"], 3), timm_file)
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(1)}, other)
    with pytest.raises(PretrainedError, match="neither the timm resnetv2_50 layout"):
        load_backbone(build_encoder(CONFIGS["full"], 3), other)
    with pytest.raises(PretrainedError, match="no such weights file"):
        load_backbone(build_encoder(CONFIGS["full"], 3), tmp_path / "absent.safetensors")


def test_init_backbones_per_modality(timm_file, torchvision_file):
    from ssma_ros.model.builder import build_model

    model = build_model("ssma", "full", 4)
    reports = init_backbones(model, {"rgb": str(timm_file), "aux": str(torchvision_file)})
    assert [r.layout for r in reports] == [TIMM, TORCHVISION]
    stem = timm_state()["stem.conv.weight"]
    assert torch.equal(model.rgb_expert.encoder.stem[1].weight, stem)
    assert torch.equal(
        model.aux_expert.encoder.stem[1].weight, torchvision_state()["conv1.weight"]
    )
    with pytest.raises(PretrainedError, match="early fusion"):
        init_backbones(build_model("early", "full", 4), str(timm_file))
    with pytest.raises(PretrainedError, match=r"names \['depth'\]"):
        init_backbones(model, {"depth": str(timm_file)})


def test_trainer_starts_from_imagenet_weights(tmp_path, timm_file, capsys):
    from ssma_ros.train.config import from_dict
    from ssma_ros.train.trainer import Trainer

    cfg = from_dict(
        {
            "stage": "expert",
            "model": {"arch": "adapnet", "config": "full", "modalities": ["rgb"]},
            "data": {"size": [32, 48], "train_samples": 4, "val_samples": 1},
            "init": {"backbone": str(timm_file)},
            "optim": {"iterations": 1, "batch_size": 2},
            "output_dir": str(tmp_path / "run"),
            "progress": False,
            "tensorboard": False,
        }
    )
    trainer = Trainer(cfg)
    encoder = trainer.model.expert.encoder
    state = timm_state()
    assert torch.equal(encoder.stem[1].weight, state["stem.conv.weight"])
    assert torch.equal(encoder.stages[3][3].running_var, state["norm.running_var"])
    assert "init.backbone: timm resnetv2_50" in capsys.readouterr().out


@pytest.mark.parametrize(
    "init, model, message",
    [
        ({"backbone": "x.pth", "checkpoint": "c.pt"}, {}, "give one or the other"),
        ({"backbone": "x.pth"}, {"arch": "early"}, "early fusion"),
        ({"backbone": "x.pth"}, {"config": "lite"}, "fit model.config 'full'"),
        ({"backbone": {"depth": "x.pth"}}, {"config": "full"}, r"got \['depth'\]"),
    ],
)
def test_backbone_config_errors_name_the_key(init, model, message):
    from ssma_ros.train.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match=message):
        from_dict({"init": init, "model": {"config": "full", **model}})


def test_ssma_train_names_the_wrong_tensor(tmp_path, capsys):
    from ssma_ros.train.cli import main

    state = timm_state()
    del state["stages.3.blocks.1.conv2.weight"]
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    config = tmp_path / "c.yaml"
    config.write_text(
        "stage: expert\nmodel: {arch: adapnet, config: full, modalities: [rgb]}\n"
        f"init: {{backbone: {bad}}}\ndata: {{size: [32, 32], train_samples: 2, val_samples: 1}}\n"
        f"output_dir: {tmp_path / 'run'}\ntensorboard: false\nprogress: false\n"
    )
    assert main([str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing 1 tensors stages.3.blocks.1.conv2.weight" in err[0]


def test_report_counts_stem_channels_where_pool_and_bn_do_not_commute(tmp_path):
    state = timm_state()
    state["stages.0.blocks.0.norm1.weight"][:3] *= -1
    path = tmp_path / "neg.safetensors"
    save_file(state, str(path))
    report = load_backbone(build_encoder(CONFIGS["full"], 3), path)
    assert report.negative_scale_channels == 3
    assert "3 stem BN channels have a negative scale" in report.summary()
