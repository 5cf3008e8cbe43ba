"""The procedural scene generator: determinism, conditions, coverage, designed ambiguities."""

import hashlib

import numpy as np
import pytest

from ssma_ros.data.classes import load_class_set
from ssma_ros.data.encodings import hha
from ssma_ros.data.preprocess import AuxSpec, Preprocess
from ssma_ros.data.synthetic import (
    BENCHMARKS,
    CLASSES,
    CONDITIONS,
    CONDITIONS_V2,
    MANNEQUIN,
    PALETTE,
    PERSON,
    ROAD,
    SIDEWALK,
    SKY,
    SPLITS,
    THERMAL_RANGE,
    THERMAL_SCALE,
    VEHICLE,
    WALL,
    SyntheticDataset,
    SyntheticScenes,
    degraded,
)

H, W = 96, 128


@pytest.fixture(scope="module")
def scenes():
    return SyntheticScenes(H, W, seed=7)


@pytest.fixture(scope="module")
def clear_frames(scenes):
    return [scenes.sample(i) for i in range(40)]


def celsius(thermal: np.ndarray) -> np.ndarray:
    return thermal.astype(np.float64) / THERMAL_SCALE - 273.15


def test_sample_types_and_shapes(scenes):
    s = scenes.sample(0)
    assert s.rgb.shape == (H, W, 3) and s.rgb.dtype == np.uint8
    assert s.depth.shape == (H, W) and s.depth.dtype == np.float32
    assert s.thermal.shape == (H, W) and s.thermal.dtype == np.uint16
    assert s.label.shape == (H, W) and s.label.dtype == np.uint8
    assert s.label.max() < len(CLASSES)
    assert s.camera.fx > 0 and s.camera.cx == W / 2
    valid = s.depth[np.isfinite(s.depth)]
    assert valid.min() > 0.1 and valid.max() <= scenes.max_range_m + 5


