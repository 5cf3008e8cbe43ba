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


class _Street:
    """One street under construction: its random draw, materials, primitives and free spots.

    The parts are drawn in a fixed order (``build_scene``): every draw comes from one
    ``random.Random``, so the order is part of what a (seed, index) renders.
    """

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.road_half = self.rnd.uniform(2.5, 5.0)
        self.x_left = -self.road_half - self.rnd.uniform(2.5, 6.0)
        self.x_right = self.road_half + self.rnd.uniform(2.5, 6.0)
        self.cam_x = self.rnd.uniform(-self.road_half + 0.8, self.road_half - 0.8)
        self.cam_h = self.rnd.uniform(0.8, 2.0)
        self.rotation = _rotation(
            math.radians(self.rnd.uniform(-25, 25)),
            math.radians(self.rnd.uniform(-2, 10)),
            math.radians(self.rnd.uniform(-3, 3)),
        )
        self.ambient_c = self.rnd.uniform(0.0, 25.0)

        grey, dark = self.rnd.uniform(0.28, 0.5), self.rnd.uniform(0.06, 0.13)
        concrete = _tinted(self.rnd, grey, (1.04, 1.0, 0.92))  # slightly warm
        asphalt = _tinted(self.rnd, dark, (1.0, 1.0, 1.0))
        # One thermal model for road, sidewalk and wall: they differ in colour or geometry only.
        pavement_c, pavement_k = self.ambient_c + 1.0, 10.0
        self.materials = [
            _Material((0.0, 0.0, 0.0), SKY, self.ambient_c - self.rnd.uniform(20, 40), 0.0, 1.0),
            _Material(asphalt, ROAD, pavement_c, 0.25, 24.0, _ASPHALT, pavement_k),
            _Material(concrete, SIDEWALK, pavement_c, 0.12, 6.0, _CONCRETE, pavement_k),
            _Material(concrete, WALL, pavement_c, 0.12, 6.0, _CONCRETE, pavement_k),
        ]
        self.m_wall = 3
        self.prims: list[_Primitive] = []
        self.layout = _Layout(self.rnd, self.cam_x)
        self.walks = (
            (self.x_left + 0.5, -self.road_half - 0.4),
            (self.road_half + 0.4, self.x_right - 0.5),
        )
        self.lane = (-self.road_half + 0.5, self.road_half - 0.5)

    def add_post(self, spot: tuple[float, float], radius: float, height: float, m: int) -> None:
        """Add an upright cylinder standing on the ground at `spot` (x, z)."""
        self.prims.append(
            _Primitive(_CYLINDER, (spot[0], height / 2, spot[1]), (radius, height / 2, radius), m)
        )

    def material(self, m: _Material) -> int:
        """Add a material; returns its index."""
        self.materials.append(m)
        return len(self.materials) - 1

    def add_facades(self) -> None:
        """Add facades (a height profile per side, 4-25 m buildings) and maybe a closing one."""
        for side, x_face in ((-1, self.x_left), (1, self.x_right)):
            heights: list[float] = []
            while len(heights) * _FACADE_BIN_M < 165.0:
                heights += [self.rnd.uniform(4.0, 25.0)] * int(
                    self.rnd.uniform(8.0, 25.0) / _FACADE_BIN_M
                )
            top = max(heights)
            length = len(heights) * _FACADE_BIN_M
            self.prims.append(
                _Primitive(
                    _FACADE,
                    (x_face, top / 2, _FACADE_Z0 + length / 2),
                    (0.0, top / 2, length / 2),
                    self.m_wall,
                    side=side,
                    heights=tuple(heights),
                )
            )
        if self.rnd.random() < 0.6:  # a building closing the street
            z_end, height = self.rnd.uniform(35.0, 100.0), self.rnd.uniform(6.0, 30.0)
            self.prims.append(
                _Primitive(
                    _BOX, (0.0, height / 2, z_end + 2.5), (80.0, height / 2, 2.5), self.m_wall
                )
            )

    def add_poles(self) -> None:
        """Add poles along the kerbs."""
        for _ in range(self.rnd.randint(3, 7)):
            kerb = self.rnd.choice((-1, 1)) * (self.road_half + self.rnd.uniform(0.3, 0.8))
            radius = self.rnd.uniform(0.12, 0.22)
            spot = self.layout.place((kerb, kerb), (3.0, 35.0), radius, radius)
            if spot:
                g = self.rnd.uniform(0.08, 0.4)
                m = self.material(
                    _Material(
                        (g, g * self.rnd.uniform(0.95, 1.1), g),
                        POLE,
                        self.ambient_c,
                        0.08,
                        8.0,
                        solar_k=6.0,
                    )
                )
                self.add_post(spot, radius, self.rnd.uniform(3.0, 8.0), m)

    def add_vehicles(self) -> None:
        """Add vehicles: tyres/sills and paint in one two-tone box, a glass cabin."""
        # Vehicles: parked at the kerb or in a lane, roughly aligned with the street. The lower
        # body is two-tone: dark tyres/sills below 0.34 m, paint above; a glass cabin on top.
        for _ in range(self.rnd.randint(1, 4)):
            length, width = self.rnd.uniform(3.8, 4.8), self.rnd.uniform(1.7, 1.95)
            if self.rnd.random() < 0.6:
                kerb = self.rnd.choice((-1, 1)) * (self.road_half - width / 2 - 0.2)
                xs = (kerb, kerb)
            else:
                xs = (-self.road_half + width, self.road_half - width)
            spot = self.layout.place(xs, (5.0, 40.0), width / 2 + 0.1, length / 2 + 0.2)
            if not spot:
                continue
            x, z = spot
            yaw = math.radians(self.rnd.uniform(-8, 8))
            engine = self.ambient_c + self.rnd.uniform(3.0, 15.0)
            m_body = self.material(
                _Material(
                    _colour(self.rnd, (0.0, 0.9), (0.04, 0.8)),
                    VEHICLE,
                    engine,
                    0.04,
                    8.0,
                    solar_k=6.0,
                )
            )
            m_tyre = self.material(
                _Material((0.03, 0.03, 0.03), VEHICLE, engine - 2.0, 0.05, 8.0, solar_k=3.0)
            )
            m_glass = self.material(
                _Material(
                    (0.05, 0.06, 0.08), VEHICLE, self.ambient_c + 1.0, 0.02, 8.0, _GLASS, 3.0
                )
            )
            cabin = self.rnd.uniform(0.5, 0.65) * length / 2
            self.prims.append(
                _Primitive(
                    _BOX, (x, 0.53, z), (width / 2, 0.53, length / 2), m_tyre, yaw, m_body, 0.34
                )
            )
            self.prims.append(
                _Primitive(
                    _BOX,
                    (x, 1.27, z - 0.1 * length),
                    (width / 2 - 0.08, 0.21, cabin),
                    m_glass,
                    yaw,
                )
            )

    def add_boxes(self) -> None:
        """Add boxes (crates, cardboard, plastic) on sidewalks and the road edge."""
        for _ in range(self.rnd.randint(2, 5)):
            hx, hz, hy = (
                self.rnd.uniform(0.3, 0.8),
                self.rnd.uniform(0.3, 0.8),
                self.rnd.uniform(0.25, 0.7),
            )
            xs = self.rnd.choice(self.walks) if self.rnd.random() < 0.7 else self.lane
            spot = self.layout.place(xs, (3.0, 30.0), max(hx, hz), max(hx, hz))
            if spot:
                m = self.material(
                    _Material(
                        _colour(self.rnd, (0.2, 0.8), (0.15, 0.6)),
                        BOX,
                        self.ambient_c + 0.5,
                        0.15,
                        10.0,
                        solar_k=8.0,
                    )
                )
                self.prims.append(
                    _Primitive(
                        _BOX,
                        (spot[0], hy, spot[1]),
                        (hx, hy, hz),
                        m,
                        self.rnd.uniform(0, math.pi / 2),
                    )
                )

    def add_figures(self) -> None:
        """Add people and mannequins, drawn alike; only their heat differs."""
        # People and mannequins: identical geometry, colour and placement distributions; a body
        # cylinder (trousers below the hips, shirt above) and a head.
        figures = [PERSON] * self.rnd.randint(2, 5) + [MANNEQUIN] * self.rnd.randint(2, 5)
        self.rnd.shuffle(figures)  # placement order must not favour either class
        for label in figures:
            height = self.rnd.uniform(1.55, 1.95)
            radius, head_r = self.rnd.uniform(0.17, 0.23), 0.065 * height
            xs = self.rnd.choice(self.walks) if self.rnd.random() < 0.8 else self.lane
            spot = self.layout.place(xs, (2.5, 20.0), radius, radius)
            if not spot:
                continue
            shirt, trousers, skin = _figure_colours(self.rnd)
            if label == PERSON:  # clothing between ambient and skin temperature
                temps = (
                    self.ambient_c + 0.5 * (31.0 - self.ambient_c),
                    self.ambient_c + 0.6 * (32.0 - self.ambient_c),
                    self.rnd.uniform(32.0, 35.0),
                )
                solar = 1.0
            else:
                base = self.ambient_c + self.rnd.uniform(-0.5, 1.0)
                temps, solar = (base, base, base), 3.0
            m_legs = self.material(_Material(trousers, label, temps[0], 0.1, 12.0, solar_k=solar))
            m_torso = self.material(_Material(shirt, label, temps[1], 0.1, 12.0, solar_k=solar))
            m_head = self.material(_Material(skin, label, temps[2], 0.05, 12.0, solar_k=solar))
            x, z = spot
            body = 0.42 * height
            self.prims.append(
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
            self.prims.append(_Primitive(_SPHERE, (x, height - head_r, z), head, m_head))

    def add_clutter(self) -> None:
        """Add unlabelled clutter: litter bins."""
        for _ in range(self.rnd.randint(0, 2)):
            spot = self.layout.place(self.rnd.choice(self.walks), (3.0, 25.0), 0.3, 0.3)
            if spot:
                m = self.material(
                    _Material(
                        _colour(self.rnd, (0.3, 0.9), (0.1, 0.5)),
                        VOID,
                        self.ambient_c,
                        0.1,
                        10.0,
                        solar_k=6.0,
                    )
                )
                self.add_post(spot, 0.3, self.rnd.uniform(0.8, 1.1), m)

    def finish(self) -> _Scene:
        """Draw the lighting and return the scene."""
        elevation, azimuth = (
            math.radians(self.rnd.uniform(15, 70)),
            self.rnd.uniform(0, 2 * math.pi),
        )
        sun_dir = (
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
            math.cos(elevation) * math.cos(azimuth),
        )
        if len(self.materials) > 255 or len(self.prims) > 255:
            raise RuntimeError("scene exceeds the uint8 self.material/primitive buffers")
        return _Scene(
            camera_pos=(self.cam_x, self.cam_h, 0.0),
            rotation=self.rotation,
            road_half=self.road_half,
            materials=self.materials,
            primitives=self.prims,
            sun_dir=sun_dir,
            sun=self.rnd.uniform(0.4, 1.0),
            ambient=self.rnd.uniform(0.25, 0.45),
            sky_brightness=self.rnd.uniform(0.8, 1.3),
            cloudiness=self.rnd.random(),
            joint_spacing=self.rnd.uniform(1.0, 2.0),
            texture_offsets=tuple(
                (self.rnd.uniform(0, _TEX), self.rnd.uniform(0, _TEX)) for _ in self.materials
            ),
            exposure_target=self.rnd.uniform(0.2, 0.3),
            air_c=self.ambient_c,
        )


def build_scene(rnd: random.Random) -> _Scene:
    """Draw one street scene: layout, materials, lighting."""
    street = _Street(rnd)
    street.add_facades()
    street.add_poles()
    street.add_vehicles()
    street.add_boxes()
    street.add_figures()
    street.add_clutter()
    return street.finish()
