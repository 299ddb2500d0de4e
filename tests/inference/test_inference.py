"""TTA CAM inference: shapes on odd sizes, normalisation, flip handling, CAM files and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wsss_lib.formats.cam_io import cam_path, load_cam, save_cam
from wsss_lib.inference.tta import TTAConfig, infer_cams, tta_cams
from wsss_lib.models.cam import CAMOutput


class ColumnNet(nn.Module):
    """Class 1 fires on the left half of the image, class 2 everywhere (stride 4 via average pooling)."""

    def forward(self, x):
        h, w = x.shape[-2:]
        pooled = nn.functional.avg_pool2d(x, 4, ceil_mode=True)
        cams = torch.zeros(x.shape[0], 3, *pooled.shape[-2:])
        cams[:, 0, :, : pooled.shape[-1] // 2] = 1.0
        cams[:, 1] = 0.5
        cams[:, 2] = -1.0
        return CAMOutput(logits=cams.mean(dim=(2, 3)), cams=cams)


def test_tta_shapes_odd_size_and_normalisation():
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    cam, hr = tta_cams(ColumnNet(), image, np.array([1, 2]), (0.5,) * 3, (0.5,) * 3)
    assert cam.shape == (2, 10, 14) and hr.shape == (2, 37, 53)
    assert np.allclose(hr.max(axis=(1, 2)), 1.0, atol=1e-4) and np.allclose(cam.max(axis=(1, 2)), 1.0, atol=1e-4)
    assert np.allclose(hr[1], hr[1].max(), atol=1e-4)  # class 2 is uniform
    # with flips, the left-half class is mirrored onto the right half: a symmetric map (even size: exact pooling)
    _, hr_even = tta_cams(ColumnNet(), np.zeros((32, 64, 3), np.uint8), np.array([1]), (0.5,) * 3, (0.5,) * 3,
                          TTAConfig(scales=(1.0,)))
    assert np.allclose(hr_even[0], hr_even[0][:, ::-1], atol=1e-5)
    cam_noflip, hr_noflip = tta_cams(ColumnNet(), image, np.array([1]), (0.5,) * 3, (0.5,) * 3,
                                     TTAConfig(scales=(1.0,), flip=False))
    assert hr_noflip[0, :, :10].mean() > 0.9 and hr_noflip[0, :, -10:].mean() < 0.1


def test_tta_without_classes_gives_empty_maps():
    cam, hr = tta_cams(ColumnNet(), np.zeros((9, 9, 3), np.uint8), np.array([], dtype=np.int64), (0,) * 3, (1,) * 3)
    assert cam.shape == (0, 3, 3) and hr.shape == (0, 9, 9)


class TwoImages:
    split = "train"
    ids = ["x", "y"]

    def label_of(self, image_id):
        return np.array([1.0, 0.0, 1.0]) if image_id == "x" else np.zeros(3)

    def load_image(self, image_id):
        return np.full((16, 20, 3), 100, np.uint8)


def test_infer_cams_writes_files_and_resumes(tmp_path):
    counts = infer_cams(ColumnNet(), TwoImages(), tmp_path, (0,) * 3, (1,) * 3, TTAConfig(scales=(1.0,)), progress=False)
    assert counts == {"computed": 2, "skipped": 0, "missing": 0}
    record = load_cam(cam_path(tmp_path, "x"))
    assert record.keys.tolist() == [1, 3] and record.hr_cam.shape == (2, 16, 20) and record.cam.shape == (2, 4, 5)
    assert load_cam(cam_path(tmp_path, "y")).keys.size == 0
    assert infer_cams(ColumnNet(), TwoImages(), tmp_path, (0,) * 3, (1,) * 3, progress=False) == {"computed": 0, "skipped": 2, "missing": 0}


def test_cam_io_validation(tmp_path):
    with pytest.raises(ValueError, match="2 keys but cam"):
        save_cam(tmp_path / "a.npz", np.array([1, 2]), np.zeros((1, 2, 2)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="1-based"):
        save_cam(tmp_path / "a.npz", np.array([0]), np.zeros((1, 2, 2)), np.zeros((1, 4, 4)))
    with pytest.raises(FileNotFoundError, match="run the CAM inference stage"):
        load_cam(tmp_path / "missing.npz")
