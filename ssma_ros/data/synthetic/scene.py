"""Scene layout: the classes, materials and primitives of a street and their random draw.

A scene is drawn from a ``random.Random`` alone, so it depends on (seed, index) only.
"""

from __future__ import annotations

import colorsys
import math
import random
from dataclasses import dataclass

import numpy as np

CLASSES: tuple[str, ...] = (
    "void",  # unlabelled clutter (litter bins)
    "sky",
    "road",
    "sidewalk",
    "wall",
    "box",
    "pole",
    "vehicle",
    "person",
    "mannequin",
)
VOID, SKY, ROAD, SIDEWALK, WALL, BOX, POLE, VEHICLE, PERSON, MANNEQUIN = range(len(CLASSES))
PALETTE = np.array(
    [
        (0, 0, 0),
        (70, 130, 180),
        (128, 64, 128),
        (244, 35, 232),
        (102, 102, 156),
        (230, 150, 40),
        (153, 153, 153),
        (0, 0, 142),
        (220, 20, 60),
        (0, 200, 200),
    ],
    dtype=np.uint8,
)

_TEX = 256  # side of the procedural noise texture (a power of two: indices wrap with &)

# Material kinds (texture/sensor behaviour besides albedo).
_PLAIN, _CONCRETE, _ASPHALT, _GLASS = range(4)
# Primitive kinds; 0 is the ground plane.
_BOX, _CYLINDER, _SPHERE, _FACADE = 1, 2, 3, 4
_FACADE_BIN_M = 1.0  # facade height table resolution along the street (< 256 bins)
_FACADE_Z0 = -5.0


@dataclass(frozen=True)
class _Material:
    albedo: tuple[float, float, float]
    label: int
    temp_c: float
    texture: float  # albedo modulation amplitude
    tex_scale: float  # texels per metre
    kind: int = _PLAIN
    solar_k: float = 0.0  # kelvin per unit of direct sun irradiance


@dataclass(frozen=True)
class _Primitive:
    """Box (yaw about y), vertical cylinder, sphere, or a street-side facade.

    ``center``/``half`` bound the primitive (box half sizes; cylinder (r, half height, r);
    sphere (r, r, r); facade: its plane x, the street extent and the tallest building).
    Above ``split_y`` (world height) the surface shows ``upper_material``: two-tone parts
    (trousers/shirt, tyres/paint) cost one primitive instead of two.
    """

    kind: int
    center: tuple[float, float, float]
    half: tuple[float, float, float]
    material: int
    yaw: float = 0.0
    upper_material: int = -1
    split_y: float = math.inf
    side: int = 0  # facade: -1 left of the street, +1 right
    heights: tuple[float, ...] = ()  # facade: building height per _FACADE_BIN_M along z


@dataclass(frozen=True)
class _Scene:
    camera_pos: tuple[float, float, float]  # world
    rotation: np.ndarray  # (3, 3) world-from-optical
    road_half: float
    materials: list[_Material]
    primitives: list[_Primitive]
    sun_dir: tuple[float, float, float]  # world, towards the sun
    sun: float
    ambient: float
    sky_brightness: float
    cloudiness: float
    joint_spacing: float
    texture_offsets: tuple[tuple[float, float], ...]  # per material
    exposure_target: float
    air_c: float  # ambient air temperature, degC


