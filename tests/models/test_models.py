"""Tests for wsss_lib.models: backbones, weight loading (offline EfficientNet-Lite0), frozen BN, CAM helpers."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from wsss_lib.models import (
    BackboneConfig,
    CAMClassifier,
    cams_to_labels,
    create_backbone,
    create_cam_classifier,
    freeze_batch_norm,
    has_trainable_batch_norm,
    load_offline_lite0,
    param_groups,
    psi,
    read_state_dict,
)

LITE0 = "tf_efficientnet_lite0"


def _imagenet_preprocess(image: np.ndarray, mean, std, size: int = 224, resize: int = 256) -> torch.Tensor:
    """PIL bicubic resize of the shorter side to ``resize``, centre crop ``size``, ``(x/255 - mean) / std``."""
    pil = Image.fromarray(image)
    w, h = pil.size
    scale = resize / min(w, h)
    pil = pil.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
    left, top = (pil.size[0] - size) // 2, (pil.size[1] - size) // 2
    arr = np.asarray(pil.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.chelsea()


@pytest.fixture(scope="module")
def lite0_backbone():
    return create_backbone(BackboneConfig(name=LITE0, weights="offline-lite0", output_stride=16)).eval()


# ----------------------------------------------------------------------------------------------- backbone


@pytest.mark.parametrize("name", [LITE0, "resnet18"])
def test_output_stride_16_gives_14x14_on_224(name):
    backbone = create_backbone(BackboneConfig(name=name, output_stride=16)).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 224, 224))
    assert len(feats) == 2 and backbone.reduction == [16, 16]
    assert [f.shape[1] for f in feats] == backbone.channels
    assert all(f.shape[-2:] == (14, 14) for f in feats)


def test_output_stride_8_32_and_all_stages():
    with torch.no_grad():
        os8 = create_backbone(BackboneConfig(name="resnet18", output_stride=8)).eval()
        assert os8(torch.randn(1, 3, 64, 64))[-1].shape[-2:] == (8, 8)
        os32 = create_backbone(BackboneConfig(name="resnet18", output_stride=32)).eval()
        assert os32.reduction == [16, 32] and os32(torch.randn(1, 3, 64, 64))[-1].shape[-2:] == (2, 2)
        full = create_backbone(BackboneConfig(name="resnet18", out_indices=(0, 1, 2, 3, 4))).eval()
        assert full.reduction == [2, 4, 8, 16, 16] and full.channels == [64, 64, 128, 256, 512]
        assert len(full(torch.randn(1, 3, 64, 64))) == 5


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="output_stride"):
        BackboneConfig(output_stride=4)
    with pytest.raises(ValueError, match="weights"):
        BackboneConfig(weights="imagenet")
    with pytest.raises(ValueError, match="tf_efficientnet_lite0"):
        BackboneConfig(name="resnet18", weights="offline-lite0")
    with pytest.raises(ValueError, match="cannot produce output stride 16"):
        create_backbone(BackboneConfig(name="vit_tiny_patch16_224", output_stride=16))


def test_normalization_comes_from_pretrained_cfg():
    lite = create_backbone(BackboneConfig(name=LITE0))
    assert lite.normalization == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    resnet = create_backbone(BackboneConfig(name="resnet18"))
    assert resnet.normalization == (timm.data.IMAGENET_DEFAULT_MEAN, timm.data.IMAGENET_DEFAULT_STD)


# ----------------------------------------------------------------------------------------------- weights


def test_offline_lite0_full_classifier_recognises_chelsea(chelsea):
    model = timm.create_model(LITE0, pretrained=False, num_classes=1000).eval()
    load_offline_lite0(model)
    cfg = model.pretrained_cfg
    assert tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and tuple(cfg["std"]) == (0.5, 0.5, 0.5)
    x = _imagenet_preprocess(chelsea, cfg["mean"], cfg["std"])
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top1 = int(probs.argmax())
    assert 281 <= top1 <= 285, f"top-1 {top1} is not a cat class"
    assert float(probs[281:286].sum()) > 0.5


def test_offline_lite0_backbone_equals_full_model_intermediates(chelsea, lite0_backbone):
    full = timm.create_model(LITE0, pretrained=False, output_stride=16).eval()
    load_offline_lite0(full)
    mean, std = lite0_backbone.normalization
    x = _imagenet_preprocess(chelsea, mean, std)
    with torch.no_grad():
        ours = lite0_backbone(x)
        ref = full.forward_intermediates(x, indices=[3, 4], intermediates_only=True)
    assert [o.shape for o in ours] == [r.shape for r in ref] == [(1, 112, 14, 14), (1, 320, 14, 14)]
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5)
    # not a random network: the features differ from a randomly initialised backbone's
    random = create_backbone(BackboneConfig(name=LITE0)).eval()
    with torch.no_grad():
        assert not torch.allclose(random(x)[-1], ours[-1], atol=1e-2)


def test_checkpoint_file_full_classifier_loads_into_features_backbone(tmp_path):
    torch.manual_seed(0)
    classifier = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    sd = {f"module.{k}": v for k, v in classifier.state_dict().items()}  # DDP prefix + classifier head
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": sd}, path)
    backbone = create_backbone(BackboneConfig(name="resnet18", weights=f"file:{path}"))
    ours = backbone.model.state_dict()
    ref = classifier.state_dict()
    assert set(ref) - set(ours) == {"fc.weight", "fc.bias"}
    assert all(torch.equal(v, ref[k]) for k, v in ours.items())


def test_checkpoint_mismatch_error_names_file_and_keys(tmp_path):
    sd = timm.create_model("resnet18", pretrained=False, features_only=True).state_dict()
    del sd["layer4.1.bn2.weight"]
    sd["extra.weight"] = torch.zeros(3)
    sd["conv1.weight"] = torch.zeros(1, 3, 7, 7)
    path = tmp_path / "broken.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(RuntimeError) as info:
        create_backbone(BackboneConfig(name="resnet18", weights=f"file:{path}"))
    msg = str(info.value)
    assert str(path) in msg
    assert "missing keys" in msg and "1 [layer4.1.bn2.weight]" in msg
    assert "unexpected keys" in msg and "1 [extra.weight]" in msg
    assert "shape mismatches" in msg and "conv1.weight" in msg

    # many mismatches: counts plus the first ten names
    lite_sd = timm.create_model(LITE0, pretrained=False, features_only=True).state_dict()
    path2 = tmp_path / "lite.pth"
    torch.save(lite_sd, path2)
    resnet_keys = set(timm.create_model("resnet18", pretrained=False, features_only=True).state_dict())
    n_missing, n_unexpected = len(resnet_keys - set(lite_sd)), len(set(lite_sd) - resnet_keys)
    with pytest.raises(RuntimeError) as info:
        create_backbone(BackboneConfig(name="resnet18", weights=f"file:{path2}"))
    msg = str(info.value)
    assert f"missing keys (in the model, not in the checkpoint): {n_missing} [" in msg
    assert f"unexpected keys (in the checkpoint, not in the model): {n_unexpected} [" in msg
    assert f"({n_missing - 10} more)]" in msg and f"({n_unexpected - 10} more)]" in msg

    bad = tmp_path / "not_a_state_dict.pth"
    torch.save([1, 2, 3], bad)
    with pytest.raises(ValueError, match="not_a_state_dict.pth"):
        read_state_dict(bad)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_state_dict(tmp_path / "missing.pth")


# ----------------------------------------------------------------------------------------------- frozen BN


def test_freeze_batch_norm_uses_running_stats_in_train_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), timm.layers.BatchNormAct2d(8, act_layer=nn.ReLU))
    net.train()
    for _ in range(3):  # non-trivial running statistics
        net(torch.randn(4, 3, 10, 10) * 3 + 1)
    for m in (net[1], net[2]):
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        expected = net.eval()(x)
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}

    frozen = freeze_batch_norm(net).train()
    assert not has_trainable_batch_norm(frozen)
    with torch.no_grad():
        out = frozen(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    now = frozen.state_dict()
    assert all(torch.equal(now[k], v) for k, v in stats.items())
    assert [n for n, _ in frozen.named_parameters()] == ["0.weight", "0.bias"]  # only the conv is trainable


def test_frozen_bn_backbone_train_mode_equals_eval_mode(lite0_backbone):
    frozen = create_backbone(BackboneConfig(name=LITE0, weights="offline-lite0", frozen_bn=True))
    assert not has_trainable_batch_norm(frozen)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = frozen.train()(x)[-1]
        ref = lite0_backbone(x)[-1]  # trainable-BN backbone in eval mode
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------- CAM


def test_psi_hand_made():
    cams = torch.tensor([[[[1.0, -2.0], [4.0, 2.0]],        # max 4
                          [[-1.0, -3.0], [-0.5, -7.0]],     # all negative -> zeros
                          [[0.0, 0.0], [0.0, 0.0]]]])       # all zero -> zeros
    out = psi(cams)
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.25, 0.0], [1.0, 0.5]]), rtol=1e-5, atol=1e-5)
    assert torch.equal(out[0, 1], torch.zeros(2, 2)) and torch.equal(out[0, 2], torch.zeros(2, 2))
    assert float(out[0, 0].max()) == pytest.approx(4 / (4 + 1e-5), abs=1e-7)  # official +1e-5
    rand = psi(torch.randn(3, 5, 7, 9) * 10)
    assert rand.min() >= 0 and torch.allclose(rand.amax(dim=(-2, -1)), torch.ones(3, 5), atol=1e-4)


def test_cams_to_labels_hand_made():
    cams = torch.tensor([[[[0.9, 0.1, 0.5]],     # class 0
                          [[0.2, 0.8, 0.3]],     # class 1
                          [[1.0, 1.0, 1.0]]]])   # class 2 (absent -> never chosen)
    labels = torch.tensor([[1, 1, 0]])
    out = cams_to_labels(cams, labels, bg_threshold=0.4)
    assert out.dtype == torch.int64 and out.shape == (1, 1, 3)
    assert out.tolist() == [[[1, 2, 1]]]
    assert cams_to_labels(cams, labels, bg_threshold=0.6).tolist() == [[[1, 2, 0]]]
    assert cams_to_labels(cams, torch.zeros(1, 3), bg_threshold=0.0).tolist() == [[[0, 0, 0]]]
    assert cams_to_labels(cams, labels, bg_threshold=0.5).tolist() == [[[1, 2, 0]]]  # tie -> background
    with pytest.raises(ValueError, match="labels"):
        cams_to_labels(cams, torch.ones(1, 2), 0.5)


def test_cam_classifier_logits_are_gap_of_cams_and_features():
    torch.manual_seed(0)
    model = create_cam_classifier(BackboneConfig(name="resnet18"), num_classes=5).eval()
    assert model.classifier.bias is None and model.new_modules() == [model.classifier]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), with_features=True)
    assert out.cams.shape == (2, 5, 4, 4) and out.logits.shape == (2, 5)
    torch.testing.assert_close(out.logits, out.cams.mean(dim=(2, 3)))
    assert (out.cams < 0).any(), "cams must be returned before any ReLU"
    # GAP then 1x1 conv (official with_cam=False path) gives the same logits
    torch.testing.assert_close(out.logits, model.classifier(out.features[-1].mean((2, 3), keepdim=True)).flatten(1),
                               rtol=1e-4, atol=1e-5)
    assert [f.shape[1] for f in out.features] == [256, 512]
    assert model(torch.randn(1, 3, 64, 64)).features is None


def test_param_groups_official_multipliers():
    torch.manual_seed(0)
    model = create_cam_classifier(BackboneConfig(name="resnet18"), num_classes=4)
    extra = nn.Conv2d(4, 4, 1, bias=True)  # a new layer with a bias, to populate the 20x group
    model.add_module("extra", extra)
    model.backbone.model.conv1.weight.requires_grad_(False)  # frozen -> excluded
    groups = param_groups(model, [model.classifier, extra], lr=0.1, weight_decay=1e-4)
    by_name = {g["name"]: g for g in groups}
    assert [(g["name"], g["lr_mult"], g["weight_decay"]) for g in groups] == [
        ("pretrained_weight", 1.0, 1e-4), ("pretrained_bias", 2.0, 0.0),
        ("new_weight", 10.0, 1e-4), ("new_bias", 20.0, 0.0)]
    assert all(g["lr"] == pytest.approx(0.1 * g["lr_mult"]) for g in groups)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) == len(trainable)
    assert set(ids) == {id(p) for p in trainable}
    assert {id(p) for p in by_name["new_weight"]["params"]} == {id(model.classifier.weight), id(extra.weight)}
    assert [id(p) for p in by_name["new_bias"]["params"]] == [id(extra.bias)]
    bn = model.backbone.model.bn1
    assert any(p is bn.weight for p in by_name["pretrained_weight"]["params"])  # BN gamma = weight (official)
    assert any(p is bn.bias for p in by_name["pretrained_bias"]["params"])
    torch.optim.SGD(groups, lr=0.1, momentum=0)  # accepted by the optimiser as is

    frozen = create_cam_classifier(BackboneConfig(name="resnet18", frozen_bn=True), num_classes=4)
    groups = param_groups(frozen, frozen.new_modules(), lr=0.1, weight_decay=1e-4)
    assert [g["name"] for g in groups] == ["pretrained_weight", "new_weight"]  # empty groups dropped
    with pytest.raises(ValueError, match="not part of the model"):
        param_groups(frozen, [nn.Linear(2, 2)], lr=0.1, weight_decay=0.0)


@pytest.mark.parametrize("name", [LITE0, "resnet18"])
def test_channels_last_forward_equals_contiguous(name):
    torch.manual_seed(0)
    model = create_cam_classifier(BackboneConfig(name=name), num_classes=3).eval()
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out.cams, ref.cams, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.logits, ref.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(psi(out.cams), psi(ref.cams), rtol=1e-4, atol=1e-4)
    assert isinstance(model, CAMClassifier)
