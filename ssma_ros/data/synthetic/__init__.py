"""Procedural multimodal street scenes: RGB, metric depth, thermal and exact labels.

No dataset can be downloaded in this project, so training, tests and benchmarks use this
generator. A scene is a street seen by a pinhole camera: ground plane (road and sidewalks),
building facades, boxes, poles, vehicles, people and mannequins, ray-cast per pixel with
vectorised numpy (each primitive only inside its projected bounding box).

The classes are designed so that every modality carries information the others lack:

* colour only: ``road`` vs ``sidewalk`` lie on the same plane and share one thermal model;
  only their albedo (dark asphalt vs light concrete) differs.
* geometry only: ``sidewalk`` vs ``wall`` are the same concrete (same albedo, texture and
  joints within a scene); one is horizontal, the other vertical. Depth/HHA separate them at
  once; RGB only through context and shading.
* heat only: ``person`` vs ``mannequin`` share shapes, sizes, clothing/skin colour
  distributions and placement; people are at body temperature, mannequins near ambient.

Two benchmarks share the scenes. In ``v1`` the adverse conditions (fog growing with distance,
night with noise and a headlamp, glare, rain) degrade the RGB image only; depth, thermal and
the label are identical for every condition of a scene index. ``v2`` keeps those RGB models
and adds conditions in which the depth or the thermal sensor fails, alone or with RGB
(``conditions.CONDITIONS_V2``; the physics in ``sensors`` and docs/EXPERIMENT.md).

Everything is deterministic for (seed, index, condition, strength); geometry, lighting and
labels depend on (seed, index) only.

Modules: ``scene`` (classes, materials, the random layout), ``render`` (ray casting, shading,
`SyntheticScenes`), ``sensors`` (depth and thermal models), ``conditions`` (which sensor each
condition degrades; the RGB models), ``dataset`` (`SyntheticDataset`, splits), ``memory``
(an allocator setting for rendering processes).
"""

from ssma_ros.data.synthetic.conditions import (
    BENCHMARKS,
    CONDITIONS,
    CONDITIONS_V2,
    degraded,
)
from ssma_ros.data.synthetic.dataset import AUX_KINDS, GENERATOR_AUX, SPLITS, SyntheticDataset
from ssma_ros.data.synthetic.memory import tune_allocator
from ssma_ros.data.synthetic.render import Sample, SyntheticScenes
from ssma_ros.data.synthetic.scene import (
    BOX,
    CLASSES,
    MANNEQUIN,
    PALETTE,
    PERSON,
    POLE,
    ROAD,
    SIDEWALK,
    SKY,
    VEHICLE,
    VOID,
    WALL,
)
from ssma_ros.data.synthetic.sensors import THERMAL_RANGE, THERMAL_SCALE

__all__ = [
    "AUX_KINDS",
    "GENERATOR_AUX",
    "BENCHMARKS",
    "BOX",
    "CLASSES",
    "CONDITIONS",
    "CONDITIONS_V2",
    "MANNEQUIN",
    "PALETTE",
    "PERSON",
    "POLE",
    "ROAD",
    "SIDEWALK",
    "SKY",
    "SPLITS",
    "THERMAL_RANGE",
    "THERMAL_SCALE",
    "VEHICLE",
    "VOID",
    "WALL",
    "Sample",
    "SyntheticDataset",
    "SyntheticScenes",
    "degraded",
    "tune_allocator",
]
