"""SSMA: two AdapNet++ experts fused at the eASPP output and at both skips (ssma_paper.md §4)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ssma_ros.model.adapnet import Expert, build_decoder, build_expert
from ssma_ros.model.base import SegmentationModel, SegOutput
from ssma_ros.model.config import ModelConfig
from ssma_ros.model.decoder import Decoder
from ssma_ros.model.layers import conv, conv_bn


class SSMABlock(nn.Module):
    """Self-supervised model adaptation block.

    X = cat(a, b); s = sigmoid(conv3x3_up(ReLU(conv3x3_down(X)))) with 2C -> 2C/eta -> 2C
    (biased convs, no BN); output = projection(s * X) back to C channels. The gate `s` is
    per pixel and per channel and is learned only through the segmentation loss.

    Projection variant: we follow the released code (1x1 conv + BN at the eASPP level, 3x3 conv
    with bias and no BN at the skips), not the paper's 3x3 conv + BN everywhere. The released
    code produced the published checkpoints and its parameter count matches the published
    56.44 M (ours: ~56.2 M for 12 classes); a 3x3 projection on the 512-channel eASPP level adds
    1.05 M parameters and lands outside 1 % of it.

    `gate` is a separate module so that tests and tools can read the gate with a forward hook
    (see `capture_gates`) without the forward pass storing state, which keeps export clean.
    """

    def __init__(self, channels: int, eta: int, projection: nn.Module) -> None:
        super().__init__()
        both = 2 * channels
        reduced = max(1, both // eta)
        self.down = conv(both, reduced, 3, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.up = conv(reduced, both, 3, bias=True)
        self.gate = nn.Sigmoid()
        self.project = projection

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat([a, b], dim=1)
        return self.project(x * self.gate(self.up(self.relu(self.down(x)))))

    @torch.no_grad()
    def reset_gate(self) -> None:
        """Start the gate at exactly sigmoid(0) = 0.5 for every pixel and channel.

        The gate's last conv starts at zero. With PyTorch's default initialisation the gate of a
        fresh block saturates near 0 and 1 (per-pixel std ~0.33), so a new SSMA would start by
        switching random features off. `down` keeps its random weights: `up` receives gradients
        at once, `down` as soon as `up` has moved.
        """
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    @torch.no_grad()
    def select(self, index: int, source_bn: nn.BatchNorm2d | None = None) -> None:
        """Make the block output its input `index` (0: a, 1: b) unchanged (warm start).

        The gate is reset to 0.5 and the projection weights 2 on the selected channels, 0 on the
        others. A projection with BN (the eASPP level) needs the BN that produced the selected
        features (`source_bn`, the stream's last eASPP BN): its BN then undoes itself, exactly
        in eval mode and, since those features have that BN's batch statistics, up to BN's eps
        in train mode.
        """
        self.reset_gate()
        with_bn = isinstance(self.project, nn.Sequential)
        conv = self.project[0] if with_bn else self.project
        channels = conv.out_channels
        weight = torch.zeros_like(conv.weight)
        centre = conv.kernel_size[0] // 2
        rows = torch.arange(channels)
        weight[rows, index * channels + rows, centre, centre] = 2.0  # the gate halves x
        conv.weight.copy_(weight)
        if conv.bias is not None:
            conv.bias.zero_()
        if with_bn:
            if source_bn is None:
                raise ValueError("a projection with BN needs the BN of the selected features")
            bn, gamma, beta = self.project[1], source_bn.weight, source_bn.bias
            bn.running_mean.copy_(beta)
            bn.running_var.copy_(gamma * gamma)
            bn.weight.copy_(torch.sqrt(gamma * gamma + bn.eps))
            bn.bias.copy_(beta)

    @torch.no_grad()
    def blend(self, index: int, weight: torch.Tensor, bias: torch.Tensor, share: float) -> None:
        """After `select(index)`: also pass the other input through a linear map.

        The output becomes (1 - share) x input `index` + share x (weight @ other + bias) per
        pixel, exactly in eval mode (`weight`: C x C, `bias`: C, e.g. a least-squares map of the
        other stream's features onto the selected one's). The gate stays 0.5.
        """
        with_bn = isinstance(self.project, nn.Sequential)
        conv = self.project[0] if with_bn else self.project
        channels, centre = conv.out_channels, conv.kernel_size[0] // 2
        own = slice(index * channels, (index + 1) * channels)
        other = slice((1 - index) * channels, (2 - index) * channels)
        conv.weight[:, own, centre, centre] *= 1.0 - share
        conv.weight[:, other, centre, centre] = 2.0 * share * weight  # the gate halves x
        # the eASPP projection's BN is an identity after `select`: its bias adds as a conv's would
        (self.project[1].bias if with_bn else conv.bias).add_(share * bias)


def ssma_block_aspp(channels: int, eta: int) -> SSMABlock:
    return SSMABlock(channels, eta, conv_bn(2 * channels, channels, 1, relu=False))


def ssma_block_skip(channels: int, eta: int) -> SSMABlock:
    return SSMABlock(channels, eta, conv(2 * channels, channels, 3, bias=True))


class SSMA(SegmentationModel):
    """SSMA: `forward(rgb, aux)` returns a `SegOutput`.

    Each stream starts from the expert (encoder + eASPP + skip projections) of a trained
    AdapNet++ of its modality; the decoder is SSMA's own (it attends to the fused skips).
    """

    arch = "ssma"

    def __init__(
        self,
        rgb_expert: Expert,
        aux_expert: Expert,
        fuse_aspp: SSMABlock,
        fuse_eighth: SSMABlock,
        fuse_quarter: SSMABlock,
        decoder: Decoder,
        config: ModelConfig,
        num_classes: int,
    ) -> None:
        super().__init__(
            config, num_classes, ("rgb", "aux"), (config.rgb_channels, config.aux_channels)
        )
        self.rgb_expert = rgb_expert
        self.aux_expert = aux_expert
        self.fuse_aspp = fuse_aspp
        self.fuse_eighth = fuse_eighth
        self.fuse_quarter = fuse_quarter
        self.decoder = decoder

    def forward(self, rgb: torch.Tensor, aux: torch.Tensor) -> SegOutput:
        self.check_inputs(rgb, aux)
        rgb_aspp, rgb_eighth, rgb_quarter = self.rgb_expert(rgb)
        aux_aspp, aux_eighth, aux_quarter = self.aux_expert(aux)
        return self.decoder(
            self.fuse_aspp(rgb_aspp, aux_aspp),
            self.fuse_eighth(rgb_eighth, aux_eighth),
            self.fuse_quarter(rgb_quarter, aux_quarter),
        )

    def streams(self) -> list[nn.Module]:
        return [self.rgb_expert, self.aux_expert]

    def expert_prefixes(self, modality: str, warm: bool = False) -> dict[str, str]:
        self._check_modality(modality)
        prefixes = {"expert.": f"{modality}_expert."}
        if warm:  # the decoder too, except the skip attention that AdapNet++ lacks
            for name, _ in self.decoder.named_children():
                if not name.startswith("attention"):
                    prefixes[f"decoder.{name}."] = f"decoder.{name}."
        return prefixes

    def reset_gates(self) -> None:
        """Start every fusion block's gate at exactly 0.5 (`SSMABlock.reset_gate`)."""
        for block in self.fusion_blocks():
            block.reset_gate()

    @torch.no_grad()
    def start_as(self, modality: str) -> None:
        """Warm start: make the network compute exactly its `modality` expert.

        Call after `stages.load_expert(model, modality, expert, warm=True)` has copied that
        expert's stream and decoder. The fusion blocks pass the `modality` stream through
        (`SSMABlock.select`) and the decoder's skip attention scales by exactly 1 (its BN gives
        gamma 0, beta 1 before the ReLU), so step 0 of stage 2 reproduces the expert's logits; the
        gates (0.5) and the attention then learn from there.
        """
        index = self.input_names.index(modality)
        stream = self.streams()[index]
        self.fuse_aspp.select(index, stream.easpp.fuse[1])
        self.fuse_eighth.select(index)
        self.fuse_quarter.select(index)
        for attention in (self.decoder.attention_eighth, self.decoder.attention_quarter):
            bn = attention.proj[1]
            nn.init.zeros_(bn.weight)
            nn.init.ones_(bn.bias)

    def fusion_blocks(self) -> tuple[SSMABlock, SSMABlock, SSMABlock]:
        """The fusion blocks in the order of the streams' outputs (eASPP, 1/8, 1/4)."""
        return self.fuse_aspp, self.fuse_eighth, self.fuse_quarter


def build_ssma(config: ModelConfig, num_classes: int) -> SSMA:
    return SSMA(
        build_expert(config, config.rgb_channels),
        build_expert(config, config.aux_channels),
        ssma_block_aspp(config.aspp_out, config.ssma_eta_aspp),
        ssma_block_skip(config.skip_width, config.ssma_eta_skip),
        ssma_block_skip(config.skip_width, config.ssma_eta_skip),
        build_decoder(config, num_classes, attention=True),
        config,
        num_classes,
    )


@contextmanager
def capture_gates(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Collect the gate `s` of every SSMA block during forwards inside the `with` body.

    Keyed by the block's module name (e.g. "fuse_aspp"); the hooks are removed on exit.
    """
    gates: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SSMABlock):

            def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor, name: str = name) -> None:
                gates[name] = out.detach()

            handles.append(module.gate.register_forward_hook(hook))
    try:
        yield gates
    finally:
        for handle in handles:
            handle.remove()
