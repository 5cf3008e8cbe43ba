"""Efficient atrous spatial pyramid pooling (reference/ssma_paper.md §2)."""

from __future__ import annotations

import torch
from torch import nn

from ssma_ros.model.layers import conv_bn


class ImagePooling(nn.Module):
    """Global average pool -> 1x1 conv + BN + ReLU, broadcast back to the feature size.

    Broadcasting a 1x1 map equals its bilinear up-sampling and exports as Expand, not Resize.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = conv_bn(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x)).expand(-1, -1, x.shape[2], x.shape[3])


def atrous_branch(in_ch: int, width: int, out_ch: int, rate: int) -> nn.Sequential:
    """1x1 -> width, two cascaded 3x3 convs at `rate`, 1x1 -> out_ch; each conv + BN + ReLU."""
    return nn.Sequential(
        conv_bn(in_ch, width, 1),
        conv_bn(width, width, 3, dilation=rate),
        conv_bn(width, width, 3, dilation=rate),
        conv_bn(width, out_ch, 1),
    )


class EASPP(nn.Module):
    def __init__(self, in_ch: int, width: int, out_ch: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn(in_ch, out_ch, 1)]
            + [atrous_branch(in_ch, width, out_ch, r) for r in rates]
            + [ImagePooling(in_ch, out_ch)]
        )
        # Fuse 5 * out_ch -> out_ch with BN and no ReLU, as in the released code.
        self.fuse = conv_bn(len(self.branches) * out_ch, out_ch, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))
