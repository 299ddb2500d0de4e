"""Pathology metrics on hand-made cases (wsss_lib.evaluation.pathology)."""

import numpy as np
import pytest

from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.evaluation.pathology import REGIONS, error_breakdown, group_error_breakdown, region_counts, region_scores


def _counts(pred, gt, num_classes=3):
    return ConfusionMatrix(num_classes).update(np.asarray(pred), np.asarray(gt)).counts


def test_error_breakdown_by_hand():
    # ground truth: 4 pixels of class 1, 2 of class 2, 4 of background
    gt = [1, 1, 1, 1, 2, 2, 0, 0, 0, 0]
    pred = [1, 1, 0, 2, 2, 255, 1, 1, 1, 0]
    out = error_breakdown(_counts(pred, gt))
    # fg area 6: right 3 (two of class 1, one of class 2), confused 1 (1 -> 2), missed 2 (1 -> bg, 2 -> 255)
    assert out == pytest.approx({"right": 3 / 6, "confused": 1 / 6, "missed": 2 / 6, "spill": 3 / 6})
    class1 = error_breakdown(_counts(pred, gt), [1])
    assert class1 == pytest.approx({"right": 0.5, "confused": 0.25, "missed": 0.25, "spill": 0.75})
    assert sum(out[k] for k in ("right", "confused", "missed")) == pytest.approx(1.0)


def test_incomplete_and_overexpanded_priors_are_told_apart():
    gt = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    part_only = np.zeros_like(gt)
    part_only[1, 1] = 1
    blob = np.ones_like(gt)
    a, b = error_breakdown(_counts(part_only, gt)), error_breakdown(_counts(blob, gt))
    assert a["missed"] > a["spill"] and a["missed"] == pytest.approx(0.75) and a["spill"] == 0
    assert b["spill"] > b["missed"] and b["spill"] == pytest.approx(3.0) and b["missed"] == 0


def test_empty_foreground_and_bad_classes():
    assert np.isnan(error_breakdown(_counts([0, 0], [0, 0]))["missed"])
    with pytest.raises(ValueError, match="foreground ids"):
        error_breakdown(_counts([0], [0]), [0])


def test_group_error_breakdown():
    gt = [1, 1, 2, 2, 0]
    pred = [1, 0, 2, 2, 2]
    frame = group_error_breakdown(_counts(pred, gt), ["background", "a", "b"], {"size": {"small": ["a"], "large": ["b"]}})
    rows = frame.set_index("group")
    assert rows.loc["small", "missed"] == pytest.approx(50.0) and rows.loc["large", "spill"] == pytest.approx(50.0)
    assert rows.loc["all", "right"] == pytest.approx(75.0)
    with pytest.raises(KeyError, match="unknown class"):
        group_error_breakdown(_counts(pred, gt), ["background", "a", "b"], {"size": {"x": ["zebra"]}})


def test_region_counts_and_scores():
    p, n, f, c, b = (REGIONS[k] for k in ("part", "near_body", "far_body", "context_background", "plain_background"))
    region = np.array([p, p, n, f, f, f, f, c, c, b, b, 255])
    gt = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1])
    pred = np.array([1, 1, 1, 1, 0, 0, 2, 1, 0, 0, 0, 0])
    counts = region_counts(pred, gt, region)
    assert counts.shape == (len(REGIONS), 3) and counts.sum() == 11  # the void region pixel is left out
    scores = region_scores(counts)
    assert scores == pytest.approx({"part_recall": 1.0, "near_body_recall": 1.0, "far_body_recall": 0.25,
                                    "context_fp": 0.5, "plain_bg_fp": 0.0})
    with pytest.raises(ValueError, match="shape"):
        region_counts(pred[:3], gt, region)
    with pytest.raises(ValueError, match="region codes"):
        region_counts(pred, gt, np.full_like(region, 7))
    assert np.isnan(region_scores(np.zeros((len(REGIONS), 3)))["part_recall"])


def test_label_prior_loss():
    from wsss_lib.evaluation.pathology import label_prior_loss

    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 1]])
    p = np.array([0.5, 0.25])
    expected = -np.mean([np.log(p[0])] * 2 + [np.log(1 - p[0])] * 2 + [np.log(1 - p[1])] * 3 + [np.log(p[1])])
    assert label_prior_loss(labels) == pytest.approx(expected)
    assert label_prior_loss(np.ones((3, 2))) == pytest.approx(0.0, abs=1e-9)
    assert label_prior_loss(labels, 0.1) > label_prior_loss(labels)
    with pytest.raises(ValueError, match="N x C"):
        label_prior_loss(np.zeros(3))
