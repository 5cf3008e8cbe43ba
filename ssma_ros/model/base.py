"""The contract every network of ssma_ros keeps (AdapNet++, SSMA, early and late fusion).

A model is a `SegmentationModel`: it knows its `arch`, `config`, `num_classes` and the names of
the inputs its forward takes in order (`input_names`: the modalities, "rgb" and/or "aux", with
`input_channels` channels each), and it answers the two questions training asks:

- `streams()`: the per-modality streams (encoder + eASPP + skip projections, what the released
  SSMA code calls an expert), which the fusion stage trains at a lower rate and the fine-tune
  stage freezes;
- `expert_prefixes(modality, warm)`: which tensors of a trained unimodal AdapNet++ of that
  modality go where in this model when it starts from experts (prefix in the expert's state
  dict -> prefix in this model's). Every answer is one more prefix pair, e.g. the decoder that
  a warm start (`warm=True`) takes from the expert it starts as.

`forward(*inputs)` returns a `SegOutput` in train and eval mode alike (see `SegOutput`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ssma_ros.model.config import ModelConfig
from ssma_ros.model.layers import check_input

#: What every model's forward returns, in train and eval mode: a dict with the logits under
#: `OUT` (N, C, H, W) and, in train mode only, the two deep-supervision ("side") heads under
#: `SIDE_QUARTER` (from the 1/4 decoder stage) and `SIDE_EIGHTH` (1/8), both up-sampled to the
#: input size. The side heads exist for the loss; eval mode skips their cost.
SegOutput = dict[str, torch.Tensor]
OUT = "out"
SIDE_QUARTER = "side_quarter"
SIDE_EIGHTH = "side_eighth"


class SegmentationModel(nn.Module):
    """Base class of the networks; subclasses set `arch` and implement forward and `streams`."""

    arch: ClassVar[str]

    def __init__(
        self,
        config: ModelConfig,
        num_classes: int,
        input_names: tuple[str, ...],
        input_channels: tuple[int, ...],
    ) -> None:
        super().__init__()
        if len(input_names) != len(input_channels):
            raise ValueError(f"input names {input_names} and channels {input_channels} differ")
        self.config = config
        self.num_classes = num_classes
        # Plain instance attributes (not properties): the pruned-checkpoint format stores and
        # restores them with setattr (see checkpoint.py).
        self.input_names = tuple(input_names)
        self.input_channels = tuple(input_channels)

    def check_inputs(self, *inputs: torch.Tensor) -> None:
        """Raise a ValueError naming the input whose shape cannot go through the network."""
        for x, name, channels in zip(inputs, self.input_names, self.input_channels):
            check_input(x, name, channels)
        first = inputs[0]
        for x, name in zip(inputs[1:], self.input_names[1:]):
            if x.shape[0] != first.shape[0] or x.shape[-2:] != first.shape[-2:]:
                raise ValueError(
                    f"inputs '{self.input_names[0]}' {tuple(first.shape)} and '{name}' "
                    f"{tuple(x.shape)} must share batch and size"
                )

    def streams(self) -> list[nn.Module]:
        """Return the per-modality streams (each an `adapnet.Expert`), in input order."""
        raise NotImplementedError

    def expert_prefixes(self, modality: str, warm: bool = False) -> dict[str, str]:
        """Map what this model takes from a trained `modality` AdapNet++ (its expert).

        Prefix in the expert's state dict -> prefix in this model's, one pair per part that
        starts from that expert; empty when this arch does not start from unimodal experts.
        `warm`: also the parts that a warm start takes from the one expert it starts as (SSMA:
        the decoder; see `SSMA.start_as`); the same as without where nothing more fits.
        """
        return {}

    def _check_modality(self, modality: str) -> None:
        if modality not in self.input_names:
            raise ValueError(f"{self.arch} takes {self.input_names}, not {modality!r}")
