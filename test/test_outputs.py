"""Per-frame outputs: resize, mask, confidence, mono8 confidence, colour mask, overlay."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ssma_ros.serve import outputs
from ssma_ros.serve.outputs import (
    colorize,
    confidence_to_mono8,
    max_probability,
    overlay,
    palette_lut,
    postprocess,
    resize_logits,
)


def reference(logits: np.ndarray, out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """torch: bilinear (align_corners=False) upsampling, full softmax, argmax and max."""
    scores = F.interpolate(
        torch.from_numpy(logits).double(), size=out_size, mode="bilinear", align_corners=False
    )
    probs = torch.softmax(scores, dim=1)[0]
    top, ids = probs.max(dim=0)
    return ids.numpy().astype(np.uint8), top.numpy()


@pytest.mark.parametrize(
    "num_classes,size,out_size",
    [(12, (6, 8), (24, 32)), (3, (5, 7), (10, 14)), (19, (4, 4), (17, 9)), (1, (3, 3), (6, 6))],
)
def test_postprocess_matches_upsample_softmax_argmax(num_classes, size, out_size):
    rng = np.random.default_rng(num_classes)
    logits = (rng.standard_normal((1, num_classes, *size)) * 3).astype(np.float32)
    seg = postprocess(logits, out_size, upsampling="bilinear")
    mask, confidence = seg.mask, seg.confidence()
    ref_mask, ref_conf = reference(logits, out_size)
    assert mask.dtype == np.uint8 and mask.shape == out_size
    assert confidence.dtype == np.float32 and confidence.shape == out_size
    np.testing.assert_allclose(confidence, ref_conf, rtol=0, atol=2e-5)
    # Masks may differ only where the two best classes are within float32 rounding.
    scores = resize_logits(logits, out_size)
    ordered = np.sort(scores, axis=0)
    gap = ordered[-1] - ordered[-2] if num_classes > 1 else np.full(out_size, np.inf)
    assert np.all((mask == ref_mask) | (gap < 1e-4))
    assert (mask == ref_mask).mean() > 0.99


@pytest.mark.parametrize(
    "num_classes,size,out_size",
    [(10, (6, 8), (12, 16)), (3, (5, 7), (11, 13)), (19, (8, 8), (4, 6))],
)
def test_nearest_upsampling_takes_each_pixel_from_its_network_pixel(num_classes, size, out_size):
    rng = np.random.default_rng(num_classes)
    logits = (rng.standard_normal((1, num_classes, *size)) * 3).astype(np.float32)
    seg = postprocess(logits, out_size)  # nearest is the default
    mask, confidence = seg.mask, seg.confidence()
    ref_mask, ref_conf = reference(logits, size)  # at the network resolution
    # The output pixel centre (i + 0.5) * h / H lies in network row floor(...), likewise columns.
    rows = ((np.arange(out_size[0]) + 0.5) * size[0] / out_size[0]).astype(int)
    cols = ((np.arange(out_size[1]) + 0.5) * size[1] / out_size[1]).astype(int)
    np.testing.assert_array_equal(mask, ref_mask[np.ix_(rows, cols)])
    np.testing.assert_allclose(confidence, ref_conf[np.ix_(rows, cols)], rtol=0, atol=2e-5)
    assert mask.dtype == np.uint8 and confidence.dtype == np.float32


def test_nearest_and_bilinear_agree_away_from_class_borders():
    """Smooth scores (a left/right split): the two modes differ only next to the border."""
    logits = np.zeros((1, 2, 6, 8), np.float32)
    logits[0, 1, :, 4:] = 5.0
    nearest = postprocess(logits, (12, 16)).mask
    bilinear = postprocess(logits, (12, 16), upsampling="bilinear").mask
    differ = np.argwhere(nearest != bilinear)
    assert np.all(np.abs(differ[:, 1] - 8) <= 1)
    with pytest.raises(ValueError, match="upsampling must be one of"):
        postprocess(logits, (12, 16), upsampling="cubic")


@pytest.mark.parametrize("upsampling", ["nearest", "bilinear"])
def test_confidence_is_computed_once_and_only_when_asked_for(upsampling, monkeypatch):
    calls = []
    real = outputs.max_probability
    monkeypatch.setattr(outputs, "max_probability", lambda *a: calls.append(1) or real(*a))
    logits = np.random.default_rng(1).standard_normal((1, 5, 4, 6)).astype(np.float32)
    seg = postprocess(logits, (8, 12), upsampling=upsampling)
    assert seg.mask.shape == (8, 12) and calls == []  # the mask alone needs no softmax
    seg.confidence_mono8(), seg.confidence()
    assert calls == [1]


def test_same_size_logits_are_not_resized():
    logits = np.random.default_rng(2).standard_normal((1, 4, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(resize_logits(logits, (5, 6)), logits[0])
    mask = postprocess(logits, (5, 6)).mask
    np.testing.assert_array_equal(mask, logits[0].argmax(axis=0))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 7), st.integers(1, 4), st.integers(1, 5)),
        elements=st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]),
    )
)
def test_mask_is_argmax_with_first_maximum_on_ties(scores):
    """Few distinct values force ties: the lowest class id wins, as with numpy's argmax."""
    mask = postprocess(scores[None], scores.shape[1:]).mask  # at the network size: no resampling
    np.testing.assert_array_equal(mask, scores.argmax(axis=0))