def _rotation(yaw: float, pitch_down: float, roll: float) -> np.ndarray:
    """World (x right, y up, z forward) from camera optical frame (x right, y down, z forward)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch_down), math.sin(pitch_down)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    optical_to_level = np.diag([1.0, -1.0, 1.0])
    return r_yaw @ r_pitch @ r_roll @ optical_to_level


def _colour(
    rnd: random.Random, sat: tuple[float, float], val: tuple[float, float]
) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(rnd.random(), rnd.uniform(*sat), rnd.uniform(*val))


def _tinted(
    rnd: random.Random, level: float, tint: tuple[float, float, float]
) -> tuple[float, float, float]:
    r, g, b = (level * (t + rnd.uniform(-0.05, 0.05)) for t in tint)
    return r, g, b


_SKIN = (
    (0.55, 0.40, 0.32),
    (0.45, 0.31, 0.23),
    (0.30, 0.20, 0.14),
    (0.18, 0.12, 0.08),
    (0.62, 0.48, 0.40),
)
_TROUSERS = (
    (0.05, 0.07, 0.15),
    (0.03, 0.03, 0.03),
    (0.20, 0.20, 0.20),
    (0.35, 0.30, 0.20),
    (0.10, 0.12, 0.30),
)


def _figure_colours(rnd: random.Random) -> tuple[tuple[float, float, float], ...]:
    """Shirt, trousers, skin: one distribution shared by people and mannequins."""
    return _colour(rnd, (0.0, 0.8), (0.08, 0.7)), rnd.choice(_TROUSERS), rnd.choice(_SKIN)


class _Layout:
    """Rejection sampling of non-overlapping footprints on the street (x, z rectangles)."""

    def __init__(self, rnd: random.Random, cam_x: float) -> None:
        self.rnd = rnd
        self.taken = [(cam_x - 1.0, cam_x + 1.0, -3.0, 2.0)]  # keep the camera's spot free

    def place(
        self, xs: tuple[float, float], zs: tuple[float, float], hx: float, hz: float
    ) -> tuple[float, float] | None:
        for _ in range(12):
            x, z = self.rnd.uniform(*xs), self.rnd.uniform(*zs)
            box = (x - hx, x + hx, z - hz, z + hz)
            if all(
                box[1] < t[0] or box[0] > t[1] or box[3] < t[2] or box[2] > t[3]
                for t in self.taken
            ):
                self.taken.append(box)
                return x, z
        return None


def build_scene(rnd: random.Random) -> _Scene:
    """Draw one street scene: layout, materials, lighting."""
    road_half = rnd.uniform(2.5, 5.0)
    x_left = -road_half - rnd.uniform(2.5, 6.0)
    x_right = road_half + rnd.uniform(2.5, 6.0)
    cam_x = rnd.uniform(-road_half + 0.8, road_half - 0.8)
    cam_h = rnd.uniform(0.8, 2.0)
    rotation = _rotation(
        math.radians(rnd.uniform(-25, 25)),
        math.radians(rnd.uniform(-2, 10)),
        math.radians(rnd.uniform(-3, 3)),
    )
    ambient_c = rnd.uniform(0.0, 25.0)

    grey, dark = rnd.uniform(0.28, 0.5), rnd.uniform(0.06, 0.13)
    concrete = _tinted(rnd, grey, (1.04, 1.0, 0.92))  # slightly warm
    asphalt = _tinted(rnd, dark, (1.0, 1.0, 1.0))
    # One thermal model for road, sidewalk and wall: they differ in colour or geometry only.
    pavement_c, pavement_k = ambient_c + 1.0, 10.0
    materials = [
        _Material((0.0, 0.0, 0.0), SKY, ambient_c - rnd.uniform(20, 40), 0.0, 1.0),
        _Material(asphalt, ROAD, pavement_c, 0.25, 24.0, _ASPHALT, pavement_k),
        _Material(concrete, SIDEWALK, pavement_c, 0.12, 6.0, _CONCRETE, pavement_k),
        _Material(concrete, WALL, pavement_c, 0.12, 6.0, _CONCRETE, pavement_k),
    ]
    m_wall = 3

    def material(m: _Material) -> int:
        materials.append(m)
        return len(materials) - 1

    prims: list[_Primitive] = []
    # Facades: one plane per side with a height profile (buildings of 8-25 m along the street).
    for side, x_face in ((-1, x_left), (1, x_right)):
        heights: list[float] = []
        while len(heights) * _FACADE_BIN_M < 165.0:
            heights += [rnd.uniform(4.0, 25.0)] * int(rnd.uniform(8.0, 25.0) / _FACADE_BIN_M)
        top = max(heights)
        length = len(heights) * _FACADE_BIN_M
        prims.append(
            _Primitive(
                _FACADE,
                (x_face, top / 2, _FACADE_Z0 + length / 2),
                (0.0, top / 2, length / 2),
                m_wall,
                side=side,
                heights=tuple(heights),
            )
        )
    if rnd.random() < 0.6:  # a building closing the street
        z_end, height = rnd.uniform(35.0, 100.0), rnd.uniform(6.0, 30.0)
        prims.append(
            _Primitive(_BOX, (0.0, height / 2, z_end + 2.5), (80.0, height / 2, 2.5), m_wall)
        )

    layout = _Layout(rnd, cam_x)
    walks = ((x_left + 0.5, -road_half - 0.4), (road_half + 0.4, x_right - 0.5))
    lane = (-road_half + 0.5, road_half - 0.5)

    # Poles along the kerbs.
    for _ in range(rnd.randint(3, 7)):
        kerb = rnd.choice((-1, 1)) * (road_half + rnd.uniform(0.3, 0.8))
        radius = rnd.uniform(0.12, 0.22)
        spot = layout.place((kerb, kerb), (3.0, 35.0), radius, radius)
        if spot:
            g = rnd.uniform(0.08, 0.4)
            m = material(
                _Material(
                    (g, g * rnd.uniform(0.95, 1.1), g), POLE, ambient_c, 0.08, 8.0, solar_k=6.0
                )
            )
            height = rnd.uniform(3.0, 8.0)
            prims.append(
                _Primitive(
                    _CYLINDER, (spot[0], height / 2, spot[1]), (radius, height / 2, radius), m
                )
            )

    # Vehicles: parked at the kerb or in a lane, roughly aligned with the street. The lower
    # body is two-tone: dark tyres/sills below 0.34 m, paint above; a glass cabin on top.
    for _ in range(rnd.randint(1, 4)):
        length, width = rnd.uniform(3.8, 4.8), rnd.uniform(1.7, 1.95)
        if rnd.random() < 0.6:
            kerb = rnd.choice((-1, 1)) * (road_half - width / 2 - 0.2)
            xs = (kerb, kerb)
        else:
            xs = (-road_half + width, road_half - width)
        spot = layout.place(xs, (5.0, 40.0), width / 2 + 0.1, length / 2 + 0.2)
        if not spot:
            continue
        x, z = spot
        yaw = math.radians(rnd.uniform(-8, 8))
        engine = ambient_c + rnd.uniform(3.0, 15.0)
        m_body = material(
            _Material(
                _colour(rnd, (0.0, 0.9), (0.04, 0.8)), VEHICLE, engine, 0.04, 8.0, solar_k=6.0
            )
        )
        m_tyre = material(
            _Material((0.03, 0.03, 0.03), VEHICLE, engine - 2.0, 0.05, 8.0, solar_k=3.0)
        )
        m_glass = material(
            _Material((0.05, 0.06, 0.08), VEHICLE, ambient_c + 1.0, 0.02, 8.0, _GLASS, 3.0)
        )
        cabin = rnd.uniform(0.5, 0.65) * length / 2
        prims.append(
            _Primitive(
                _BOX, (x, 0.53, z), (width / 2, 0.53, length / 2), m_tyre, yaw, m_body, 0.34
            )
        )
        prims.append(
            _Primitive(
                _BOX, (x, 1.27, z - 0.1 * length), (width / 2 - 0.08, 0.21, cabin), m_glass, yaw
            )
        )

    # Boxes (crates, cardboard, plastic) on sidewalks and the road edge.
    for _ in range(rnd.randint(2, 5)):
        hx, hz, hy = rnd.uniform(0.3, 0.8), rnd.uniform(0.3, 0.8), rnd.uniform(0.25, 0.7)
        xs = rnd.choice(walks) if rnd.random() < 0.7 else lane
        spot = layout.place(xs, (3.0, 30.0), max(hx, hz), max(hx, hz))
        if spot:
            m = material(
                _Material(
                    _colour(rnd, (0.2, 0.8), (0.15, 0.6)),
                    BOX,
                    ambient_c + 0.5,
                    0.15,
                    10.0,
                    solar_k=8.0,
                )
            )
            prims.append(
                _Primitive(
                    _BOX, (spot[0], hy, spot[1]), (hx, hy, hz), m, rnd.uniform(0, math.pi / 2)
                )
            )

    # People and mannequins: identical geometry, colour and placement distributions; a body
    # cylinder (trousers below the hips, shirt above) and a head.
    figures = [PERSON] * rnd.randint(2, 5) + [MANNEQUIN] * rnd.randint(2, 5)
    rnd.shuffle(figures)  # placement order must not favour either class
    for label in figures:
        height = rnd.uniform(1.55, 1.95)
        radius, head_r = rnd.uniform(0.17, 0.23), 0.065 * height
        xs = rnd.choice(walks) if rnd.random() < 0.8 else lane
        spot = layout.place(xs, (2.5, 20.0), radius, radius)
        if not spot:
            continue
        shirt, trousers, skin = _figure_colours(rnd)
        if label == PERSON:  # clothing between ambient and skin temperature
            temps = (
                ambient_c + 0.5 * (31.0 - ambient_c),
                ambient_c + 0.6 * (32.0 - ambient_c),
                rnd.uniform(32.0, 35.0),
            )
            solar = 1.0
        else:
            base = ambient_c + rnd.uniform(-0.5, 1.0)
            temps, solar = (base, base, base), 3.0
        m_legs = material(_Material(trousers, label, temps[0], 0.1, 12.0, solar_k=solar))
        m_torso = material(_Material(shirt, label, temps[1], 0.1, 12.0, solar_k=solar))
        m_head = material(_Material(skin, label, temps[2], 0.05, 12.0, solar_k=solar))
        x, z = spot
        body = 0.42 * height
        prims.append(
            _Primitive(
                _CYLINDER,
                (x, body, z),
                (radius, body, radius),
                m_legs,
                0.0,
                m_torso,
                0.47 * height,
            )
        )
        head = (head_r, head_r, head_r)
        prims.append(_Primitive(_SPHERE, (x, height - head_r, z), head, m_head))

    # Unlabelled clutter: litter bins.
    for _ in range(rnd.randint(0, 2)):
        spot = layout.place(rnd.choice(walks), (3.0, 25.0), 0.3, 0.3)
        if spot:
            m = material(
                _Material(
                    _colour(rnd, (0.3, 0.9), (0.1, 0.5)), VOID, ambient_c, 0.1, 10.0, solar_k=6.0
                )
            )
            height = rnd.uniform(0.8, 1.1)
            prims.append(
                _Primitive(_CYLINDER, (spot[0], height / 2, spot[1]), (0.3, height / 2, 0.3), m)
            )

    elevation, azimuth = math.radians(rnd.uniform(15, 70)), rnd.uniform(0, 2 * math.pi)
    sun_dir = (
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
        math.cos(elevation) * math.cos(azimuth),
    )
    if len(materials) > 255 or len(prims) > 255:
        raise RuntimeError("scene exceeds the uint8 material/primitive buffers")
    return _Scene(
        camera_pos=(cam_x, cam_h, 0.0),
        rotation=rotation,
        road_half=road_half,
        materials=materials,
        primitives=prims,
        sun_dir=sun_dir,
        sun=rnd.uniform(0.4, 1.0),
        ambient=rnd.uniform(0.25, 0.45),
        sky_brightness=rnd.uniform(0.8, 1.3),
        cloudiness=rnd.random(),
        joint_spacing=rnd.uniform(1.0, 2.0),
        texture_offsets=tuple((rnd.uniform(0, _TEX), rnd.uniform(0, _TEX)) for _ in materials),
        exposure_target=rnd.uniform(0.2, 0.3),
        air_c=ambient_c,
    )
