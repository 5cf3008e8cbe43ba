"""Fusion baselines the paper compares SSMA against: early and late fusion.

Early fusion stacks the channels; late fusion averages the logits of two unimodal networks.
Both take `forward(rgb, aux)` like SSMA.
"""

from __future__ import annotations

import torch
from torch import nn

from ssma_ros.model.adapnet import AdapNetPP, Expert
from ssma_ros.model.base import SegmentationModel, SegOutput
from ssma_ros.model.config import ModelConfig
from ssma_ros.model.decoder import Decoder


class EarlyFusion(SegmentationModel):
    """AdapNet++ on cat(rgb, aux) along channels (rgb_channels + aux_channels inputs).

    It has a single stream and no unimodal expert to start from.
    """

    arch = "early"

    def __init__(
        self, expert: Expert, decoder: Decoder, config: ModelConfig, num_classes: int
    ) -> None:
        super().__init__(
            config, num_classes, ("rgb", "aux"), (config.rgb_channels, config.aux_channels)
        )
        self.expert = expert
        self.decoder = decoder

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> SegOutput:
        self.check_inputs(rgb, aux)
        return self.decoder(*self.expert(torch.cat([rgb, aux], dim=1)))

    def streams(self) -> list[nn.Module]:
        return [self.expert]


class LateFusion(SegmentationModel):
    """Two AdapNet++ networks whose logits (and side heads) are averaged.

    Averaging the side heads in training too lets the same loss apply. Each network starts
    from a complete trained AdapNet++ of its modality.
    """

    arch = "late"

    def __init__(
        self, rgb_net: AdapNetPP, aux_net: AdapNetPP, config: ModelConfig, num_classes: int
    ) -> None:
        super().__init__(
            config, num_classes, ("rgb", "aux"), (config.rgb_channels, config.aux_channels)
        )
        self.rgb_net = rgb_net
        self.aux_net = aux_net

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> SegOutput:
        self.check_inputs(rgb, aux)
        a = self.rgb_net(rgb)
        b = self.aux_net(aux)
        return {key: 0.5 * (a[key] + b[key]) for key in a}

    def streams(self) -> list[nn.Module]:
        return [self.rgb_net.expert, self.aux_net.expert]

    def expert_prefixes(self, modality: str, warm: bool = False) -> dict[str, str]:
        self._check_modality(modality)
        return {"": f"{modality}_net."}  # the whole expert, warm or not
