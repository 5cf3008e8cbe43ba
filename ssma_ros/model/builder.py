"""`build_model`: the one entry point that turns (arch, config, num_classes) into a network."""

from __future__ import annotations

from typing import Any

from ssma_ros.model.adapnet import AdapNetPP, build_decoder, build_expert
from ssma_ros.model.base import SegmentationModel
from ssma_ros.model.config import ModelConfig, get_config
from ssma_ros.model.fusion import EarlyFusion, LateFusion
from ssma_ros.model.layers import he_init_
from ssma_ros.model.ssma import SSMA, build_ssma

ARCHS = ("adapnet", "ssma", "early", "late")
MODALITIES = ("rgb", "aux")


def build_adapnet(config: ModelConfig, num_classes: int, modality: str = "rgb") -> AdapNetPP:
    """Unimodal AdapNet++ for `modality` ("rgb" or "aux": stage-1 experts of SSMA)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    channels = config.rgb_channels if modality == "rgb" else config.aux_channels
    return AdapNetPP(
        build_expert(config, channels),
        build_decoder(config, num_classes, attention=False),
        config,
        num_classes,
        modality,
        channels,
    )


def build_model(
    arch: str,
    config: str | ModelConfig | dict[str, Any],
    num_classes: int,
    modality: str | None = None,
) -> SegmentationModel:
    """Build an initialised (He init) network.

    arch: "adapnet" (forward(x); `modality` names its input, default "rgb"), "ssma", "early" or
    "late" (forward(rgb, aux)). config: "full", "lite", a ModelConfig or its dict.
    The model keeps the `SegmentationModel` contract (base.py).
    """
    cfg = get_config(config)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if arch != "adapnet" and modality is not None:
        raise ValueError(f"modality only applies to arch 'adapnet'; {arch!r} takes rgb and aux")
    if arch == "adapnet":
        model: SegmentationModel = build_adapnet(cfg, num_classes, modality or "rgb")
    elif arch == "ssma":
        model = build_ssma(cfg, num_classes)
    elif arch == "early":
        model = EarlyFusion(
            build_expert(cfg, cfg.rgb_channels + cfg.aux_channels),
            build_decoder(cfg, num_classes, attention=False),
            cfg,
            num_classes,
        )
    elif arch == "late":
        model = LateFusion(
            build_adapnet(cfg, num_classes, "rgb"),
            build_adapnet(cfg, num_classes, "aux"),
            cfg,
            num_classes,
        )
    else:
        raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")
    he_init_(model)
    if isinstance(model, SSMA):  # He init would saturate the gates; they start at 0.5
        model.reset_gates()
    return model
