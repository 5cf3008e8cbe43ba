"""Fusion baselines the paper compares SSMA against.

Early (channel stacking) and late (averaged logits of two unimodal streams). Both take
`forward(rgb, aux)` like SSMA.
"""

from __future__ import annotations

import torch
from torch import nn

from ssma_ros.model.adapnet import AdapNetPP, Expert
from ssma_ros.model.config import ModelConfig
from ssma_ros.model.decoder import Decoder, TrainOutput
from ssma_ros.model.layers import check_pair


class EarlyFusion(nn.Module):
    """AdapNet++ on cat(rgb, aux) along channels (rgb_channels + aux_channels inputs)."""

    arch = "early"

    def __init__(
        self, expert: Expert, decoder: Decoder, config: ModelConfig, num_classes: int
    ) -> None:
        super().__init__()
        self.expert = expert
        self.decoder = decoder
        self.config = config
        self.num_classes = num_classes
        self.input_names = ("rgb", "aux")

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> torch.Tensor | TrainOutput:
        check_pair(rgb, aux, self.config.rgb_channels, self.config.aux_channels)
        return self.decoder(*self.expert(torch.cat([rgb, aux], dim=1)))


class LateFusion(nn.Module):
    """Two AdapNet++ streams; the fused output is the mean of their logits.

    In training, it is also the mean of their auxiliary heads, so the same loss applies.
    """

    arch = "late"

    def __init__(
        self, rgb_net: AdapNetPP, aux_net: AdapNetPP, config: ModelConfig, num_classes: int
    ) -> None:
        super().__init__()
        self.rgb_net = rgb_net
        self.aux_net = aux_net
        self.config = config
        self.num_classes = num_classes
        self.input_names = ("rgb", "aux")

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> torch.Tensor | TrainOutput:
        check_pair(rgb, aux, self.config.rgb_channels, self.config.aux_channels)
        a = self.rgb_net(rgb)
        b = self.aux_net(aux)
        if isinstance(a, torch.Tensor):
            return 0.5 * (a + b)
        return tuple(0.5 * (x + y) for x, y in zip(a, b))  # type: ignore[return-value]
