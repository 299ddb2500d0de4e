"""Class-group statistics on a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from wsss_lib.data import VOCSegmentation
from wsss_lib.data.stats import (
    class_statistics,
    collect_label_statistics,
    group_statistics,
    property_correlations,
    tertile_groups,
)
from wsss_lib.reporting.figures import cooccurrence_matrix


@pytest.fixture
def stats(tiny_voc):
    return collect_label_statistics(VOCSegmentation(tiny_voc, "train", label_check="error"), progress=False)


def test_per_class_properties_by_hand(stats):
    # image a (8x10): cat 9 px, void 5 px, background 66 px; image b: dog 40 px, car 6 px, background 34 px
    table = class_statistics(stats).set_index("class")
    assert table.loc["cat"].tolist() == pytest.approx([1, 100 * 9 / 80, 0.0, 1.0])
    assert table.loc["dog"].tolist() == pytest.approx([1, 50.0, 100.0, 2.0])
    assert table.loc["car"].tolist() == pytest.approx([1, 7.5, 100.0, 2.0])
    assert table.loc["background", "%S"] == pytest.approx(100 * (66 / 80 + 34 / 80) / 2)
    assert np.isnan(table.loc["background", "O"])


def test_valid_pixel_denominator(tiny_voc):
    stats = collect_label_statistics(VOCSegmentation(tiny_voc, "train"), size_denominator="valid", progress=False)
    table = class_statistics(stats).set_index("class")
    assert table.loc["cat", "%S"] == pytest.approx(100 * 9 / 75)
    with pytest.raises(ValueError, match="size_denominator"):
        collect_label_statistics(VOCSegmentation(tiny_voc, "train"), size_denominator="half")


def test_groups_and_correlations(stats):
    per_class = class_statistics(stats)
    groups = {"Family": {"pets": ("cat", "dog"), "vehicles": ("car",)}}
    iou = per_class[["class"]].assign(CAM=[80.0, 10.0, 40.0, 70.0])
    table = group_statistics(per_class, groups, values=iou).set_index("group")
    assert table.loc["pets", ["O", "%S", "%C", "L", "CAM"]].tolist() == pytest.approx([1, (11.25 + 50) / 2, 50, 1.5, 25])
    assert table.loc["all", "%S"] == pytest.approx((11.25 + 50 + 7.5) / 3)
    assert table.loc["-", "CAM"] == 80.0  # the background row carries the background IoU
    assert table.loc["all", "CAM"] == pytest.approx((80 + 10 + 40 + 70) / 4)  # overall = mIoU with background
    corr = property_correlations(per_class, iou)
    sizes, cam = np.array([11.25, 50, 7.5]), np.array([10.0, 40.0, 70.0])
    assert corr.loc["%S", "CAM"] == pytest.approx(100 * np.corrcoef(sizes, cam)[0, 1])
    assert corr.loc["%C", "L"] == pytest.approx(100.0)
    with pytest.raises(KeyError, match="unknown classes"):
        group_statistics(per_class, {"F": {"g": ("horse",)}})


def test_cooccurrence_and_tertiles(stats):
    matrix = cooccurrence_matrix(stats)
    assert matrix.loc["dog", "car"] == 100.0 and matrix.loc["cat", "dog"] == 0.0
    groups = tertile_groups(class_statistics(stats))
    assert groups["Size"] == {"Small": ("car",), "Mid": ("cat",), "Large": ("dog",)}