def test_deterministic_per_seed_index_condition_strength():
    a, b = SyntheticScenes(H, W, seed=3), SyntheticScenes(H, W, seed=3)
    for condition in CONDITIONS:
        x, y = a.sample(11, condition, 0.7), b.sample(11, condition, 0.7)
        for field in ("rgb", "depth", "thermal", "label"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
    other = SyntheticScenes(H, W, seed=4).sample(11)
    assert not np.array_equal(other.label, a.sample(11).label)
    assert not np.array_equal(a.sample(12).label, a.sample(11).label)


def test_conditions_degrade_rgb_only(scenes):
    clear = scenes.sample(5)
    for condition in CONDITIONS[1:]:
        weak, strong = scenes.sample(5, condition, 0.3), scenes.sample(5, condition, 1.0)
        for s in (weak, strong):  # geometry, depth, heat and labels are shared by all conditions
            np.testing.assert_array_equal(s.depth, clear.depth)
            np.testing.assert_array_equal(s.thermal, clear.thermal)
            np.testing.assert_array_equal(s.label, clear.label)
        np.testing.assert_array_equal(scenes.sample(5, condition, 0.0).rgb, clear.rgb)
        change_weak = np.abs(weak.rgb.astype(int) - clear.rgb).mean()
        change_strong = np.abs(strong.rgb.astype(int) - clear.rgb).mean()
        assert 1.0 < change_weak < change_strong, condition


def test_fog_grows_with_distance(scenes):
    near_change, far_change = [], []
    for index in range(8):
        clear, fog = scenes.sample(index), scenes.sample(index, "fog", 0.5)
        change = np.abs(fog.rgb.astype(int) - clear.rgb).mean(axis=2)
        road = (clear.label == ROAD) & np.isfinite(clear.depth)  # one surface, many distances
        near_change += list(change[road & (clear.depth < 6)])
        far_change += list(change[road & (clear.depth > 15)])
    assert len(near_change) > 200 and len(far_change) > 200
    assert np.mean(far_change) > 1.5 * np.mean(near_change)


def test_night_is_dark_and_noisy(scenes):
    clear, night = scenes.sample(2), scenes.sample(2, "night", 1.0)
    sky = clear.label == SKY
    assert night.rgb[sky].mean() < 0.5 * clear.rgb[sky].mean()
    # Noise: neighbouring pixels of the same surface differ more at night.
    road = (clear.label == ROAD)[:, 1:] & (clear.label == ROAD)[:, :-1]
    jitter = lambda im: np.abs(np.diff(im.astype(int).mean(axis=2), axis=1))[road].mean()  # noqa: E731
    assert jitter(night.rgb) > jitter(clear.rgb)


def test_class_coverage(clear_frames):
    present = np.array(
        [np.bincount(s.label.ravel(), minlength=len(CLASSES)) > 0 for s in clear_frames]
    )
    share = np.sum(
        [np.bincount(s.label.ravel(), minlength=len(CLASSES)) for s in clear_frames], axis=0
    )
    share = share / share.sum()
    assert (present[:, 1:].mean(axis=0) >= 0.6).all(), present.mean(
        axis=0
    )  # every class in most frames
    assert present[:, 0].any()  # void clutter exists
    assert (share[1:] > 0.002).all(), share  # no class is a handful of pixels
    assert share.max() < 0.5  # and none swamps the rest


def test_depth_has_sensor_like_invalid_pixels(clear_frames):
    for s in clear_frames[:10]:
        assert np.isnan(s.depth[s.label == SKY]).all()
    near = [s.depth[(s.label != SKY)] for s in clear_frames]
    invalid = np.mean([np.isnan(d).mean() for d in near])
    assert 0.01 < invalid < 0.2


def test_heat_only_pair_person_vs_mannequin(clear_frames):
    rgb_person, rgb_mannequin, warmer = [], [], []
    for s in clear_frames:
        person, mannequin = s.label == PERSON, s.label == MANNEQUIN
        if person.sum() < 20 or mannequin.sum() < 20:
            continue
        rgb_person.append(s.rgb[person].mean(axis=0))
        rgb_mannequin.append(s.rgb[mannequin].mean(axis=0))
        t = celsius(s.thermal)
        warmer.append(np.median(t[person]) - np.median(t[mannequin]))
    assert len(warmer) >= 15
    # Colour statistics are the same (per channel mean and spread across instances) ...
    p, m = np.array(rgb_person), np.array(rgb_mannequin)
    assert np.abs(p.mean(axis=0) - m.mean(axis=0)).max() < 12
    assert np.abs(p.std(axis=0) - m.std(axis=0)).max() < 12
    # ... the heat is not: people are warmer in almost every frame, by several kelvin.
    assert np.mean(np.array(warmer) > 0) >= 0.8
    assert np.median(warmer) > 3.0


def test_colour_only_pair_road_vs_sidewalk(clear_frames):
    heat_gaps = []
    for s in clear_frames:
        road, walk = s.label == ROAD, s.label == SIDEWALK
        if road.sum() < 100 or walk.sum() < 100:
            continue
        angle = hha(s.depth, s.camera, 0.5, 50.0, max_height_m=10.0)[..., 2]
        # Same geometry (horizontal: angle to up ~0, +38) ...
        assert (
            abs(np.median(angle[road & (angle > 0)]) - np.median(angle[walk & (angle > 0)])) <= 6
        )
        # ... different colour: concrete is much lighter than asphalt under the same light ...
        luminance = s.rgb.mean(axis=2)
        assert np.median(luminance[walk]) > 1.15 * np.median(luminance[road])
        t = celsius(s.thermal)
        heat_gaps.append(np.median(t[road]) - np.median(t[walk]))
    # ... and the same heat: only texture mottling (+-1 K, either sign) separates them.
    assert len(heat_gaps) >= 10
    assert np.abs(heat_gaps).max() < 1.5 and abs(np.mean(heat_gaps)) < 0.3


def test_geometry_only_pair_sidewalk_vs_wall(clear_frames):
    checked = 0
    for s in clear_frames:
        walk, wall = s.label == SIDEWALK, s.label == WALL
        if walk.sum() < 100 or wall.sum() < 100:
            continue
        rgb = s.rgb.astype(np.float64) + 1.0
        chroma = rgb / rgb.sum(axis=2, keepdims=True)
        # Same material: the same chromaticity (lighting changes brightness, not hue) ...
        assert (
            np.abs(np.median(chroma[walk], axis=0) - np.median(chroma[wall], axis=0)).max() < 0.02
        )
        # ... different geometry: horizontal vs vertical.
        angle = hha(s.depth, s.camera, 0.5, 50.0, max_height_m=10.0)[..., 2]
        assert np.median(angle[wall & (angle > 0)]) - np.median(angle[walk & (angle > 0)]) > 60
        checked += 1
    assert checked >= 10


def test_palette_matches_the_class_config():
    config = load_class_set("synthetic")
    assert config.names == CLASSES
    np.testing.assert_array_equal(config.palette, PALETTE)
    assert config.void == (0,)


def test_invalid_arguments(scenes):
    with pytest.raises(ValueError):
        scenes.sample(0, "snow")
    with pytest.raises(ValueError):
        scenes.sample(0, "fog", 1.5)
    with pytest.raises(ValueError):
        SyntheticScenes(4, 4)


# -- dataset helper -------------------------------------------------------------------------------


def test_dataset_splits_are_disjoint_and_items_feed_preprocess():
    train = SyntheticDataset(
        "train", 4, H, W, seed=1, aux="depth", conditions=("clear", "fog"), strength=(0.2, 0.8)
    )
    val = SyntheticDataset("val", 2, H, W, seed=1, aux="thermal")
    item = train[1]
    assert set(item) >= {
        "rgb",
        "aux",
        "aux_kind",
        "aux_encoding",
        "label",
        "camera",
        "name",
        "condition",
        "strength",
    }
    assert item["condition"] == "fog" and 0.2 <= item["strength"] <= 0.8
    assert train[0]["condition"] == "clear" and train[0]["strength"] == 0.0
    assert (
        train[1]["strength"]
        == SyntheticDataset(
            "train", 4, H, W, seed=1, conditions=("clear", "fog"), strength=(0.2, 0.8)
        )[1]["strength"]
    )
    names = {it["name"].split("/")[2] for it in list(train) + list(val)}
    assert len(names) == 6 and f"{SPLITS['val']:07d}" in names
    np.testing.assert_array_equal(train[-1]["label"], train[3]["label"])
    with pytest.raises(IndexError):
        train[4]

    depth_pre = Preprocess(48, 64, aux_spec=AuxSpec("depth", "jet", depth_range_m=(0.5, 50.0)))
    x = depth_pre.aux(item["aux"], item["aux_encoding"], item["camera"])
    assert x.shape == (1, 3, 48, 64) and np.isfinite(x).all()
    thermal = val[0]
    assert thermal["aux_kind"] == "infrared" and thermal["aux"].dtype == np.uint16
    ir_pre = Preprocess(
        48, 64, aux_spec=AuxSpec("infrared", "intensity", intensity_range=THERMAL_RANGE)
    )
    assert ir_pre.encode_aux(thermal["aux"], thermal["aux_encoding"]).std() > 5  # visible contrast


@pytest.mark.parametrize(
    "kwargs",
    [
        {"split": "holdout"},
        {"length": 0},
        {"aux": "lidar"},
        {"conditions": ()},
        {"conditions": ("clear", "hail")},
    ],
)
def test_dataset_validation(kwargs):
    args = {"split": "train", "length": 2, "height": 16, "width": 16, **kwargs}
    with pytest.raises(ValueError):
        SyntheticDataset(**args)


# -- benchmark v2 -------------------------------------------------------------------------------

#: sha256 of rgb, depth, thermal and label of ten v1 frames, computed with the generator as it
#: was before v2 existed (commit e9ea89d): v1 must stay reproducible bit for bit.
V1_FRAMES_SHA256 = "45c42fac1b63e0a742af2f080f78365d18cae8d67b74ad90c15cd4c51b88ed0e"


def test_v1_frames_are_bit_identical_to_the_generator_before_v2():
    scenes = SyntheticScenes(48, 64, seed=3)  # benchmark="v1" is the default
    digest = hashlib.sha256()
    for index, condition in zip((0, 1, 7, 12, 2_000_003), CONDITIONS):
        for strength in (1.0, 0.6):
            s = scenes.sample(index, condition, strength)
            for array in (s.rgb, s.depth, s.thermal, s.label):
                digest.update(np.ascontiguousarray(array).tobytes())
    assert digest.hexdigest() == V1_FRAMES_SHA256


@pytest.fixture(scope="module")
def v2():
    return SyntheticScenes(H, W, seed=7, benchmark="v2")


def test_v2_is_deterministic_and_its_conditions_are_not_in_v1(v2):
    other = SyntheticScenes(H, W, seed=7, benchmark="v2")
    for condition in CONDITIONS_V2:
        x, y = v2.sample(3, condition, 0.8), other.sample(3, condition, 0.8)
        for field in ("rgb", "depth", "thermal", "label"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
    assert BENCHMARKS == {"v1": CONDITIONS, "v2": CONDITIONS_V2}
    with pytest.raises(ValueError, match="benchmark v1"):
        SyntheticScenes(H, W).sample(0, "sunlight")
    with pytest.raises(ValueError, match="benchmark"):
        SyntheticScenes(H, W, benchmark="v3")


@pytest.mark.parametrize("condition", CONDITIONS_V2[1:])
def test_v2_condition_degrades_exactly_the_sensors_it_names(v2, condition):
    """Each condition changes the sensors `degraded` names and leaves the others as in clear."""
    sensors = degraded(condition)
    assert sensors  # every v2 condition degrades something
    for index in (0, 1, 2):
        clear, bad = v2.sample(index), v2.sample(index, condition, 1.0)
        np.testing.assert_array_equal(bad.label, clear.label)
        assert (not np.array_equal(bad.rgb, clear.rgb)) == ("rgb" in sensors)
        assert (not np.array_equal(bad.thermal, clear.thermal)) == ("thermal" in sensors)
        same_holes = np.array_equal(np.isnan(bad.depth), np.isnan(clear.depth))
        assert (not same_holes) == ("depth" in sensors)
        if "depth" not in sensors:  # a new capture: only flying pixels at edges differ
            valid = np.isfinite(clear.depth)
            assert (bad.depth[valid] == clear.depth[valid]).mean() > 0.8
        zero = v2.sample(index, condition, 0.0)  # strength 0 is clear
        np.testing.assert_array_equal(zero.rgb, clear.rgb)
        np.testing.assert_array_equal(zero.thermal, clear.thermal)
        np.testing.assert_array_equal(np.isnan(zero.depth), np.isnan(clear.depth))


def test_v2_depth_failures_follow_the_sensor_physics(v2):
    holes = {c: [] for c in ("clear", "sunlight", "specular")}
    concrete_vs_road = []
    vehicle_holes = {"clear": [], "specular": []}
    for index in range(12):
        frames = {c: v2.sample(index, c, 1.0) for c in ("clear", "sunlight", "specular", "range")}
        ground = frames["clear"].label != SKY
        for c in holes:
            holes[c].append(np.isnan(frames[c].depth[ground]).mean())
        sun = frames["sunlight"]
        concrete = np.isin(sun.label, (SIDEWALK, WALL))
        if concrete.sum() > 200 and (sun.label == ROAD).sum() > 200:
            concrete_vs_road.append(
                np.isnan(sun.depth[concrete]).mean()
                - np.isnan(sun.depth[sun.label == ROAD]).mean()
            )
        vehicle = frames["clear"].label == VEHICLE
        if vehicle.sum() > 50:
            for c in vehicle_holes:
                vehicle_holes[c].append(np.isnan(frames[c].depth[vehicle]).mean())
        # range: no return beyond the short range (8 m at strength 1, noise aside)
        far = frames["range"].depth
        assert np.nanmax(far, initial=0.0) < 9.5
    assert np.mean(holes["sunlight"]) > np.mean(holes["clear"]) + 0.1
    # washed out where the projector pattern has no texture to add: concrete more than asphalt
    assert len(concrete_vs_road) >= 5 and np.mean(concrete_vs_road) > 0.05
    assert np.mean(vehicle_holes["specular"]) > np.mean(vehicle_holes["clear"]) + 0.2
    assert np.mean(holes["specular"]) > np.mean(holes["clear"])


def test_v2_thermal_loses_the_person_mannequin_contrast_in_crossover_and_less_in_fog(v2):
    gaps = {c: [] for c in ("clear", "fog", "crossover")}
    for index in range(30):
        frames = {c: v2.sample(index, c, 1.0) for c in gaps}
        person, mannequin = frames["clear"].label == PERSON, frames["clear"].label == MANNEQUIN
        if person.sum() < 20 or mannequin.sum() < 20:
            continue
        for c, s in frames.items():
            t = celsius(s.thermal)
            gaps[c].append(np.median(t[person]) - np.median(t[mannequin]))
    assert len(gaps["clear"]) >= 10
    clear, fog, crossover = (np.median(gaps[c]) for c in ("clear", "fog", "crossover"))
    assert clear > 3.0 and crossover < 0.15 * clear
    assert crossover < fog < clear  # fog attenuates LWIR, but less than it does light
    assert fog > 0.3 * clear


def test_v2_dataset_items_carry_the_benchmark():
    items = SyntheticDataset(
        "test", 2, 32, 48, seed=1, conditions=("sunlight", "crossover"), benchmark="v2"
    )
    assert [it["condition"] for it in items] == ["sunlight", "crossover"]
    with pytest.raises(ValueError, match="v1"):
        SyntheticDataset("test", 2, 32, 48, conditions=("sunlight",))