def test_confidence_is_stable_for_huge_logits_and_bounded():
    logits = np.array([1e4, -1e4, 9999.0, 0.0], np.float32).reshape(1, 4, 1, 1)
    logits = np.repeat(np.repeat(logits, 2, axis=2), 3, axis=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings
        seg = postprocess(logits, (2, 3))
        mask, confidence = seg.mask, seg.confidence()
    assert np.all(mask == 0)
    expected = 1.0 / (1.0 + np.exp(-1.0))  # only the 9999 logit competes
    np.testing.assert_allclose(confidence, expected, atol=1e-6)
    uniform = max_probability(np.zeros((8, 2, 2), np.float32))
    np.testing.assert_allclose(uniform, 1 / 8, atol=1e-7)


@settings(max_examples=100, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.floats(0.0, 1.0, width=32),
    )
)
def test_mono8_confidence_is_consistent_with_the_float_one(confidence):
    mono8 = confidence_to_mono8(confidence)
    assert mono8.dtype == np.uint8 and mono8.shape == confidence.shape
    assert np.all(np.abs(mono8 / 255.0 - confidence.astype(np.float64)) <= 0.5 / 255 + 1e-7)


def test_mono8_extremes():
    np.testing.assert_array_equal(
        confidence_to_mono8(np.array([[0.0, 1.0, 0.5, 1 / 255]], np.float32)), [[0, 255, 128, 1]]
    )


PALETTE = [(0, 0, 0), (255, 0, 0), (0, 200, 10)]


def test_colorize_uses_the_palette_and_black_beyond_it():
    mask = np.array([[0, 1], [2, 7]], np.uint8)
    colour = colorize(mask, PALETTE)
    assert colour.dtype == np.uint8 and colour.shape == (2, 2, 3)
    np.testing.assert_array_equal(colour, [[(0, 0, 0), (255, 0, 0)], [(0, 200, 10), (0, 0, 0)]])
    with pytest.raises(ValueError, match="palette must be K x 3"):
        palette_lut([(1, 2)])
    with pytest.raises(ValueError, match="0..255"):
        palette_lut([(1, 2, 300)])
    with pytest.raises(ValueError, match="mask must be uint8"):
        colorize(mask.astype(np.int32), PALETTE)


@settings(max_examples=40, deadline=None)
@given(
    classes=st.integers(1, 256),
    h=st.integers(1, 50),
    w=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
)
def test_colorize_equals_indexing_the_palette(classes, h, w, seed):
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (classes, 3))
    mask = rng.integers(0, 256, (h, w), dtype=np.uint8)  # ids beyond the palette too
    np.testing.assert_array_equal(colorize(mask, palette), palette_lut(palette)[mask])


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_overlay_blends_and_leaves_void_pixels_alone(alpha, seed):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (5, 6), dtype=np.uint8)
    out = overlay(rgb, mask, PALETTE, alpha, void=[0])
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    exact = (1 - alpha) * rgb + alpha * np.asarray(PALETTE, np.float64)[mask]
    labelled = mask != 0
    assert np.all(np.abs(out[labelled] - exact[labelled]) <= 1.0)
    np.testing.assert_array_equal(out[~labelled], rgb[~labelled])


def test_overlay_extremes_and_errors():
    rgb = np.full((2, 2, 3), 77, np.uint8)
    mask = np.array([[1, 2], [2, 1]], np.uint8)
    np.testing.assert_array_equal(overlay(rgb, mask, PALETTE, 0.0), rgb)
    np.testing.assert_array_equal(overlay(rgb, mask, PALETTE, 1.0), colorize(mask, PALETTE))
    with pytest.raises(ValueError, match="alpha"):
        overlay(rgb, mask, PALETTE, 1.5)
    with pytest.raises(ValueError, match="sizes differ"):
        overlay(rgb, mask[:1], PALETTE)


@pytest.mark.parametrize("upsampling", ["nearest", "bilinear"])
def test_bad_logits_rejected(upsampling):
    with pytest.raises(ValueError, match=r"shape \(1, C, h, w\)"):
        postprocess(np.zeros((3, 4, 4), np.float32), (4, 4), upsampling=upsampling)
    with pytest.raises(ValueError, match="1..256 classes"):
        postprocess(np.zeros((1, 300, 2, 2), np.float32), (4, 4), upsampling=upsampling)
    with pytest.raises(ValueError, match="out_size"):
        postprocess(np.zeros((1, 3, 2, 2), np.float32), (0, 4), upsampling=upsampling)


@pytest.mark.parametrize("upsampling", ["nearest", "bilinear"])
def test_mono8_confidence_sampled_up_equals_the_float_confidence_converted(upsampling):
    """The mono8 image is converted at the argmax resolution, then sampled: the same pixels."""
    logits = (np.random.default_rng(3).standard_normal((1, 6, 6, 8)) * 2).astype(np.float32)
    seg = postprocess(logits, (15, 20), upsampling=upsampling)
    mono8 = seg.confidence_mono8()
    assert mono8.shape == (15, 20) and mono8.dtype == np.uint8
    np.testing.assert_array_equal(mono8, confidence_to_mono8(seg.confidence()))
