"""Dataset helper over the scene index space (pure numpy; the torch Dataset lives in training)."""

from __future__ import annotations

import random
from typing import Iterator, Sequence

from ssma_ros.data.synthetic.conditions import BENCHMARKS
from ssma_ros.data.synthetic.render import SyntheticScenes

SPLITS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}
AUX_KINDS = {"depth": ("depth", "32FC1"), "thermal": ("infrared", "mono16")}
#: The generator's aux channel for each aux modality of a config or bundle, the one place
#: "infrared" means its "thermal" channel (the inverse of AUX_KINDS).
GENERATOR_AUX = {modality: kind for kind, (modality, _) in AUX_KINDS.items()}


class SyntheticDataset:
    """Indexable sequence of dict samples over one split of the scene index space.

    Split ``s`` item ``i`` is scene ``SPLITS[s] + i``, so splits never share a scene.
    ``conditions`` cycle over items (item i gets ``conditions[i % len]``); ``strength`` is a
    constant or a (low, high) range drawn per item from (seed, scene index). Items are dicts
    like the dataset readers' (rgb, aux, aux_kind, aux_encoding, label, camera, name) plus
    ``condition`` and ``strength``; ``aux`` is ``"depth"`` (float32 metres, NaN invalid,
    ``32FC1``) or ``"thermal"`` (uint16 centikelvin, ``mono16``). ``benchmark`` picks the
    generator's condition set ("v1" or "v2", see ``conditions``).
    """

    def __init__(
        self,
        split: str,
        length: int,
        height: int = 240,
        width: int = 320,
        seed: int = 0,
        aux: str = "depth",
        conditions: Sequence[str] = ("clear",),
        strength: float | tuple[float, float] = 1.0,
        benchmark: str = "v1",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
        if not 0 < length <= 1_000_000:
            raise ValueError(f"length must be in 1..1000000, got {length}")
        if aux not in AUX_KINDS:
            raise ValueError(f"unknown aux {aux!r}; expected one of {tuple(AUX_KINDS)}")
        if benchmark not in BENCHMARKS:
            raise ValueError(
                f"unknown benchmark {benchmark!r}; expected one of {list(BENCHMARKS)}"
            )
        known = BENCHMARKS[benchmark]
        if not conditions or any(c not in known for c in conditions):
            raise ValueError(
                f"conditions must be a non-empty subset of {known} ({benchmark}), got {conditions}"
            )
        self.split, self.length, self.aux = split, int(length), aux
        self.conditions = tuple(conditions)
        self.strength = strength
        self.scenes = SyntheticScenes(height, width, seed, benchmark=benchmark)

    def __len__(self) -> int:
        return self.length

    def _strength(self, scene_index: int) -> float:
        if isinstance(self.strength, (int, float)):
            return float(self.strength)
        low, high = self.strength
        return random.Random(f"ssma-synthetic-strength:{self.scenes.seed}:{scene_index}").uniform(
            low, high
        )

    def __getitem__(self, i: int) -> dict:
        if not -self.length <= i < self.length:
            raise IndexError(f"item {i} out of range for {self.length} items")
        i %= self.length
        scene_index = SPLITS[self.split] + i
        condition = self.conditions[i % len(self.conditions)]
        strength = self._strength(scene_index) if condition != "clear" else 0.0
        s = self.scenes.sample(scene_index, condition, strength)
        aux_kind, aux_encoding = AUX_KINDS[self.aux]
        return {
            "rgb": s.rgb,
            "aux": s.depth if self.aux == "depth" else s.thermal,
            "aux_kind": aux_kind,
            "aux_encoding": aux_encoding,
            "label": s.label,
            "camera": s.camera,
            "name": f"synthetic/{self.split}/{scene_index:07d}/{condition}",
            "condition": condition,
            "strength": strength,
        }

    def __iter__(self) -> Iterator[dict]:
        for i in range(self.length):
            yield self[i]
