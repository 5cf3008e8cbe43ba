"""Architecture of AdapNet++ / SSMA as data.

`full` is the network of Valada et al. (IJCV 2019) with the dilation rates the paper states
(reference/ssma_paper.md §1); `lite` keeps every structural element (pre-activation bottlenecks
with multiscale units, eASPP, two-skip decoder, SSMA fusion) at a fraction of the width and depth
so that two encoders run in real time on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Total down-sampling of the encoder. The decoder up-samples by exactly x2, x2, x4: it is fixed.
OUTPUT_STRIDE = 16


@dataclass(frozen=True)
class ModelConfig:
    """Widths, depths and rates of the network. Stages are indexed 0..3 (paper blocks 1..4)."""

    stem_width: int = 64
    widths: tuple[int, ...] = (256, 512, 1024, 2048)  # stage outputs; bottleneck = width // 4
    units: tuple[int, ...] = (3, 4, 6, 3)
    strides: tuple[int, ...] = (1, 2, 2, 1)  # on the first unit of each stage; stem adds x4
    dilations: tuple[int, ...] = (1, 1, 1, 2)  # of the single-scale 3x3 convs of each stage
    # (stage, unit, r1, r2): 3x3 conv split into halves A (dilation r1) and B (dilation r2).
    multiscale: tuple[tuple[int, int, int, int], ...] = (
        (1, 3, 1, 2),  # res3d
        (2, 2, 1, 2),
        (2, 3, 1, 4),
        (2, 4, 1, 8),
        (2, 5, 1, 16),  # res4c-res4f
        (3, 0, 2, 4),
        (3, 1, 2, 8),
        (3, 2, 2, 16),  # res5a-res5c
    )
    aspp_width: int = 64  # inner width of the three atrous branches
    aspp_out: int = 256
    aspp_rates: tuple[int, ...] = (3, 6, 12)
    decoder_width: int = 256
    skip_width: int = 24
    ssma_eta_aspp: int = 16
    ssma_eta_skip: int = 6
    # Drop probability on the residual branch of the last unit (released code: keep_prob 0.3).
    dropout: float = 0.7
    rgb_channels: int = 3
    aux_channels: int = 3  # every modality enters as a 3-channel image in the paper

    def __post_init__(self) -> None:
        n = len(self.widths)
        if n != 4 or len(self.units) != n or len(self.strides) != n or len(self.dilations) != n:
            raise ValueError("widths, units, strides and dilations must each have 4 entries")
        stride = 4
        for s in self.strides:
            stride *= s
        if stride != OUTPUT_STRIDE:
            raise ValueError(
                f"stem (x4) times stage strides {self.strides} gives output stride {stride}; "
                f"the decoder needs exactly {OUTPUT_STRIDE}"
            )
        if any(w % 8 for w in self.widths):
            raise ValueError(
                f"stage widths {self.widths} must be multiples of 8 "
                "(bottleneck = width / 4, split in two halves)"
            )
        if len(self.aspp_rates) != 3:
            raise ValueError(f"eASPP needs 3 atrous rates, got {self.aspp_rates}")
        seen = set()
        for stage, unit, r1, r2 in self.multiscale:
            if not (0 <= stage < n and 0 <= unit < self.units[stage]):
                raise ValueError(f"multiscale unit ({stage}, {unit}) does not exist")
            if unit == 0 and self.strides[stage] != 1:
                raise ValueError(f"stage {stage} unit 0 is strided and cannot be multiscale")
            if min(r1, r2) < 1 or (stage, unit) in seen:
                raise ValueError(f"bad multiscale entry {(stage, unit, r1, r2)}")
            seen.add((stage, unit))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def unit_dilations(self, stage: int, unit: int) -> tuple[int, int] | None:
        """(r1, r2) of a multiscale unit, or None for a single-scale unit."""
        for s, u, r1, r2 in self.multiscale:
            if (s, u) == (stage, unit):
                return r1, r2
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of ints/floats/tuples: safe for torch.load(weights_only=True) and JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")

        def tuples(v: Any) -> Any:  # JSON turns tuples into lists
            return tuple(tuples(x) for x in v) if isinstance(v, (list, tuple)) else v

        return cls(**{k: tuples(v) for k, v in data.items()})


CONFIGS: dict[str, ModelConfig] = {
    "full": ModelConfig(),
    "lite": ModelConfig(
        stem_width=24,
        widths=(48, 96, 192, 320),
        units=(1, 2, 3, 2),
        multiscale=((1, 1, 1, 2), (2, 1, 1, 2), (2, 2, 1, 4), (3, 0, 2, 4), (3, 1, 2, 8)),
        aspp_width=16,
        aspp_out=64,
        decoder_width=48,
        skip_width=16,
        ssma_eta_aspp=8,  # 128 -> 16 -> 128: eta 16 would leave an 8-channel bottleneck
        ssma_eta_skip=4,  # 32 -> 8 -> 32, the same 8 channels as the full skips (48 / 6)
        dropout=0.3,  # less capacity to regularise than the full net
    ),
}


def get_config(name_or_config: str | ModelConfig | dict[str, Any]) -> ModelConfig:
    """Return a named config ("full", "lite"), a ModelConfig, or one from `ModelConfig.to_dict`."""
    if isinstance(name_or_config, ModelConfig):
        return name_or_config
    if isinstance(name_or_config, dict):
        return ModelConfig.from_dict(name_or_config)
    if name_or_config not in CONFIGS:
        raise ValueError(f"unknown model config {name_or_config!r}; choose from {sorted(CONFIGS)}")
    return CONFIGS[name_or_config]


def config_name(config: ModelConfig) -> str | None:
    """Return the CONFIGS name of a config, or None for a custom one."""
    for name, known in CONFIGS.items():
        if known == config:
            return name
    return None
