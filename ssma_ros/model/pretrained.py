"""Encoder initialisation from ImageNet ResNet-50 weights on disk (reference/ssma_paper.md §1).

Two layouts are read, from ``.safetensors`` or a ``torch.save``'d state dict (``.pth``/``.pt``):

* timm ``resnetv2_50``: the pre-activation ResNet-50 of the paper's backbone family. Keys
  ``stem.conv``, ``stages.S.blocks.U.{norm1,conv1,norm2,conv2,norm3,conv3,downsample.conv}``,
  ``norm`` and the classifier ``head.fc``. Every tensor of our encoder except its input BN
  (``stem.0``, the released code's learned normalisation of the raw image) has exactly one
  source: convs 1:1; ``norm2``/``norm3`` are our ``bn1``/``bn2``; ``norm1`` pre-activates a
  unit, which in our encoder is the unit's own ``preact`` BN, or for the first unit of a stage
  the BN that ends the stage before it (the stem's BN for stage 0); timm's final ``norm`` is the
  BN that ends our last stage. Exact up to one swap: timm max-pools the stem conv output and
  then applies ``stages.0.blocks.0.norm1`` (BN + ReLU), we apply that BN + ReLU and then
  max-pool. The two agree for every channel whose BN scale is >= 0 (a monotone map commutes with
  a max); the report counts the channels where it is negative.
* torchvision ``resnet50`` (post-activation, v1.5: stride on the 3x3 conv). Its BNs sit after
  the convs, where ours sit before them, so only the conv weights are taken (``conv1``,
  ``layerN.M.conv1..3``, ``layerN.0.downsample.0``); its BN and ``fc`` tensors are listed as
  skipped and our BNs keep their initialisation.

Multiscale units take the two halves of the pretrained 3x3 kernel along its output channels
(half A, half B), which is the same convolution when both dilations are 1. A 1-channel input
(depth or thermal as one plane) gets the stem kernel summed over RGB. A file with a missing,
surplus or wrongly shaped tensor fails with the names. Nothing is downloaded: README, "Train on
your robot's data", gives the one-liner that saves such a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ssma_ros.model.backbone import Encoder, MultiscaleConv
from ssma_ros.model.base import SegmentationModel

TIMM = "timm resnetv2_50"
TORCHVISION = "torchvision resnet50"
RESNET50_UNITS = (3, 4, 6, 3)
_BN = ("weight", "bias", "running_mean", "running_var")
_BN_OPTIONAL = ("num_batches_tracked",)  # present or not depending on how the file was saved

#: value in the file, tensor it goes to -> value to copy, or None if the value does not fit
Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None]
#: source key -> the encoder keys it initialises, each with its transform
KeyMap = dict[str, list[tuple[str, Transform]]]


class PretrainedError(ValueError):
    """A weights file that does not fit the encoder; the message names the tensors."""


@dataclass
class InitReport:
    """What one `load_backbone` call did."""

    layout: str
    path: str
    taken: dict[str, str] = field(default_factory=dict)  # source key -> encoder key
    skipped: list[str] = field(default_factory=list)  # source keys read but not used
    kept: list[str] = field(default_factory=list)  # encoder keys left at their own init
    negative_scale_channels: int = 0  # timm: stem BN channels where pool/BN order matters

    def summary(self) -> str:
        if self.layout == TORCHVISION:
            return (
                f"{self.layout} from {self.path}: {len(self.taken)} conv weights taken (conv1, "
                "layerN.M.conv1-3, layerN.0.downsample.0); its BN (bn*, downsample.1) and fc "
                f"tensors skipped ({len(self.skipped)}): post-activation BN normalises other "
                "tensors than our pre-activation BN, which keeps its own init"
            )
        text = (
            f"{self.layout} from {self.path}: {len(self.taken)} tensors taken, "
            f"{len(self.skipped)} skipped ({', '.join(self.skipped)}); own init kept for "
            f"{_prefixes(self.kept)}"
        )
        if self.negative_scale_channels:
            text += (
                f"; {self.negative_scale_channels} stem BN channels have a negative scale, where "
                "BN-then-max-pool differs from timm's max-pool-then-BN"
            )
        return text


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the tensors of a .safetensors file or of a torch-saved state dict, on the CPU.

    A state dict wrapped in {"state_dict": ...} or {"model": ...} is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as err:  # safetensors raises its own error types
            raise PretrainedError(f"{path}: not a readable .safetensors file ({err})") from err
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and weights_only errors alike
        raise PretrainedError(f"{path}: not a readable torch state dict ({err})") from err
    for wrapper in ("state_dict", "model"):
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
    if not isinstance(data, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in data.values()
    ):
        raise PretrainedError(f"{path}: expected a mapping of tensor names to tensors")
    return dict(data)


def detect_layout(state: Mapping[str, torch.Tensor], path: str | Path = "") -> str:
    if "stem.conv.weight" in state:
        if "stages.0.blocks.0.norm1.weight" in state and (
            "stages.0.blocks.0.norm1.running_mean" not in state
        ):
            raise PretrainedError(
                f"{path}: a ResNetV2 with GroupNorm (a BiT model); use timm's resnetv2_50, "
                "whose norms are BatchNorm"
            )
        return TIMM
    if "conv1.weight" in state and "layer1.0.conv1.weight" in state:
        return TORCHVISION
    raise PretrainedError(
        f"{path}: neither the timm resnetv2_50 layout (stem.conv.weight, stages.*) nor the "
        f"torchvision resnet50 layout (conv1.weight, layer1.*); its first keys: "
        f"{sorted(state)[:4]}"
    )


def load_backbone(encoder: Encoder, path: str | Path) -> InitReport:
    """Copy ImageNet weights from `path` into `encoder` (in place); see the module doc."""
    state = read_state_dict(path)
    layout = detect_layout(state, path)
    mapping, optional, skip = (_timm if layout == TIMM else _torchvision)(encoder)
    expected = set(mapping) | set(skip)
    missing = sorted(expected - set(state))
    surplus = sorted(set(state) - expected - set(optional))
    if missing or surplus:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors {_names(missing)}")
        if surplus:
            parts.append(f"surplus {len(surplus)} tensors {_names(surplus)}")
        units = tuple(len(stage) for stage in _units(encoder))
        if units != RESNET50_UNITS:
            parts.append(
                f"this encoder has {units} units per stage, ResNet-50 {RESNET50_UNITS}: "
                "ImageNet weights fit model config 'full'"
            )
        raise PretrainedError(f"{path} ({layout}): " + "; ".join(parts))
    target = encoder.state_dict()
    values: dict[str, torch.Tensor] = {}
    for src, targets in mapping.items():
        for dst, transform in targets:
            value = transform(state[src], target[dst])
            if value is None:
                raise PretrainedError(
                    f"{path} ({layout}): tensor {src} {tuple(state[src].shape)} does not fit "
                    f"encoder {dst} {tuple(target[dst].shape)} (ImageNet ResNet-50 weights fit "
                    "model config 'full')"
                )
            values[dst] = value
    for src in optional:
        if src in state and optional[src] in target:
            values[optional[src]] = state[src]
    with torch.no_grad():
        for dst, value in values.items():
            target[dst].copy_(value.to(target[dst].dtype))
    taken = {src: ", ".join(dst for dst, _ in targets) for src, targets in mapping.items()}
    report = InitReport(layout, str(path), taken, sorted(skip))
    report.kept = [k for k in target if k not in values and not k.endswith(_BN_OPTIONAL)]
    if layout == TIMM:
        gamma = state["stages.0.blocks.0.norm1.weight"]
        report.negative_scale_channels = int((gamma < 0).sum())
    return report


# -- layouts ----------------------------------------------------------------------------------


def _copy(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    return src if src.shape == dst.shape else None


def _stem(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor | None:
    """Fit the 7x7 stem kernel to our input: as is for RGB, summed over RGB for one channel."""
    if dst.shape[1] == 1 and src.dim() == 4 and src.shape[1] == 3:
        src = src.sum(dim=1, keepdim=True)
    return _copy(src, dst)


def _conv2(mapping: KeyMap, src: str, unit: nn.Module, dst: str) -> None:
    """Map the 3x3 conv of a unit; a multiscale unit takes halves A and B of the kernel."""
    conv2 = unit.conv2
    if not isinstance(conv2, MultiscaleConv):
        mapping[src] = [(f"{dst}.conv2.weight", _copy)]
        return
    split = conv2.a.out_channels
    total = split + conv2.b.out_channels

    def half(lo: int, hi: int) -> Transform:
        def take(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
            # The whole kernel must fit both halves: a wider one must fail, not be cut to fit.
            return value[lo:hi] if value.shape == (total, *target.shape[1:]) else None

        return take

    mapping[src] = [
        (f"{dst}.conv2.a.weight", half(0, split)),
        (f"{dst}.conv2.b.weight", half(split, total)),
    ]


def _units(encoder: Encoder) -> list[list[nn.Module]]:
    # A Stage is its units, then BN and ReLU.
    return [list(stage)[:-2] for stage in encoder.stages]


def _timm(encoder: Encoder) -> tuple[KeyMap, dict[str, str], list[str]]:
    units = _units(encoder)
    mapping: KeyMap = {"stem.conv.weight": [("stem.1.weight", _stem)]}
    optional: dict[str, str] = {}

    def bn(src: str, dst: str) -> None:
        for name in _BN:
            mapping[f"{src}.{name}"] = [(f"{dst}.{name}", _copy)]
        for name in _BN_OPTIONAL:
            optional[f"{src}.{name}"] = f"{dst}.{name}"

    for s, stage in enumerate(units):
        for u, unit in enumerate(stage):
            src, dst = f"stages.{s}.blocks.{u}", f"stages.{s}.{u}"
            if u > 0:
                bn(f"{src}.norm1", f"{dst}.preact.0")
            elif s == 0:
                bn(f"{src}.norm1", "stem.2")
            else:  # the BN that ends the previous stage pre-activates this unit
                bn(f"{src}.norm1", f"stages.{s - 1}.{len(units[s - 1])}")
            mapping[f"{src}.conv1.weight"] = [(f"{dst}.conv1.weight", _copy)]
            bn(f"{src}.norm2", f"{dst}.bn1")
            _conv2(mapping, f"{src}.conv2.weight", unit, dst)
            bn(f"{src}.norm3", f"{dst}.bn2")
            mapping[f"{src}.conv3.weight"] = [(f"{dst}.conv3.weight", _copy)]
            if unit.shortcut is not None:
                mapping[f"{src}.downsample.conv.weight"] = [(f"{dst}.shortcut.weight", _copy)]
    last = len(units) - 1
    bn("norm", f"stages.{last}.{len(units[last])}")
    return mapping, optional, ["head.fc.bias", "head.fc.weight"]


def _torchvision(encoder: Encoder) -> tuple[KeyMap, dict[str, str], list[str]]:
    units = _units(encoder)
    mapping: KeyMap = {"conv1.weight": [("stem.1.weight", _stem)]}
    skip = [f"bn1.{n}" for n in _BN + _BN_OPTIONAL] + ["fc.weight", "fc.bias"]
    for s, stage in enumerate(units):
        for u, unit in enumerate(stage):
            src, dst = f"layer{s + 1}.{u}", f"stages.{s}.{u}"
            mapping[f"{src}.conv1.weight"] = [(f"{dst}.conv1.weight", _copy)]
            _conv2(mapping, f"{src}.conv2.weight", unit, dst)
            mapping[f"{src}.conv3.weight"] = [(f"{dst}.conv3.weight", _copy)]
            skip += [f"{src}.bn{i}.{n}" for i in (1, 2, 3) for n in _BN + _BN_OPTIONAL]
            if unit.shortcut is not None:
                mapping[f"{src}.downsample.0.weight"] = [(f"{dst}.shortcut.weight", _copy)]
                skip += [f"{src}.downsample.1.{n}" for n in _BN + _BN_OPTIONAL]
    return mapping, {}, skip


def _names(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (
        f", ... ({len(keys) - limit} more)" if len(keys) > limit else ""
    )


def _prefixes(keys: list[str]) -> str:
    modules = sorted({k.rsplit(".", 1)[0] for k in keys})
    return ", ".join(modules) if modules else "nothing"


# -- models -----------------------------------------------------------------------------------


def model_encoders(model: SegmentationModel) -> dict[str, Encoder]:
    """Find the encoders of a model by modality: one per stream (AdapNet++, SSMA, late fusion).

    Early fusion has one encoder on stacked channels: no ImageNet layout fits it.
    """
    streams = model.streams()
    if len(streams) != len(model.input_names):
        raise PretrainedError(
            f"arch {model.arch!r}: ImageNet initialisation applies to one encoder per modality "
            "(adapnet, ssma, late); early fusion's encoder sees stacked rgb + aux channels"
        )
    return {name: stream.encoder for name, stream in zip(model.input_names, streams)}


def init_backbones(model: SegmentationModel, spec: str | Mapping[str, str]) -> list[InitReport]:
    """Initialise the encoders of `model` from ImageNet weights.

    `spec` is one file for every encoder, or {modality: file} for some of them ("rgb", "aux").
    """
    encoders = model_encoders(model)
    files = dict(spec) if isinstance(spec, Mapping) else dict.fromkeys(encoders, spec)
    unknown = sorted(set(files) - set(encoders))
    if unknown:
        raise PretrainedError(
            f"init.backbone names {unknown}; this model's encoders are {sorted(encoders)}"
        )
    return [load_backbone(encoders[m], path) for m, path in files.items()]
