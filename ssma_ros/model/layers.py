"""Small building blocks shared by the encoder, eASPP, decoder and fusion modules."""

from __future__ import annotations

import math

import torch
from torch import nn

from ssma_ros.model.config import OUTPUT_STRIDE


def conv(
    in_ch: int,
    out_ch: int,
    kernel: int = 1,
    stride: int = 1,
    dilation: int = 1,
    bias: bool = False,
) -> nn.Conv2d:
    """Build a 'same' padded convolution (for stride 1; stride 2 halves even sizes exactly)."""
    return nn.Conv2d(
        in_ch,
        out_ch,
        kernel,
        stride=stride,
        padding=dilation * (kernel - 1) // 2,
        dilation=dilation,
        bias=bias,
    )


def conv_bn(
    in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1, relu: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        conv(in_ch, out_ch, kernel, dilation=dilation),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def deconv_bn(in_ch: int, out_ch: int, factor: int) -> nn.Sequential:
    """Transposed conv that up-samples exactly by `factor` (kernel 2*factor), then BN."""
    return nn.Sequential(
        nn.ConvTranspose2d(
            in_ch, out_ch, 2 * factor, stride=factor, padding=factor // 2, bias=False
        ),
        nn.BatchNorm2d(out_ch),
    )


def he_init_(module: nn.Module) -> None:
    """Initialise as the released code: He (fan-in) truncated normal, BN identity, zero biases.

    std = sqrt(2 / (k*k*C_in)) for convs and transposed convs alike (no bilinear init).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            k = m.kernel_size[0] * m.kernel_size[1]
            fan_in = k * m.in_channels // m.groups
            _trunc_normal_(m.weight, math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def _trunc_normal_(t: torch.Tensor, std: float) -> None:
    """Fill `t` with Normal(0, std) truncated at +-2 std, by inverse-CDF sampling.

    One pass, unlike nn.init.trunc_normal_'s rejection loop, which takes seconds on the full
    network.
    """
    edge = math.erf(2 / math.sqrt(2))  # erf-space image of +-2 std
    t.uniform_(-edge, edge).erfinv_().mul_(std * math.sqrt(2)).clamp_(-2 * std, 2 * std)


def check_input(x: torch.Tensor, name: str, channels: int) -> None:
    """Raise a ValueError that names the input when its shape cannot go through the network."""
    if x.dim() != 4:
        raise ValueError(f"input '{name}' must be (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"input '{name}' must have {channels} channels, got {x.shape[1]}")
    h, w = x.shape[-2:]
    if h % OUTPUT_STRIDE or w % OUTPUT_STRIDE:
        raise ValueError(
            f"input '{name}' is {h}x{w}; height and width must be multiples of {OUTPUT_STRIDE} "
            f"(output stride {OUTPUT_STRIDE} with exact x2, x2, x4 up-sampling). "
            f"Resize or pad, e.g. to {_round16(h)}x{_round16(w)}"
        )


def _round16(n: int) -> int:
    return max(OUTPUT_STRIDE, int(round(n / OUTPUT_STRIDE)) * OUTPUT_STRIDE)
