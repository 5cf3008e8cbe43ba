"""Segmentation metrics against hand-computed confusion matrices."""

import math

import numpy as np
import pytest
import torch

from ssma_ros.metrics import confusion_counts
from ssma_ros.train.metrics import ConfusionMeter, confusion_matrix, scores

# 4 classes, 0 = void. Ground truth and prediction of 12 pixels.
GT = torch.tensor([[0, 0, 1, 1, 1, 2], [2, 2, 2, 3, 3, 255]])
PRED = torch.tensor([[1, 3, 1, 1, 2, 2], [2, 0, 3, 3, 1, 1]])
# Void GT (two pixels, predicted 1 and 3) and the out-of-range 255 pixel do not count.
# Rows = truth, columns = prediction:
#   gt 1: pred 1, 1, 2        -> [0, 2, 1, 0]
#   gt 2: pred 2, 2, 0, 3     -> [1, 0, 2, 1]
#   gt 3: pred 3, 1           -> [0, 1, 0, 1]
EXPECTED = np.array([[0, 0, 0, 0], [0, 2, 1, 0], [1, 0, 2, 1], [0, 1, 0, 1]])


def test_confusion_matrix_drops_void_and_out_of_range_ground_truth():
    cm = confusion_matrix(PRED, GT, num_classes=4, void_index=0)
    assert cm.dtype == torch.int64
    np.testing.assert_array_equal(cm.numpy(), EXPECTED)


def test_scores_match_hand_computation():
    m = scores(EXPECTED, void_index=0)
    # IoU = TP / (TP + FP + FN): class 1: 2 / (2 + 1 + 1); class 2: 2 / (2 + 1 + 2);
    # class 3: 1 / (1 + 1 + 1).
    expected_iou = [2 / 4, 2 / 5, 1 / 3]
    assert math.isnan(m.iou[0])  # void has no IoU
    np.testing.assert_allclose(m.iou[1:], expected_iou)
    assert m.miou == pytest.approx(np.mean(expected_iou))
    assert m.pixel_accuracy == pytest.approx(5 / 9)  # 5 correct of 9 non-void pixels
    assert int(m.confusion.sum()) == 9  # the valid pixels


def test_predicting_void_on_a_labelled_pixel_is_a_miss():
    # Class 2's pixel predicted void lowers class 2's IoU but adds no false positive elsewhere.
    gt = torch.tensor([2, 2])
    m = scores(confusion_matrix(torch.tensor([2, 0]), gt, 3), 0)
    assert m.iou[2] == pytest.approx(0.5)
    assert math.isnan(m.iou[1])


def test_classes_absent_from_truth_and_prediction_are_left_out_of_the_mean():
    gt = torch.tensor([1, 1, 2, 2])
    pred = torch.tensor([1, 1, 2, 3])  # class 3 predicted but absent: IoU 0, counted
    m = scores(confusion_matrix(pred, gt, num_classes=5), 0)
    assert m.iou[1] == 1.0 and m.iou[2] == 0.5 and m.iou[3] == 0.0
    assert math.isnan(m.iou[4])  # neither in truth nor prediction
    assert m.miou == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_all_void_gives_nan_not_a_crash():
    m = scores(confusion_matrix(torch.tensor([1, 2]), torch.tensor([0, 0]), 3), 0)
    assert math.isnan(m.miou) and math.isnan(m.pixel_accuracy)


def test_meter_accumulates_batches_and_takes_logits():
    meter = ConfusionMeter(4, void_index=0)
    logits = torch.nn.functional.one_hot(PRED, 4).permute(2, 0, 1).float()[None]  # (1, 4, H, W)
    meter.update(logits[:, :, :1], GT[None, :1])
    meter.update(PRED[None, 1:], GT[None, 1:])
    np.testing.assert_array_equal(meter.compute().confusion, EXPECTED)


def test_host_counts_match_the_device_counts():
    """ssma_ros.metrics counts a frame with numpy (ssma-demo), training with torch: same rules."""
    np.testing.assert_array_equal(confusion_counts(PRED.numpy(), GT.numpy(), 4), EXPECTED)
    rng = np.random.default_rng(0)
    for void in (0, None):
        target = rng.integers(0, 7, (2, 31, 17)).astype(np.uint8)  # 5, 6: outside 0..4
        pred = rng.integers(0, 5, (2, 31, 17)).astype(np.uint8)
        np.testing.assert_array_equal(
            confusion_counts(pred, target, 5, void),
            confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 5, void).numpy(),
        )
    with pytest.raises(ValueError, match="0..3"):
        confusion_counts(np.array([4]), np.array([1]), 4)
    with pytest.raises(ValueError, match="shape"):
        confusion_counts(np.zeros((2, 3)), np.zeros((3, 2)), 4)


def test_bad_predictions_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(
            torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), 4
        )
    with pytest.raises(ValueError, match="0..3"):
        confusion_matrix(torch.tensor([4]), torch.tensor([1]), 4)
