"""Tests for wsss_lib.evaluation: confusion matrix, scores, CAM labelling and the threshold sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsss_lib.evaluation import (
    DEFAULT_THRESHOLDS,
    ConfusionMatrix,
    SweepResult,
    group_miou,
    labels_from_cams,
    scores_from_counts,
    sweep_counts,
    threshold_sweep,
)
from wsss_lib.formats.cam_io import CamRecord, cam_path, save_cam


# ------------------------------------------------------------------------------ confusion matrix
def _tiny_case() -> ConfusionMatrix:
    gt1 = np.array([[0, 1, 1], [2, 2, 255]], dtype=np.uint8)
    pred1 = np.array([[0, 1, 2], [2, 255, 0]], dtype=np.uint8)  # a predicted 255 on a class-2 pixel
    gt2 = np.array([[0, 0, 1], [1, 2, 2]], dtype=np.uint8)
    pred2 = np.array([[0, 1, 1], [1, 2, 0]], dtype=np.uint8)
    return ConfusionMatrix(3).update(pred1, gt1).update(pred2, gt2)


def test_hand_computed_tiny_case():
    cm = _tiny_case()
    # class 0: T=3 P=3 TP=2; class 1: T=4 P=4 TP=3; class 2: T=4 (one predicted 255) P=3 TP=2
    expected = np.array([[2, 1, 0], [0, 3, 1], [1, 0, 2]])
    np.testing.assert_array_equal(cm.matrix, expected)
    np.testing.assert_array_equal(cm.unassigned, [0, 0, 1])
    s = cm.scores()
    np.testing.assert_allclose(s.iou, [2 / 4, 3 / 5, 2 / 5])
    np.testing.assert_allclose(s.fp, [1 / 4, 1 / 5, 1 / 5])
    np.testing.assert_allclose(s.fn, [1 / 4, 1 / 5, 2 / 5])
    np.testing.assert_allclose(s.iou + s.fp + s.fn, 1.0)
    assert s.miou == pytest.approx(0.5)
    assert s.miou_fg == pytest.approx(0.5)
    assert s.mean_fp == pytest.approx(0.2)
    assert s.mean_fn == pytest.approx(0.3)
    assert s.pixel_accuracy == pytest.approx(7 / 11)
    assert s.num_pixels == 11


def test_matches_torchmetrics_jaccard_over_batches():
    from torchmetrics.classification import MulticlassJaccardIndex

    rng = np.random.default_rng(0)
    c = 6
    metric = MulticlassJaccardIndex(num_classes=c, ignore_index=255, average=None)
    cm = ConfusionMatrix(c)
    for _ in range(4):
        gt = rng.integers(0, c, size=(2, 17, 23))
        pred = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, c, size=gt.shape))
        gt[rng.random(gt.shape) < 0.1] = 255
        metric.update(torch.from_numpy(pred), torch.from_numpy(gt))
        cm.update(torch.from_numpy(pred), torch.from_numpy(gt))  # torch tensors accepted
    expected = metric.compute().numpy()
    np.testing.assert_allclose(cm.scores().iou, expected, rtol=1e-6)
    assert cm.scores().miou == pytest.approx(float(expected.mean()), rel=1e-6)


def test_absent_class_is_nan_and_excluded_from_mean():
    cm = ConfusionMatrix(4).update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    s = cm.scores()
    assert np.isnan(s.iou[2]) and np.isnan(s.iou[3])
    assert s.miou == pytest.approx((0.5 + 0.5) / 2)


def test_update_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match="value 7"):
        cm.update(np.zeros(3, np.uint8), np.array([0, 7, 255], np.uint8))
    with pytest.raises(TypeError, match="float"):
        cm.update(np.zeros(3, np.float32), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="collides"):
        ConfusionMatrix(3, ignore_index=1)
    assert cm.counts.sum() == 0  # failed updates leave the counts untouched


def test_merge_state_dict_reset():
    a, b = _tiny_case(), _tiny_case()
    a.merge(b)
    np.testing.assert_array_equal(a.counts, 2 * b.counts)
    restored = ConfusionMatrix.from_state_dict(a.state_dict())
    np.testing.assert_array_equal(restored.counts, a.counts)
    assert restored.scores().miou == pytest.approx(b.scores().miou)
    with pytest.raises(ValueError, match="merge"):
        a.merge(ConfusionMatrix(4))
    a.reset()
    assert a.counts.sum() == 0
    with pytest.raises(ValueError):
        a.counts[0, 0] = 1  # read-only view


def test_frame_summary_and_groups():
    s = _tiny_case().scores()
    frame = s.to_frame(["bg", "cat", "dog"])
    assert list(frame.columns) == ["class_id", "class", "iou", "fp", "fn"]
    assert frame.loc[frame["class"] == "dog", "fn"].item() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="2 entries"):
        s.to_frame(["a", "b"])
    assert s.summary()["miou"] == pytest.approx(0.5)
    groups = group_miou([0.5, np.nan, 0.2, 0.4], {"pets": [1, 2, 3], "absent": [1], "bg": [0]})
    assert groups["pets"] == pytest.approx(0.3)
    assert np.isnan(groups["absent"]) and groups["bg"] == 0.5
    with pytest.raises(IndexError):
        group_miou([0.1, 0.2], {"x": [2]})


def test_scores_from_square_counts():
    s = scores_from_counts(np.array([[3, 1], [0, 2]]))
    np.testing.assert_allclose(s.iou, [3 / 4, 2 / 3])


# -------------------------------------------------------------------------------- CAM labelling
def _record(keys, hr_cam) -> CamRecord:
    hr_cam = np.asarray(hr_cam, dtype=np.float32)
    cam = hr_cam[:, ::4, ::4].copy()
    return CamRecord(keys=np.asarray(keys, dtype=np.int64), cam=cam, hr_cam=hr_cam)


def test_labels_from_cams_threshold_and_ties():
    hr = np.array([[[0.1, 0.3, 0.9, 0.3]], [[0.2, 0.3, 0.1, 0.6]]])  # K=2, 1x4
    rec = _record([5, 12], hr)
    labels = labels_from_cams(rec, 0.3)
    # pixel 0: max 0.2 <= t -> bg; pixel 1: tie with t -> bg; pixel 2: class 5; pixel 3: class 12
    np.testing.assert_array_equal(labels, [[0, 0, 5, 12]])
    assert labels.dtype == np.uint8
    empty = CamRecord(np.zeros(0, np.int64), np.zeros((0, 1, 1), np.float32), np.zeros((0, 2, 3), np.float32))
    np.testing.assert_array_equal(labels_from_cams(empty, 0.1), np.zeros((2, 3)))


def test_sweep_counts_equals_per_threshold_confusion():
    rng = np.random.default_rng(1)
    c, h, w = 7, 13, 11
    keys = np.array([2, 3, 6])
    # quantised CAM values hit the thresholds exactly, exercising the tie rule
    hr = (rng.integers(0, 17, size=(3, h, w)) * 0.05).astype(np.float32)
    rec = _record(keys, hr)
    gt = rng.choice([0, 2, 3, 6, 255], size=(h, w)).astype(np.uint8)
    thresholds = np.array([0.3, 0.05, 0.8, 0.25, 0.5])  # unsorted on purpose
    counts = sweep_counts(rec.hr_cam, rec.keys, gt, thresholds, c)
    for i, t in enumerate(thresholds):
        expected = ConfusionMatrix(c).update(labels_from_cams(rec, t), gt).counts
        np.testing.assert_array_equal(counts[i], expected, err_msg=f"threshold {t}")
    with pytest.raises(ValueError, match="keys"):
        sweep_counts(rec.hr_cam, np.array([2, 3, 9]), gt, thresholds, c)


class _FakeDataset:
    def __init__(self, masks: dict[str, np.ndarray]):
        self._masks = masks
        self.ids = list(masks)

    def __len__(self) -> int:
        return len(self.ids)

    def load_mask(self, image_id: str) -> np.ndarray:
        return self._masks[image_id]

    def load_image(self, image_id: str) -> np.ndarray:
        return np.zeros((*self._masks[image_id].shape, 3), np.uint8)


def _write_dataset(tmp_path, n=4, h=16, w=20):
    """Foreground CAM 0.5 on the object, 0.2 elsewhere: every t in [0.2, 0.5) is perfect."""
    rng = np.random.default_rng(2)
    masks = {}
    for i in range(n):
        cls = int(rng.integers(1, 4))
        mask = np.zeros((h, w), np.uint8)
        mask[2 : 10 + i, 3:12] = cls
        mask[0, :] = 255
        hr = np.where(mask == cls, 0.5, 0.2).astype(np.float32)[None]
        save_cam(cam_path(tmp_path, f"img{i}"), [cls], hr[:, ::4, ::4], hr)
        masks[f"img{i}"] = mask
    return _FakeDataset(masks)


def test_threshold_sweep_finds_oracle_threshold(tmp_path):
    ds = _write_dataset(tmp_path)
    names = ["background", "a", "b", "c"]
    res = threshold_sweep(tmp_path, ds, num_classes=4, class_names=names, progress=False)
    assert isinstance(res, SweepResult)
    assert res.table.shape[0] == len(DEFAULT_THRESHOLDS) == 16
    assert {"threshold", "miou", "miou_fg", "fp", "fn", "iou_background", "iou_c"} <= set(res.table.columns)
    assert res.best_threshold == pytest.approx(0.2)  # first perfect threshold (0.2 ties go to background)
    assert res.best.miou == pytest.approx(1.0)
    assert res.table["miou"].iloc[0] < 1.0  # t=0.05 labels everything as foreground
    assert res.table["miou"].iloc[-1] < 1.0  # t=0.8 labels everything as background
    long = res.per_class()
    assert long.shape[0] == 16 * 4 and list(long.columns[:3]) == ["threshold", "class_id", "class"]
    # identity "CRF" takes the per-threshold path and must give the same counts
    res_crf = threshold_sweep(tmp_path, ds, num_classes=4, crf=lambda img, lab, n: lab, progress=False)
    for a, b in zip(res.confusion, res_crf.confusion):
        np.testing.assert_array_equal(a.counts, b.counts)
    low = threshold_sweep(tmp_path, ds, [0.3], num_classes=4, high_res=False, progress=False)
    # pixel-centre nearest downsampling of the 16x20 masks to the 4x5 CAM grid samples rows/cols 2, 6, 10, ...
    assert low.confusion[0].counts.sum() == sum((m[2::4, 2::4] != 255).sum() for m in ds._masks.values())


def test_threshold_sweep_errors(tmp_path):
    ds = _write_dataset(tmp_path)
    ds.ids.append("missing_one")
    with pytest.raises(FileNotFoundError, match="missing_one"):
        threshold_sweep(tmp_path, ds, num_classes=4, progress=False)
    ds = _write_dataset(tmp_path)
    ds._masks["img1"] = np.zeros((5, 5), np.uint8)
    with pytest.raises(ValueError, match="img1"):
        threshold_sweep(tmp_path, ds, num_classes=4, progress=False)
    ds = _write_dataset(tmp_path)
    with pytest.raises(ValueError, match="crf returned labels"):
        threshold_sweep(tmp_path, ds, num_classes=4, crf=lambda img, lab, n: lab + n, progress=False)
    with pytest.raises(ValueError, match="class_names"):
        threshold_sweep(tmp_path, ds, num_classes=4, class_names=["x"], progress=False)
