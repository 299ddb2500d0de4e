"""Tests for wsss_lib.ops.crf: presets, equality with direct pydensecrf calls, validation, effect."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

dcrf = pytest.importorskip("pydensecrf.densecrf")
from pydensecrf.utils import unary_from_labels, unary_from_softmax  # noqa: E402

from wsss_lib.ops.crf import (  # noqa: E402
    CRF_PRESETS,
    CrfParams,
    crf_labels,
    crf_preset,
    crf_softmax,
    dense_crf,
    label_crf_fn,
)


def _direct(image, unary, n, h, w, g_sxy, g_compat, b_sxy, b_srgb, b_compat, t):
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(np.ascontiguousarray(unary))
    d.addPairwiseGaussian(sxy=g_sxy, compat=g_compat)
    d.addPairwiseBilateral(sxy=b_sxy, srgb=b_srgb, rgbim=np.ascontiguousarray(image), compat=b_compat)
    return np.array(d.inference(t)).reshape(n, h, w)


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    h, w, n = 24, 32, 4
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, n, size=(h, w))
    logits = rng.normal(size=(n, h, w))
    probs = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    return image, labels, probs, n, h, w


def test_preset_values():
    assert crf_preset("label") == CrfParams("labels", 0.7, 3, 3, 50, 5, 10, 10)
    assert crf_preset("label_pseudo_mask") == CrfParams("labels", 0.9, 3, 3, 50, 5, 10, 1)
    assert crf_preset("softmax_psa") == CrfParams("softmax", None, 3, 3, 80, 13, 10, 10)
    assert crf_preset("deeplab_v2") == CrfParams("softmax", None, 1, 3, 67, 3, 4, 10)
    assert crf_preset("label", iterations=5).iterations == 5
    assert CRF_PRESETS["label"].iterations == 10  # overrides never touch the table
    with pytest.raises(TypeError):
        CRF_PRESETS["new"] = CRF_PRESETS["label"]  # read-only mapping
    with pytest.raises(dataclasses.FrozenInstanceError):
        CRF_PRESETS["label"].iterations = 3
    with pytest.raises(KeyError, match="unknown CRF preset"):
        crf_preset("nope")
    with pytest.raises(ValueError, match="gt_prob"):
        CrfParams("labels", 1.0, 3, 3, 50, 5, 10, 10)


@pytest.mark.parametrize("name", ["label", "label_pseudo_mask"])
def test_label_presets_match_direct_pydensecrf(small, name):
    image, labels, _, n, h, w = small
    p = crf_preset(name)
    unary = unary_from_labels(labels, n, gt_prob=p.gt_prob, zero_unsure=False)
    q = _direct(image, unary, n, h, w, p.gaussian_sxy, p.gaussian_compat, p.bilateral_sxy, p.bilateral_srgb,
                p.bilateral_compat, p.iterations)
    out = crf_labels(image, labels, n, name)
    assert out.dtype == np.uint8 and out.shape == (h, w)
    np.testing.assert_array_equal(out, np.argmax(q, axis=0))
    np.testing.assert_array_equal(dense_crf(image, unary, p), q.astype(np.float32))  # marginals too
    if name == "label":
        assert (out != labels).any()  # 10 iterations at gt_prob 0.7 change random labels


@pytest.mark.parametrize("name", ["softmax_psa", "deeplab_v2"])
def test_softmax_presets_match_direct_pydensecrf(small, name):
    image, _, probs, n, h, w = small
    p = crf_preset(name)
    q = _direct(image, unary_from_softmax(probs), n, h, w, p.gaussian_sxy, p.gaussian_compat, p.bilateral_sxy,
                p.bilateral_srgb, p.bilateral_compat, p.iterations)
    out = crf_softmax(image, probs, name)
    assert out.dtype == np.float32 and out.shape == (n, h, w)
    np.testing.assert_array_equal(out, q.astype(np.float32))
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-4)


def test_non_contiguous_inputs(small):
    image, labels, probs, n, _, _ = small
    flipped = image[:, ::-1]  # negative-stride view
    ref = crf_labels(np.ascontiguousarray(flipped), np.ascontiguousarray(labels.T.T[:, ::-1]), n)
    np.testing.assert_array_equal(crf_labels(flipped, labels[:, ::-1], n), ref)
    probs_view = np.ascontiguousarray(probs.transpose(1, 2, 0)).transpose(2, 0, 1)  # non-contiguous (n,H,W)
    assert not probs_view.flags.c_contiguous
    np.testing.assert_array_equal(crf_softmax(image, probs_view), crf_softmax(image, np.ascontiguousarray(probs)))


def test_validation_errors(small):
    image, labels, probs, n, h, w = small
    with pytest.raises(ValueError, match="uint8"):
        crf_labels(image.astype(np.float32), labels, n)
    with pytest.raises(ValueError, match="H x W x 3"):
        crf_labels(image[..., :2], labels, n)
    with pytest.raises(ValueError, match=r"\(23, 32\).*\(24, 32, 3\)"):
        crf_labels(image, labels[:-1], n)
    with pytest.raises(ValueError, match=r"expected \[0, 3\)"):
        crf_labels(image, labels, 3)
    with pytest.raises(ValueError, match="integer"):
        crf_labels(image, labels.astype(np.float32), n)
    with pytest.raises(ValueError, match="n_labels"):
        crf_labels(image, np.zeros((h, w), np.int64), 1)
    with pytest.raises(ValueError, match="sum to 1"):
        crf_softmax(image, probs * 2)
    with pytest.raises(ValueError, match="probs shape"):
        crf_softmax(image, probs[:, :-1])
    with pytest.raises(ValueError, match="'softmax' unary"):
        crf_labels(image, labels, n, "softmax_psa")
    with pytest.raises(ValueError, match="'labels' unary"):
        crf_softmax(image, probs, "label")


def _four_regions(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((h, w), np.int64)
    truth[: h // 2, w // 2 :] = 1
    truth[h // 2 :, : w // 2] = 2
    truth[h // 2 :, w // 2 :] = 3
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40]])
    image = np.clip(colours[truth] + rng.normal(0, 8, size=(h, w, 3)), 0, 255).astype(np.uint8)
    return image, truth, rng


def test_label_crf_denoises_four_regions():
    image, truth, rng = _four_regions()
    noisy = np.where(rng.random(truth.shape) < 0.3, rng.integers(0, 4, size=truth.shape), truth)
    before = (noisy == truth).mean()
    after = (crf_labels(image, noisy, 4) == truth).mean()
    assert before < 0.8 and after > 0.97, (before, after)


def test_softmax_crf_denoises_four_regions():
    image, truth, rng = _four_regions(seed=1)
    logits = np.eye(4)[truth].transpose(2, 0, 1) * 1.0 + rng.normal(0, 0.8, size=(4, *truth.shape))
    probs = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    before = (probs.argmax(0) == truth).mean()
    after = (crf_softmax(image, probs, "softmax_psa").argmax(0) == truth).mean()
    assert before < 0.8 and after > 0.97, (before, after)


def test_label_crf_fn_signature(small):
    image, labels, _, n, _, _ = small
    fn = label_crf_fn("label_pseudo_mask")
    np.testing.assert_array_equal(fn(image, labels, n), crf_labels(image, labels, n, "label_pseudo_mask"))


def test_read_only_image_is_accepted():
    """Images decoded by PIL (np.asarray) are read-only; the CRF must copy rather than fail."""
    image = np.zeros((12, 12, 3), np.uint8)
    image[:, 6:] = 255
    image.setflags(write=False)
    labels = np.zeros((12, 12), np.uint8)
    labels[:, 6:] = 1
    assert crf_labels(image, labels, 2).shape == (12, 12)
