"""AdapNet++ decoder with multi-resolution supervision (reference/ssma_paper.md §3, §4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssma_ros.model.base import OUT, SIDE_EIGHTH, SIDE_QUARTER, SegOutput
from ssma_ros.model.layers import conv_bn, deconv_bn


class SkipAttention(nn.Module):
    """SSMA decoder attention: ReLU(BN(1x1(GAP(decoder features)))) scales the skip's channels.

    The released code uses ReLU, not a sigmoid, so the scale is unbounded above.
    """

    def __init__(self, decoder_ch: int, skip_ch: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = conv_bn(decoder_ch, skip_ch, 1)

    def forward(self, decoder: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return skip * self.proj(self.pool(decoder))


class Decoder(nn.Module):
    """AdapNet++ decoder, returning a `SegOutput` (logits; in train mode the side heads too).

    1/16 -> deconv x2 (+ skip b2) -> two 3x3 -> deconv x2 (+ skip b1) -> two 3x3 -> 1x1 -> C
    -> deconv x4. Skips arrive already projected to `skip_ch` channels (by the expert or fusion).
    """

    def __init__(
        self, in_ch: int, width: int, skip_ch: int, num_classes: int, attention: bool = False
    ) -> None:
        super().__init__()
        self.up_eighth = deconv_bn(in_ch, width, 2)
        self.refine_eighth = nn.Sequential(
            conv_bn(width + skip_ch, width, 3), conv_bn(width, width, 3)
        )
        self.up_quarter = deconv_bn(width, width, 2)
        self.refine_quarter = nn.Sequential(
            conv_bn(width + skip_ch, width, 3),
            conv_bn(width, width, 3),
            conv_bn(width, num_classes, 1),  # BN + ReLU before the last deconv, as released
        )
        self.up_full = deconv_bn(num_classes, num_classes, 4)
        self.attention_eighth = SkipAttention(width, skip_ch) if attention else None
        self.attention_quarter = SkipAttention(width, skip_ch) if attention else None
        # Deep-supervision ("side") heads on the deconv outputs, used in training only. They were
        # called aux_quarter / aux_eighth before; checkpoint.py renames those keys on load.
        self.side_quarter = conv_bn(width, num_classes, 1, relu=False)
        self.side_eighth = conv_bn(width, num_classes, 1, relu=False)

    def forward(
        self, x: torch.Tensor, skip_eighth: torch.Tensor, skip_quarter: torch.Tensor
    ) -> SegOutput:
        up8 = self.up_eighth(x)
        if self.attention_eighth is not None:
            skip_eighth = self.attention_eighth(up8, skip_eighth)
        y = self.refine_eighth(torch.cat([up8, skip_eighth], dim=1))
        up4 = self.up_quarter(y)
        if self.attention_quarter is not None:
            skip_quarter = self.attention_quarter(up4, skip_quarter)
        y = self.refine_quarter(torch.cat([up4, skip_quarter], dim=1))
        logits = self.up_full(y)
        if not self.training:
            return {OUT: logits}
        size = logits.shape[-2:]
        return {
            OUT: logits,
            SIDE_QUARTER: F.interpolate(
                self.side_quarter(up4), size=size, mode="bilinear", align_corners=False
            ),
            SIDE_EIGHTH: F.interpolate(
                self.side_eighth(up8), size=size, mode="bilinear", align_corners=False
            ),
        }
