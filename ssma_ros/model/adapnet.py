"""AdapNet++ (one modality): expert (encoder + eASPP + skip projections) and decoder."""

from __future__ import annotations

import torch
from torch import nn

from ssma_ros.model.backbone import Encoder, build_encoder
from ssma_ros.model.base import SegmentationModel, SegOutput
from ssma_ros.model.config import ModelConfig
from ssma_ros.model.decoder import Decoder
from ssma_ros.model.easpp import EASPP
from ssma_ros.model.layers import conv_bn

#: Expert outputs: eASPP features (1/16), skip from stage 1 (1/8), skip from stage 0 (1/4).
ExpertOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class Expert(nn.Module):
    """Everything that is specific to one modality; SSMA fuses two of these."""

    def __init__(
        self, encoder: Encoder, easpp: EASPP, skip_eighth: nn.Module, skip_quarter: nn.Module
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.easpp = easpp
        self.skip_eighth = skip_eighth
        self.skip_quarter = skip_quarter

    def forward(self, x: torch.Tensor) -> ExpertOutput:
        b1, b2, b4 = self.encoder(x)
        return self.easpp(b4), self.skip_eighth(b2), self.skip_quarter(b1)


def build_expert(config: ModelConfig, in_channels: int) -> Expert:
    w = config.widths
    return Expert(
        build_encoder(config, in_channels),
        EASPP(w[3], config.aspp_width, config.aspp_out, config.aspp_rates),
        # Skip refinements: 1x1 -> skip_width + BN, no ReLU (released code).
        conv_bn(w[1], config.skip_width, 1, relu=False),
        conv_bn(w[0], config.skip_width, 1, relu=False),
    )


def build_decoder(config: ModelConfig, num_classes: int, attention: bool) -> Decoder:
    return Decoder(
        config.aspp_out, config.decoder_width, config.skip_width, num_classes, attention
    )


class AdapNetPP(SegmentationModel):
    """Unimodal AdapNet++ on one `modality` ("rgb" or "aux"). `forward(x)`: a `SegOutput`."""

    arch = "adapnet"

    def __init__(
        self,
        expert: Expert,
        decoder: Decoder,
        config: ModelConfig,
        num_classes: int,
        modality: str,
        in_channels: int,
    ) -> None:
        super().__init__(config, num_classes, (modality,), (in_channels,))
        self.expert = expert
        self.decoder = decoder
        self.modality = modality

    def forward(self, x: torch.Tensor) -> SegOutput:
        self.check_inputs(x)
        return self.decoder(*self.expert(x))

    def streams(self) -> list[nn.Module]:
        return [self.expert]
