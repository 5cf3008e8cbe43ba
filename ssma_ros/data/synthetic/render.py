"""Rendering: ray casting, shading and the sensors of one frame (`SyntheticScenes`)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import cv2
import numpy as np

from ssma_ros.data.encodings import CameraIntrinsics
from ssma_ros.data.synthetic.conditions import (
    BENCHMARKS,
    DEPTH_STEPS,
    RGB_STEPS,
    THERMAL_STEPS,
    apply_condition,
)
from ssma_ros.data.synthetic.scene import (
    _ASPHALT,
    _BOX,
    _CONCRETE,
    _CYLINDER,
    _FACADE,
    _FACADE_BIN_M,
    _FACADE_Z0,
    _SPHERE,
    _TEX,
    _Scene,
    build_scene,
)
from ssma_ros.data.synthetic.sensors import (
    Surfaces,
    degrade_depth,
    depth_image,
    lut,
    thermal_image,
)

_TONE_MAX = 2.5  # exposed linear radiance that saturates the tone curve
_NEAR = 0.05  # near clipping plane of the bounding-box projection, metres


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


class SyntheticScenes:
    """Deterministic procedural street scenes; see the module docstring.

    ``sample(index, condition, strength)`` renders scene ``index``. The camera looks along a
    street from 0.8-2 m height with random yaw/pitch/roll; ``camera`` gives its intrinsics.
    An instance keeps scratch buffers: use one per process or thread.
    """

    def __init__(
        self,
        height: int = 240,
        width: int = 320,
        seed: int = 0,
        max_range_m: float = 50.0,
        benchmark: str = "v1",
    ) -> None:
        if height < 8 or width < 8:
            raise ValueError(f"image size must be at least 8x8, got {height}x{width}")
        if benchmark not in BENCHMARKS:
            raise ValueError(
                f"unknown benchmark {benchmark!r}; expected one of {list(BENCHMARKS)}"
            )
        self.benchmark = benchmark
        self.conditions = BENCHMARKS[benchmark]
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
                    cv2.LUT(b.astype(np.uint8), lut(p.heights, np.float32), dst=c)
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
        kinds = lut([0] + [_BOX if p.kind == _FACADE else p.kind for p in prims], np.uint8)
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

        lower = cv2.LUT(pid, lut(table[:, 8], np.uint8))
        upper = cv2.LUT(pid, lut(table[:, 9], np.uint8))
        # Two-tone primitives switch material above split_y; ground pixels are road (1) inside
        # the road and sidewalk (2) outside; sky stays 0.
        mat = lower + (points[1] >= split) * (upper - lower)
        mat += (is_ground > 0) * (1 + (np.abs(points[0]) >= scene.road_half)).astype(np.uint8)
        return (nx, ny, nz), mat

    # -- rendering ----------------------------------------------------------------------------

    def sample(self, index: int, condition: str = "clear", strength: float = 1.0) -> Sample:
        """Render scene ``index`` under ``condition`` with ``strength`` in [0, 1]."""
        if condition not in self.conditions:
            raise ValueError(
                f"unknown condition {condition!r} in benchmark {self.benchmark}; "
                f"expected one of {self.conditions}"
            )
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        index = int(index)
        rnd = random.Random(f"ssma-synthetic:{self.seed}:{index}")
        scene = build_scene(rnd)
        t, pid, rays = self._cast(scene)
        sky = np.isinf(t)
        t_hit = np.minimum(t, np.float32(1e6))
        t_hit *= ~sky
        o = scene.camera_pos
        points = tuple(o[i] + t_hit * rays[i] for i in range(3))
        normals, mat = self._surfaces(scene, pid, sky, points)
        table = scene.materials
        label = cv2.LUT(mat, lut([m.label for m in table], np.uint8))

        # Texture coordinates on the surface plane (ground: x, z; vertical: along-wall, y).
        nx, ny, nz = normals
        horizontal = np.abs(ny) > 0.7
        along = points[0] + (points[2] - points[0]) * (np.abs(nx) > np.abs(nz))
        tex_a = along + (points[0] - along) * horizontal
        tex_b = points[1] + (points[2] - points[1]) * horizontal
        offsets = np.array(scene.texture_offsets, np.float32)
        scale = cv2.LUT(mat, lut([m.tex_scale for m in table], np.float32))
        ia = (tex_a * scale + cv2.LUT(mat, lut(offsets[:, 0], np.float32))).astype(np.int32) & (
            _TEX - 1
        )
        ib = (tex_b * scale + cv2.LUT(mat, lut(offsets[:, 1], np.float32))).astype(np.int32) & (
            _TEX - 1
        )
        texture = np.take(self._noise, (ib << 8) | ia)

        depth = depth_image(self, t, t_hit, mat, table, rnd)
        if self.benchmark == "v1":
            thermal = thermal_image(self, scene, mat, normals, texture, rnd)
        else:
            surf = self._surface_facts(scene, t, t_hit, sky, mat, normals, rays)
            v2_rng = np.random.default_rng(
                [self.seed, index, self.conditions.index(condition), 0xD2]
            )
            depth = degrade_depth(
                depth,
                surf,
                DEPTH_STEPS.get(condition, ()),
                float(strength),
                v2_rng,
                self.max_range_m,
            )
            steps = THERMAL_STEPS.get(condition, ())
            thermal = thermal_image(
                self, scene, mat, normals, texture, rnd, (surf, steps, float(strength))
            )
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
            # v1's conditions are one RGB model each; v2's may chain several (or none).
            steps = ((condition, 1.0),) if self.benchmark == "v1" else RGB_STEPS.get(condition, ())
            for model, factor in steps:
                radiance = apply_condition(
                    self,
                    model,
                    np.float32(strength * factor),
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

    def _surface_facts(self, scene: _Scene, t, t_hit, sky, mat, normals, rays) -> Surfaces:
        """Collect what v2's sensor models need to know about the surface of each pixel."""
        table = scene.materials
        nx, ny, nz = normals
        lx, ly, lz = scene.sun_dir
        irradiance = np.maximum(nx * lx + ny * ly + nz * lz, 0.0) * np.float32(scene.sun)
        ray_len = np.sqrt(rays[0] * rays[0] + rays[1] * rays[1] + rays[2] * rays[2])
        return Surfaces(
            t=t,
            t_hit=t_hit,
            kind=cv2.LUT(mat, lut([m.kind for m in table], np.uint8)),
            texture_amp=cv2.LUT(mat, lut([m.texture for m in table], np.float32)),
            luminance=cv2.LUT(mat, lut([sum(m.albedo) / 3 for m in table], np.float32)),
            irradiance=irradiance * ~sky,
            distance=t_hit * ray_len + np.float32(1000.0) * sky,
        )

    def _radiance(self, scene, mat, sky, normals, rays, texture, tex_a, tex_b, points):
        """Planar (3, H, W) radiance and textured albedo; sky pixels get a sky model."""
        table = scene.materials
        amp = cv2.LUT(mat, lut([m.texture for m in table], np.float32))
        kind = cv2.LUT(mat, lut([m.kind for m in table], np.uint8))
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
                cv2.LUT(mat, lut([m.albedo[i] for m in table], np.float32)), shade, out=albedo[i]
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


def _tone_curve() -> np.ndarray:
    """Soft-shoulder camera response and sRGB-like gamma, tabulated in 4096 steps."""
    linear = np.linspace(0.0, _TONE_MAX, 4096)
    compressed = 1.0 - np.exp(-1.6 * linear)
    return np.rint(255.0 * compressed ** (1.0 / 2.2)).astype(np.uint8)
