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

Adverse conditions (fog growing with distance, night with noise and a headlamp, glare, rain)
degrade the RGB image only. Depth (with its own sensor noise and dropouts), thermal and the
label are identical for every condition of a scene index. Thermal is left untouched by the
conditions on purpose (long-wave infrared sees through light fog and darkness), so it is the
modality that carries the scene when RGB fails.

Everything is deterministic for (seed, index, condition, strength); geometry, lighting, depth
and thermal depend on (seed, index) only.
"""

from __future__ import annotations

import colorsys
import ctypes
import ctypes.util
import math
import platform
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np

from ssma_ros.data.encodings import CameraIntrinsics

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
CONDITIONS: tuple[str, ...] = ("clear", "fog", "night", "glare", "rain")

# Thermal images are radiometric like a FLIR camera's TLinear mode: uint16 centikelvin.
THERMAL_SCALE = 100.0
THERMAL_RANGE = (25315.0, 32315.0)  # -20 .. +50 degC: a sensible fixed intensity stretch

_KELVIN = 273.15
_TEX = 256  # side of the procedural noise texture (a power of two: indices wrap with &)
_TONE_MAX = 2.5  # exposed linear radiance that saturates the tone curve
_NEAR = 0.05  # near clipping plane of the bounding-box projection, metres

# Material kinds (texture/sensor behaviour besides albedo).
_PLAIN, _CONCRETE, _ASPHALT, _GLASS = range(4)
# Primitive kinds; 0 is the ground plane.
_BOX, _CYLINDER, _SPHERE, _FACADE = 1, 2, 3, 4
_FACADE_BIN_M = 1.0  # facade height table resolution along the street (< 256 bins)
_FACADE_Z0 = -5.0


@dataclass(frozen=True)
class Sample:
    """One rendered frame. ``depth`` is float32 metres, NaN where the sensor has no return."""

    rgb: np.ndarray  # uint8 (H, W, 3)
    depth: np.ndarray  # float32 (H, W), NaN invalid (sky, beyond range, dropouts)
    thermal: np.ndarray  # uint16 (H, W), centikelvin
    label: np.ndarray  # uint8 (H, W), index into CLASSES
    camera: CameraIntrinsics
    index: int
    condition: str
    strength: float


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


def _build_scene(rnd: random.Random) -> _Scene:
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
    )


def tune_allocator() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the OS after every frame.

    Rendering allocates and frees a few hundred image-sized temporaries per frame; with glibc's
    defaults the heap is trimmed and page-faulted back in on every frame, which costs about as
    much as the rendering itself. This raises M_TRIM_THRESHOLD to 256 MiB and M_MMAP_THRESHOLD
    to 32 MiB for the whole process (a data-loading process keeps its high-water mark, a few
    tens of MiB). Call it once per process, e.g. in a DataLoader ``worker_init_fn``. Returns
    False (and changes nothing) where the C library is not glibc.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(m_trim_threshold, 256 << 20)) and bool(
            libc.mallopt(m_mmap_threshold, 32 << 20)
        )
    except (OSError, AttributeError):
        return False


def _lut(values: Sequence[float], dtype: type) -> np.ndarray:
    """A 256-entry lookup table for cv2.LUT, ``values`` first."""
    table = np.zeros(256, dtype)
    table[: len(values)] = values
    return table


class SyntheticScenes:
    """Deterministic procedural street scenes; see the module docstring.

    ``sample(index, condition, strength)`` renders scene ``index``. The camera looks along a
    street from 0.8-2 m height with random yaw/pitch/roll; ``camera`` gives its intrinsics.
    An instance keeps scratch buffers: use one per process or thread.
    """

    def __init__(
        self, height: int = 240, width: int = 320, seed: int = 0, max_range_m: float = 50.0
    ) -> None:
        if height < 8 or width < 8:
            raise ValueError(f"image size must be at least 8x8, got {height}x{width}")
        self.height, self.width, self.seed = int(height), int(width), int(seed)
        self.max_range_m = float(max_range_m)
        f = 0.8 * width  # about 64 degrees horizontal field of view
        self.camera = CameraIntrinsics(f, f, width / 2.0, height / 2.0)
        self._xn = ((np.arange(width) - self.camera.cx) / f).astype(np.float32)[None, :]
        self._yn = ((np.arange(height) - self.camera.cy) / f).astype(np.float32)[:, None]
        rng = np.random.default_rng([self.seed, 0x5EED])
        self._noise = self._make_noise(rng).ravel()
        # Banks of random numbers: each frame reads windows at seeded offsets, far cheaper than
        # drawing fresh variates for every pixel of every frame.
        n = height * width * 3
        self._gauss = rng.standard_normal(2 * n, dtype=np.float32)
        self._uniform = rng.random(2 * n, dtype=np.float32)
        u = (np.arange(width) - width / 2.0) / (width / 2.0)
        v = (np.arange(height) - height / 2.0) / (width / 2.0)
        self._vignette = (1.0 - 0.25 * (u[None, :] ** 2 + v[:, None] ** 2)).astype(np.float32)
        self._tone = _tone_curve()
        # Scratch buffers of the ray caster: fresh full-size temporaries per primitive would
        # cost more than the arithmetic.
        self._f32 = [np.empty((height, width), np.float32) for _ in range(5)]
        self._bool = [np.empty((height, width), bool) for _ in range(2)]
        self._u8 = np.empty((height, width), np.uint8)

    @staticmethod
    def _make_noise(rng: np.random.Generator) -> np.ndarray:
        """Tileable 1/f^1.5 noise texture, zero mean, unit standard deviation."""
        f = np.fft.fftfreq(_TEX)
        radius = np.sqrt(f[None, :] ** 2 + f[:, None] ** 2)
        amplitude = 1.0 / np.maximum(radius, 1.0 / _TEX) ** 1.5
        spectrum = (rng.normal(size=(_TEX, _TEX)) + 1j * rng.normal(size=(_TEX, _TEX))) * amplitude
        noise = np.real(np.fft.ifft2(spectrum))
        return ((noise - noise.mean()) / noise.std()).astype(np.float32)

    def _bank(self, bank: np.ndarray, rnd: random.Random, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        start = rnd.randrange(len(bank) - n + 1)
        return bank[start : start + n].reshape(shape)

    # -- ray casting --------------------------------------------------------------------------

    def _bounds(self, scene: _Scene) -> np.ndarray:
        """Image bounding boxes (v0, v1, u0, u1) of all primitives, clipped at the near plane."""
        prims = scene.primitives
        centers = np.array([p.center for p in prims])
        halves = np.array([p.half for p in prims])
        yawed = np.array([p.kind == _BOX and p.yaw != 0.0 for p in prims])
        # A yawed box fits in the square of its footprint's circumradius.
        r = np.where(yawed, np.hypot(halves[:, 0], halves[:, 2]), halves[:, 0])
        rz = np.where(yawed, r, halves[:, 2])
        ext = np.stack([r, halves[:, 1], rz], axis=1)
        signs = np.array(
            [(a, b, c) for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], np.float64
        )
        corners = centers[:, None, :] + signs[None] * ext[:, None, :]  # (P, 8, 3)
        cam = (corners - np.array(scene.camera_pos)) @ scene.rotation  # rows: R^T (X - C)
        # Clip every corner pair at the near plane: the crossings plus the corners in front
        # span the visible part of the (convex) bounding box.
        ia, ib = np.triu_indices(8, 1)
        a, b = cam[:, ia], cam[:, ib]
        za, zb = a[..., 2], b[..., 2]
        crossing = (za - _NEAR) * (zb - _NEAR) < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            clipped = a + ((_NEAR - za) / (zb - za))[..., None] * (b - a)
        points = np.concatenate([cam, clipped], axis=1)
        usable = np.concatenate([cam[..., 2] >= _NEAR, crossing], axis=1)
        z = np.where(usable, points[..., 2], 1.0)
        k = self.camera
        u = k.fx * points[..., 0] / z + k.cx
        v = k.fy * points[..., 1] / z + k.cy
        h, w = self.height, self.width
        u0 = np.floor(np.where(usable, u, np.inf).min(axis=1)) - 1
        u1 = np.ceil(np.where(usable, u, -np.inf).max(axis=1)) + 2
        v0 = np.floor(np.where(usable, v, np.inf).min(axis=1)) - 1
        v1 = np.ceil(np.where(usable, v, -np.inf).max(axis=1)) + 2
        boxes = np.stack(
            [np.clip(v0, 0, h), np.clip(v1, 0, h), np.clip(u0, 0, w), np.clip(u1, 0, w)], axis=1
        )
        return np.nan_to_num(boxes).astype(np.int64)

    def _cast(self, scene: _Scene) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """Depth of the first hit (inf: sky), id of the primitive hit (0: ground or sky), rays."""
        r = scene.rotation.tolist()
        # World ray directions with unit optical z, so the hit parameter t is the depth.
        d = tuple(np.add(r[i][0] * self._xn + r[i][2], r[i][1] * self._yn) for i in range(3))
        ox, oy, oz = scene.camera_pos
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = tuple(1.0 / di for di in d)
            # |t| / hit is t where hit and +inf (or NaN, which fmin ignores) elsewhere: masking
            # by division is several times faster than np.where.
            t = np.abs(-oy * inv[1]) / (d[1] < -1e-6)
        pid = np.zeros(t.shape, np.uint8)
        horizontal_sq = d[0] * d[0] + d[2] * d[2]
        full_sq = horizontal_sq + d[1] * d[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            for k, (p, (v0, v1, u0, u1)) in enumerate(
                zip(scene.primitives, self._bounds(scene)), 1
            ):
                if v1 <= v0 or u1 <= u0:
                    continue
                sl = (slice(v0, v1), slice(u0, u1))
                dx, dy, dz = d[0][sl], d[1][sl], d[2][sl]
                cx, cy, cz = p.center
                hx, hy, hz = p.half
                qx, qy, qz = ox - cx, oy - cy, oz - cz
                a, b, c, th, far = (f[sl] for f in self._f32)
                hit, tmp = (m[sl] for m in self._bool)
                if p.kind == _FACADE:
                    np.multiply(inv[0][sl], -qx, out=th)  # the facade plane x = cx
                    np.multiply(th, dy, out=a)
                    a += oy  # hit height
                    np.multiply(th, dz, out=b)
                    b += oz - _FACADE_Z0
                    b *= 1.0 / _FACADE_BIN_M  # height-table bin of the hit
                    np.clip(b, 0, len(p.heights) - 1, out=b)
                    cv2.LUT(b.astype(np.uint8), _lut(p.heights, np.float32), dst=c)
                    np.less(a, c, out=hit)
                    hit &= np.greater(th, 0.0, out=tmp)
                elif p.kind == _BOX:
                    if p.yaw == 0.0:
                        ix, iy, iz = inv[0][sl], inv[1][sl], inv[2][sl]
                    else:
                        cos, sin = math.cos(p.yaw), math.sin(p.yaw)
                        qx, qz = cos * qx - sin * qz, sin * qx + cos * qz
                        ix, iy, iz = (
                            1.0 / (cos * dx - sin * dz),
                            inv[1][sl],
                            1.0 / (sin * dx + cos * dz),
                        )
                    # Slab test: entry = max of the per-axis near planes, exit = min of the far.
                    np.multiply(ix, -hx - qx, out=a)
                    np.multiply(ix, hx - qx, out=b)
                    np.minimum(a, b, out=th)
                    np.maximum(a, b, out=far)
                    for q, i, half in ((qy, iy, hy), (qz, iz, hz)):
                        np.multiply(i, -half - q, out=a)
                        np.multiply(i, half - q, out=b)
                        np.maximum(th, np.minimum(a, b, out=c), out=th)
                        np.minimum(far, np.maximum(a, b, out=a), out=far)
                    np.less_equal(th, far, out=hit)
                    hit &= np.greater(th, 0.0, out=tmp)
                elif p.kind == _CYLINDER:
                    np.multiply(dx, qx, out=a)
                    a += np.multiply(dz, qz, out=b)  # half of the quadratic's b
                    np.multiply(a, a, out=c)
                    c -= np.multiply(horizontal_sq[sl], qx * qx + qz * qz - hx * hx, out=b)
                    np.sqrt(c, out=c)
                    np.negative(a, out=th)
                    th -= c
                    th /= horizontal_sq[sl]
                    np.multiply(th, dy, out=a)
                    a += qy  # hit height relative to the centre
                    np.greater(th, 0.0, out=hit)
                    hit &= np.greater_equal(a, -hy, out=tmp)
                    hit &= np.less_equal(a, hy, out=tmp)
                    if qy > hy:  # camera above the top: the cap is visible
                        tc = (hy - qy) * inv[1][sl]
                        ex, ez = qx + tc * dx, qz + tc * dz
                        cap = (tc > 0) & (ex * ex + ez * ez <= hx * hx)
                        np.fmin(np.abs(th) / hit, np.abs(tc) / cap, out=th)
                        hit.fill(True)
                else:
                    np.multiply(dx, qx, out=a)
                    a += np.multiply(dy, qy, out=b)
                    a += np.multiply(dz, qz, out=b)
                    np.multiply(a, a, out=c)
                    c -= np.multiply(full_sq[sl], qx * qx + qy * qy + qz * qz - hx * hx, out=b)
                    np.sqrt(c, out=c)
                    np.negative(a, out=th)
                    th -= c
                    th /= full_sq[sl]
                    np.greater(th, 0.0, out=hit)
                np.abs(th, out=th)
                th /= hit
                t_sl, pid_sl, delta = t[sl], pid[sl], self._u8[sl]
                np.less(th, t_sl, out=hit)
                np.fmin(t_sl, th, out=t_sl)
                # pid <- k where closer; exact thanks to uint8 wrap-around.
                np.subtract(np.uint8(k), pid_sl, out=delta)
                delta *= hit
                pid_sl += delta
        return t, pid, d

    def _surfaces(
        self, scene: _Scene, pid: np.ndarray, sky: np.ndarray, points: tuple[np.ndarray, ...]
    ):
        """Analytic unit normals and material ids of the hit surfaces, one pass over the image."""
        prims = scene.primitives
        # Per-primitive tables indexed by pid; row 0 (ground) holds harmless values. Facades
        # enter as boxes whose street-side face is the facade plane.
        rows = [(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, math.inf)]
        for p in prims:
            if p.kind == _FACADE:
                center, half = (p.center[0] + p.side * 1e3, 0.0, 0.0), (1e3, 1e9, 1e9)
            else:
                center, half = p.center, p.half
            upper = p.upper_material if p.upper_material >= 0 else p.material
            rows.append(
                (*center, *half, math.cos(p.yaw), math.sin(p.yaw), p.material, upper, p.split_y)
            )
        table = np.zeros((256, 11), np.float32)
        table[: len(rows)] = rows
        kinds = _lut([0] + [_BOX if p.kind == _FACADE else p.kind for p in prims], np.uint8)
        kind = cv2.LUT(pid, kinds)
        cx, cy, cz, hx, hy, hz, c, s, _, _, split = (
            cv2.LUT(pid, np.ascontiguousarray(col)) for col in table.T
        )
        rx, ry, rz = points[0] - cx, points[1] - cy, points[2] - cz
        # Boxes: the face is the local axis along which the hit point is relatively farthest out.
        lx, lz = c * rx - s * rz, s * rx + c * rz
        ax, ay, az = np.abs(lx) / hx, np.abs(ry) / hy, np.abs(lz) / hz
        on_x = (ax >= ay) & (ax >= az)
        on_y = ~on_x & (ay >= az)
        on_z = ~on_x & ~on_y
        nlx, nlz = np.sign(lx) * on_x, np.sign(lz) * on_z
        is_box = (kind == _BOX).astype(np.float32)
        is_cyl = (kind == _CYLINDER).astype(np.float32)
        is_sph = (kind == _SPHERE).astype(np.float32)
        is_ground = ((kind == 0) & ~sky).astype(np.float32)
        cap = is_cyl * (ry >= hy - 1e-3)
        radial = (is_cyl - cap + is_sph) / hx
        nx = is_box * (c * nlx + s * nlz) + radial * rx
        ny = is_box * np.sign(ry) * on_y + cap + is_sph * ry / hx + is_ground
        nz = is_box * (c * nlz - s * nlx) + radial * rz

        lower = cv2.LUT(pid, _lut(table[:, 8], np.uint8))
        upper = cv2.LUT(pid, _lut(table[:, 9], np.uint8))
        # Two-tone primitives switch material above split_y; ground pixels are road (1) inside
        # the road and sidewalk (2) outside; sky stays 0.
        mat = lower + (points[1] >= split) * (upper - lower)
        mat += (is_ground > 0) * (1 + (np.abs(points[0]) >= scene.road_half)).astype(np.uint8)
        return (nx, ny, nz), mat

    # -- rendering ----------------------------------------------------------------------------

    def sample(self, index: int, condition: str = "clear", strength: float = 1.0) -> Sample:
        """Render scene ``index`` under ``condition`` with ``strength`` in [0, 1]."""
        if condition not in CONDITIONS:
            raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        index = int(index)
        rnd = random.Random(f"ssma-synthetic:{self.seed}:{index}")
        scene = _build_scene(rnd)
        t, pid, rays = self._cast(scene)
        sky = np.isinf(t)
        t_hit = np.minimum(t, np.float32(1e6))
        t_hit *= ~sky
        o = scene.camera_pos
        points = tuple(o[i] + t_hit * rays[i] for i in range(3))
        normals, mat = self._surfaces(scene, pid, sky, points)
        table = scene.materials
        label = cv2.LUT(mat, _lut([m.label for m in table], np.uint8))

        # Texture coordinates on the surface plane (ground: x, z; vertical: along-wall, y).
        nx, ny, nz = normals
        horizontal = np.abs(ny) > 0.7
        along = points[0] + (points[2] - points[0]) * (np.abs(nx) > np.abs(nz))
        tex_a = along + (points[0] - along) * horizontal
        tex_b = points[1] + (points[2] - points[1]) * horizontal
        offsets = np.array(scene.texture_offsets, np.float32)
        scale = cv2.LUT(mat, _lut([m.tex_scale for m in table], np.float32))
        ia = (tex_a * scale + cv2.LUT(mat, _lut(offsets[:, 0], np.float32))).astype(np.int32) & (
            _TEX - 1
        )
        ib = (tex_b * scale + cv2.LUT(mat, _lut(offsets[:, 1], np.float32))).astype(np.int32) & (
            _TEX - 1
        )
        texture = np.take(self._noise, (ib << 8) | ia)

        depth = self._depth(t, t_hit, mat, table, rnd)
        thermal = self._thermal(scene, mat, normals, texture, rnd)
        # Colour work is planar (3, H, W): per-channel constants broadcast cheaply that way.
        radiance, albedo = self._radiance(
            scene, mat, sky, normals, rays, texture, tex_a, tex_b, points
        )
        radiance *= self._vignette
        exposure = np.float32(scene.exposure_target / max(float(radiance.mean()), 1e-4))
        radiance *= exposure
        base_noise = self._bank(self._gauss, rnd, radiance.shape)
        if condition != "clear" and strength > 0.0:
            cond_rnd = random.Random(f"ssma-synthetic:{self.seed}:{index}:{condition}")
            ray_len = np.sqrt(rays[0] * rays[0] + rays[1] * rays[1] + rays[2] * rays[2])
            distance = t_hit * ray_len + np.float32(1000.0) * sky
            albedo *= exposure
            radiance = _apply_condition(
                self,
                condition,
                np.float32(strength),
                radiance,
                albedo,
                normals,
                rays,
                ray_len,
                distance,
                cond_rnd,
            )
        radiance += np.float32(0.004) * base_noise
        radiance *= np.float32(4095.0 / _TONE_MAX)
        levels = np.clip(radiance, 0.0, 4095.0, out=radiance).astype(np.int32)
        rgb = cv2.merge(list(np.take(self._tone, levels)))
        return Sample(rgb, depth, thermal, label, self.camera, index, condition, float(strength))

    def _radiance(self, scene, mat, sky, normals, rays, texture, tex_a, tex_b, points):
        """Planar (3, H, W) radiance and textured albedo; sky pixels get a sky model."""
        table = scene.materials
        amp = cv2.LUT(mat, _lut([m.texture for m in table], np.float32))
        kind = cv2.LUT(mat, _lut([m.kind for m in table], np.uint8))
        shade = amp * texture
        shade += 1.0
        # Concrete slab joints on sidewalks and facades alike (same material).
        ja = tex_a * np.float32(1.0 / scene.joint_spacing)
        jb = tex_b * np.float32(1.0 / scene.joint_spacing)
        ja -= np.floor(ja)
        jb -= np.floor(jb)
        joints = (kind == _CONCRETE) & ((ja < 0.02) | (jb < 0.02))
        shade *= 1.0 - 0.3 * joints
        np.maximum(shade, 0.0, out=shade)
        # Road markings: dashed centre line and solid edge lines.
        px, pz = points[0], points[2]
        dash = pz * np.float32(1.0 / 6.0)
        dash -= np.floor(dash)
        centre = (np.abs(px) < 0.08) & (dash < 0.5)
        edge = np.abs(np.abs(px) - (scene.road_half - 0.25)) < 0.07
        marking = ((kind == _ASPHALT) & (centre | edge)).astype(np.float32)
        shade *= 1.0 - marking
        paint = (0.7, 0.7, 0.68)
        albedo = np.empty((3,) + mat.shape, np.float32)
        for i in range(3):
            np.multiply(
                cv2.LUT(mat, _lut([m.albedo[i] for m in table], np.float32)), shade, out=albedo[i]
            )
            albedo[i] += paint[i] * marking

        nx, ny, nz = normals
        lx, ly, lz = scene.sun_dir
        direct = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)
        direct *= np.float32(scene.sun)
        sun_col = (1.0, 0.96, 0.88)
        amb_col = tuple(scene.ambient * w for w in (0.88, 0.94, 1.05))
        radiance = np.empty_like(albedo)
        for i in range(3):
            np.multiply(direct, sun_col[i], out=radiance[i])
            radiance[i] += amb_col[i]
            radiance[i] *= albedo[i]

        # Sky (albedo 0, so its radiance so far is 0), only over the rows it occupies.
        rows = np.flatnonzero(sky.any(axis=1))
        if len(rows):
            r0, r1 = rows[0], rows[-1] + 1
            dx, dy, dz = (d[r0:r1] for d in rays)
            elevation = dy / np.sqrt(dx * dx + dy * dy + dz * dz)
            k = np.clip(elevation * 3.0, 0.0, 1.0)
            brightness = scene.sky_brightness
            # Clouds: the noise texture projected on a plane high above the camera.
            lift = 40.0 / np.maximum(dy, 0.02)
            cu = (dx * lift).astype(np.int32) & (_TEX - 1)
            cv = (dz * lift).astype(np.int32) & (_TEX - 1)
            cloud = np.clip((np.take(self._noise, (cv << 8) | cu) - 0.3) * 0.8, 0.0, 1.0)
            cloud *= np.float32(scene.cloudiness)
            on_sky = sky[r0:r1]
            for i, (horizon, zenith) in enumerate(((0.78, 0.25), (0.82, 0.45), (0.88, 0.9))):
                colour = k * np.float32((zenith - horizon) * brightness)
                colour += horizon * brightness
                colour += cloud * (np.float32(0.95 * brightness) - colour)
                radiance[i, r0:r1] += colour * on_sky
        return radiance, albedo

    def _depth(self, t, t_hit, mat, table, rnd) -> np.ndarray:
        """Depth sensor: quadratic noise, range limit, dropouts at edges, on glass, speckle."""
        h, w = t.shape
        sigma = t_hit * t_hit
        sigma *= 0.0005
        sigma += 0.002
        depth = self._bank(self._gauss, rnd, t.shape) * sigma
        depth += t_hit
        uniform = self._bank(self._uniform, rnd, (3, h, w))
        glass = cv2.LUT(mat, _lut([m.kind == _GLASS for m in table], np.uint8)).view(bool)
        invalid = np.isinf(t) | (t > self.max_range_m) | (depth <= 0.1)
        invalid |= glass & (uniform[0] < 0.6)
        invalid |= uniform[1] < 0.004
        # Occlusion shadow: the farther pixel of a depth jump has no return (stereo/ToF-like).
        left, right = t[:, :-1], t[:, 1:]
        with np.errstate(invalid="ignore"):
            jump = np.abs(right - left) > 0.05 * np.minimum(left, right) + 0.05
        jump &= uniform[2][:, 1:] < 0.7
        invalid[:, 1:] |= jump & (right > left)
        invalid[:, :-1] |= jump & (left > right)
        depth[invalid] = np.nan
        return depth

    def _thermal(self, scene, mat, normals, texture, rnd) -> np.ndarray:
        table = scene.materials
        temp = cv2.LUT(mat, _lut([m.temp_c for m in table], np.float32))
        solar_k = cv2.LUT(mat, _lut([m.solar_k for m in table], np.float32))
        nx, ny, nz = normals
        lx, ly, lz = scene.sun_dir
        heating = np.maximum(nx * lx + ny * ly + nz * lz, 0.0)
        heating *= np.float32(scene.sun)
        heating *= solar_k
        temp += heating
        temp += 0.3 * texture * (solar_k > 0)  # surface texture shows as mottled temperature
        # Thermal optics are soft; NETD about 50 mK.
        temp = cv2.GaussianBlur(temp, (0, 0), 0.7)
        temp += self._bank(self._gauss, rnd, temp.shape) * np.float32(0.05)
        temp += _KELVIN
        temp *= THERMAL_SCALE
        return np.clip(np.rint(temp), 0, 65535).astype(np.uint16)


def _tone_curve() -> np.ndarray:
    """Soft-shoulder camera response and sRGB-like gamma, tabulated in 4096 steps."""
    linear = np.linspace(0.0, _TONE_MAX, 4096)
    compressed = 1.0 - np.exp(-1.6 * linear)
    return np.rint(255.0 * compressed ** (1.0 / 2.2)).astype(np.uint8)


def _apply_condition(
    scenes: SyntheticScenes,
    condition: str,
    s: np.float32,
    image: np.ndarray,
    albedo: np.ndarray,
    normals: tuple[np.ndarray, np.ndarray, np.ndarray],
    rays: tuple[np.ndarray, np.ndarray, np.ndarray],
    ray_len: np.ndarray,
    distance: np.ndarray,
    rnd: random.Random,
) -> np.ndarray:
    """Degrade the exposed planar (3, H, W) linear image; an identity at strength 0."""
    _, h, w = image.shape
    if condition == "fog":
        # Koschmieder: transmission exp(-beta d); visibility about 20 m at strength 1.
        transmission = np.exp(distance * (np.float32(-0.15) * s))
        airlight = np.array([0.55, 0.57, 0.6], np.float32)[:, None, None]
        return airlight + (image - airlight) * transmission
    if condition == "night":
        # Scene light falls by exp(-4.5 s); auto gain recovers exp(2.5 s) of it and amplifies
        # the sensor noise with it, so the frame darkens monotonically to ~1/7 at strength 1.
        dark = image * np.exp(np.float32(-4.5) * s)
        # The robot's own headlamp: inverse-square falloff, cosine on the surface.
        nx, ny, nz = normals
        facing = np.maximum(-(nx * rays[0] + ny * rays[1] + nz * rays[2]) / ray_len, 0.0)
        lamp = facing * (s * np.float32(0.1)) / (1.0 + (distance * np.float32(1 / 6.0)) ** 2)
        lit = dark + albedo * lamp
        sigma = s * (0.004 + 0.01 * np.sqrt(np.maximum(lit, 0.0)))
        noisy = (lit + scenes._bank(scenes._gauss, rnd, image.shape) * sigma) * np.exp(
            np.float32(2.5) * s
        )
        grey = noisy.mean(axis=0)
        return noisy + (np.float32(0.4) * s) * (grey - noisy)
    if condition == "glare":
        u0, v0 = rnd.uniform(0.15 * w, 0.85 * w), rnd.uniform(0.1 * h, 0.6 * h)
        u = np.arange(w, dtype=np.float32)[None, :] - np.float32(u0)
        v = np.arange(h, dtype=np.float32)[:, None] - np.float32(v0)
        sigma = np.float32((0.08 + 0.12 * s) * w)
        r2 = (u * u + v * v) / (sigma * sigma)
        bloom = 3.0 * np.exp(-0.5 * r2) + 0.8 * np.exp(-0.5 * np.sqrt(r2))
        streak = (
            0.6
            * np.exp(-0.5 * (v / np.float32(0.01 * h + 1.0)) ** 2)
            * np.exp(-np.abs(u) / np.float32(0.5 * w))
        )
        flare = s * (bloom + streak) + np.float32(0.25) * s
        tint = np.array([1.0, 0.97, 0.9], np.float32)[:, None, None]
        return image * (1 - np.float32(0.3) * s) + flare * tint
    if condition == "rain":
        # Overcast darkening, contrast loss, water on the lens (blur) and near-field streaks.
        mean = image.mean(axis=(1, 2), keepdims=True)
        haze = np.float32(0.25) * s
        wet = (image * (1 - haze) + haze * mean) * (1 - np.float32(0.35) * s)
        length = max(3, int(0.06 * h))
        slope = math.tan(math.radians(rnd.uniform(-20, 20)))
        kernel = np.zeros((length, length), np.float32)
        centre = (length - 1) / 2.0
        for i in range(length):  # a line of taps through the kernel centre
            kernel[i, min(max(round(centre + slope * (i - centre)), 0), length - 1)] = 1.0
        drops = (scenes._bank(scenes._uniform, rnd, (h, w)) < 0.004 * s).astype(np.float32)
        streaks = np.clip(cv2.filter2D(drops, -1, kernel) * 0.6, 0.0, 1.0)
        blurred = np.stack([cv2.GaussianBlur(plane, (0, 0), float(1.2 * s)) for plane in wet])
        return blurred * (1 - 0.5 * streaks) + 0.75 * streaks
    raise ValueError(f"unknown condition {condition!r}")


# ---------------------------------------------------------------------------------------------
# Dataset helper (pure numpy; the torch Dataset wrapper lives in the training code)

SPLITS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}
AUX_KINDS = {"depth": ("depth", "32FC1"), "thermal": ("infrared", "mono16")}


class SyntheticDataset:
    """Indexable sequence of dict samples over one split of the scene index space.

    Split ``s`` item ``i`` is scene ``SPLITS[s] + i``, so splits never share a scene.
    ``conditions`` cycle over items (item i gets ``conditions[i % len]``); ``strength`` is a
    constant or a (low, high) range drawn per item from (seed, scene index). Items are dicts
    like the dataset readers' (rgb, aux, aux_kind, aux_encoding, label, camera, name) plus
    ``condition`` and ``strength``; ``aux`` is ``"depth"`` (float32 metres, NaN invalid,
    ``32FC1``) or ``"thermal"`` (uint16 centikelvin, ``mono16``).
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
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
        if not 0 < length <= 1_000_000:
            raise ValueError(f"length must be in 1..1000000, got {length}")
        if aux not in AUX_KINDS:
            raise ValueError(f"unknown aux {aux!r}; expected one of {tuple(AUX_KINDS)}")
        if not conditions or any(c not in CONDITIONS for c in conditions):
            raise ValueError(
                f"conditions must be a non-empty subset of {CONDITIONS}, got {conditions}"
            )
        self.split, self.length, self.aux = split, int(length), aux
        self.conditions = tuple(conditions)
        self.strength = strength
        self.scenes = SyntheticScenes(height, width, seed)

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
