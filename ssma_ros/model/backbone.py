"""Full pre-activation ResNet-50 with multiscale residual units (AdapNet++ encoder).

Follows the released AdapNet++ code (reference/ssma_paper.md §1): a learned BN on the raw input
replaces mean subtraction; stem 7x7/2 conv + BN + ReLU + 3x3/2 max-pool; stride 2 on the 3x3 conv
of the first unit of stages 1 and 2 (paper blocks 2 and 3); stage 3 (block 4) is dilated, so the
output stride is 16. Every stage ends with BN + ReLU, so its output (the skips b1, b2 and the
eASPP input) is already activated and the first unit of the next stage does not pre-activate.
One deliberate simplification: the block-1 unit-1 projection shortcut is taken from the unit
input rather than from its first 1x1 conv (same parameter count, standard pre-act ResNet).
"""

from __future__ import annotations

import torch
from torch import nn

from ssma_ros.model.config import ModelConfig
from ssma_ros.model.layers import conv


class MultiscaleConv(nn.Module):
    """3x3 conv split along its output channels into halves of two dilations.

    Half A (dilation r1) and half B (dilation r2) see the same input and are concatenated; the
    parameters are those of one 3x3 conv.
    """

    def __init__(self, in_ch: int, out_ch: int, r1: int, r2: int) -> None:
        super().__init__()
        half = out_ch // 2
        self.a = conv(in_ch, half, 3, dilation=r1)
        self.b = conv(in_ch, out_ch - half, 3, dilation=r2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], dim=1)


class PreActBottleneck(nn.Module):
    """[BN-ReLU] -> 1x1 -> BN-ReLU -> 3x3 (or multiscale) -> BN-ReLU -> 1x1 (no BN), + shortcut."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        dilation: int = 1,
        multiscale: tuple[int, int] | None = None,
        preact: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        mid = out_ch // 4
        # The input is already BN-ReLU'd when it comes from the stem or a stage output.
        self.preact: nn.Module = (
            nn.Sequential(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=False))
            if preact
            else nn.Identity()
        )
        self.conv1 = conv(in_ch, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        if multiscale is None:
            self.conv2: nn.Module = conv(mid, mid, 3, stride=stride, dilation=dilation)
        else:
            self.conv2 = MultiscaleConv(mid, mid, *multiscale)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = conv(mid, out_ch, 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_ch != out_ch
        self.shortcut = conv(in_ch, out_ch, 1, stride=stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preact(x)
        # Pre-activation ResNet: a projection sees the activated input, an identity the raw sum.
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.relu(self.bn1(self.conv1(pre)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.dropout(self.conv3(out))
        return out + identity


class Stage(nn.Sequential):
    """The units of one ResNet block, then BN + ReLU on the block output."""

    def __init__(self, units: list[PreActBottleneck], out_ch: int) -> None:
        super().__init__(*units, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """Returns the outputs of stage 0 (1/4, skip b1), stage 1 (1/8, skip b2) and stage 3 (1/16)."""

    def __init__(self, stem: nn.Module, stages: list[Stage]) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b1 = self.stages[0](self.stem(x))
        b2 = self.stages[1](b1)
        b4 = self.stages[3](self.stages[2](b2))
        return b1, b2, b4


def build_encoder(config: ModelConfig, in_channels: int) -> Encoder:
    stem = nn.Sequential(
        nn.BatchNorm2d(in_channels),  # learned input normalisation of the released code
        nn.Conv2d(in_channels, config.stem_width, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(config.stem_width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
    )
    stages = []
    in_ch = config.stem_width
    last_stage = len(config.widths) - 1
    for s, (width, n_units) in enumerate(zip(config.widths, config.units)):
        units = []
        for u in range(n_units):
            is_last = s == last_stage and u == n_units - 1
            units.append(
                PreActBottleneck(
                    in_ch,
                    width,
                    stride=config.strides[s] if u == 0 else 1,
                    dilation=config.dilations[s],
                    multiscale=config.unit_dilations(s, u),
                    preact=u > 0,
                    dropout=config.dropout if is_last else 0.0,
                )
            )
            in_ch = width
        stages.append(Stage(units, width))
    return Encoder(stem, stages)
