"""Saliency pipeline: scoring protocols, file formats, pseudo-masks, TTA, hint transform, detector,
and the C²AM / C²AM-H / detector stages end to end on the tiny synthetic benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.saliency import constant_saliency_floors, gt_prior_labels, labels_with_saliency, score_saliency
from wsss_lib.formats.cam_io import CamRecord
from wsss_lib.formats.saliency_io import load_pseudo_saliency, load_saliency, save_saliency
from wsss_lib.inference.saliency import SaliencyTTAConfig, tta_saliency
from wsss_lib.methods.saliency_detector import saliency_bce
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.saliency import create_saliency_detector
from wsss_lib.refinement.saliency import pseudo_saliency_mask
from wsss_lib.train.optim import OptimConfig, build_optimizer


class FakeMasks:
    """The part of a dataset the scoring functions read."""

    def __init__(self, masks: dict[str, np.ndarray], num_classes: int = 4):
        self.masks, self.num_classes, self.ids, self.split = masks, num_classes, list(masks), "train"

    def load_mask(self, image_id):
        return self.masks[image_id]


# ------------------------------------------------------------------------------------------ scoring rules
def test_gt_prior_protocol_on_a_hand_made_case():
    gt = np.array([[0, 1, 1], [2, 255, 0]], np.uint8)
    sal = np.array([[1.0, 0.9, 0.2], [0.7, 1.0, 0.1]], np.float32)
    # salient object pixels keep their class; salient background -> largest object class (1, two pixels) = a miss;
    # non-salient -> background
    assert gt_prior_labels(gt, sal).tolist() == [[1, 1, 0], [2, 1, 0]]
    assert gt_prior_labels(gt, sal, salient_threshold=0.8).tolist() == [[1, 1, 0], [0, 1, 0]]
    assert gt_prior_labels(np.zeros((2, 2), np.uint8), np.ones((2, 2), np.float32)).tolist() == [[0, 0], [0, 0]]


def test_saliency_is_the_background_channel():
    record = CamRecord(keys=np.array([3]), cam=np.zeros((1, 1, 1), np.float32),
                       hr_cam=np.array([[[0.2, 0.9, 0.4]]], np.float32))
    sal = np.array([[1.0, 0.05, 0.5]], np.float32)
    # bg = 1 - S = [0, 0.95, 0.5] against the CAM [0.2, 0.9, 0.4]
    assert labels_with_saliency(record, sal).tolist() == [[3, 0, 0]]
    empty = CamRecord(np.zeros(0, np.int64), np.zeros((0, 1, 1), np.float32), np.zeros((0, 1, 3), np.float32))
    assert labels_with_saliency(empty, sal).tolist() == [[0, 0, 0]]
    with pytest.raises(ValueError, match="does not match"):
        labels_with_saliency(record, np.ones((2, 2), np.float32))


def test_score_saliency_perfect_and_constant_maps(tmp_path):
    gt = {"a": np.array([[0, 1], [2, 0]], np.uint8), "b": np.array([[3, 3], [0, 255]], np.uint8)}
    data = FakeMasks(gt)
    for image_id, mask in gt.items():
        save_saliency(tmp_path / f"{image_id}.png", ((mask != 0) & (mask != 255)).astype(np.float32))
    assert score_saliency(data, tmp_path, "gt").scores().miou == pytest.approx(1.0)
    floors = constant_saliency_floors(data, progress=False)
    # nothing salient: background IoU 3 / 7 (7 valid pixels predicted background), the 3 object classes 0
    assert floors["nothing salient"] == pytest.approx(100 * (3 / 7) / 4)
    # everything salient: background 0; in "a" both background pixels go to class 1 (tie with 2 -> lowest id),
    # in "b" the background pixel goes to class 3: IoUs 0, 1/3, 1, 2/3
    assert floors["everything salient"] == pytest.approx(100 * (0 + 1 / 3 + 1 + 2 / 3) / 4)
    with pytest.raises(ValueError, match="needs cams_dir"):
        score_saliency(data, tmp_path, "priors")
    with pytest.raises(ValueError, match="protocol"):
        score_saliency(data, tmp_path, "other")


# ------------------------------------------------------------------------------------------ file formats
def test_saliency_png_round_trip_and_errors(tmp_path):
    sal = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    save_saliency(tmp_path / "x.png", sal)
    assert np.abs(load_saliency(tmp_path / "x.png", (3, 4)) - sal).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(ValueError, match=r"is \(3, 4\), the image is \(4, 3\)"):
        load_saliency(tmp_path / "x.png", (4, 3))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        save_saliency(tmp_path / "y.png", sal * 2)
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="mode 'L'"):
        load_saliency(tmp_path / "rgb.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_saliency(tmp_path / "missing.png")


def test_pseudo_saliency_rule_crf_and_stray_values(tmp_path):
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 220  # a bright square on a dark background
    sal = np.zeros((40, 40), np.float32)
    sal[12:28, 12:28] = 0.6  # saliency slightly inside the square
    sal[0, 0] = 0.2  # ties go to the background (official: pad 0.2, argmax)
    raw = pseudo_saliency_mask(image, sal, 0.2, crf="")
    assert raw.sum() == 16 * 16 and raw[0, 0] == 0
    refined = pseudo_saliency_mask(image, sal, 0.2, crf="label")
    square = np.zeros((40, 40), bool)
    square[10:30, 10:30] = True
    assert (refined.astype(bool) == square).mean() > (raw.astype(bool) == square).mean()
    Image.fromarray(np.array([[0, 255], [7, 0]], np.uint8), mode="L").save(tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"bad.png.*\[7\]"):
        load_pseudo_saliency(tmp_path / "bad.png")


# ------------------------------------------------------------------------------------------ TTA
class ConstantLogits(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0], 1, (x.shape[2] + 15) // 16, (x.shape[3] + 15) // 16), self.value)


def test_tta_saliency_activation_and_inversion():
    image = np.zeros((37, 23, 3), np.uint8)
    cfg = SaliencyTTAConfig(scales=(0.5, 1.0), activation="relu")
    relu = tta_saliency(ConstantLogits(0.3), image, (0.5,) * 3, (0.5,) * 3, cfg)
    assert relu.shape == (37, 23) and np.allclose(relu, 0.3 / (0.3 + 1e-5), atol=1e-4)  # max-normalised
    # inverted: one_minus -> relu(1 - 0.3) > 0, negate -> relu(-0.3) = 0
    inv = tta_saliency(ConstantLogits(0.3), image, (0.5,) * 3, (0.5,) * 3, SaliencyTTAConfig((1.0,), invert=True))
    neg = tta_saliency(ConstantLogits(0.3), image, (0.5,) * 3, (0.5,) * 3,
                       SaliencyTTAConfig((1.0,), invert=True, inversion="negate"))
    assert inv.min() > 0.99 and neg.max() == 0.0
    sig = tta_saliency(ConstantLogits(0.0), image, (0.5,) * 3, (0.5,) * 3, SaliencyTTAConfig((1.0, 2.0), activation="sigmoid"))
    assert np.allclose(sig, 0.5)


# ------------------------------------------------------------------------------------------ training pieces
def test_hint_follows_the_image_through_the_augmentation():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    mask = np.zeros((50, 70), np.uint8)
    hint = image[..., 0].astype(np.float32) / 255  # the hint is the red channel
    cfg = AugmentConfig(crop_size=64, resize_mode="fixed", resize_fixed=80, color_jitter=None)
    transform = build_train_transform(cfg, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    torch.manual_seed(3)
    x, m, h = transform(image, mask, hint)
    assert x.shape == (3, 64, 64) and h.shape == (1, 64, 64) and m.shape == (64, 64)
    # same resize, flip and crop: the hint equals the transformed red channel up to uint8 rounding of the image's
    # bicubic resize (mean difference 0.0015 measured; a flip or crop mismatch gives ~0.27)
    assert (h[0] - x[0]).abs().mean() < 0.01 and (h[0] - x[0]).abs().max() < 0.1
    with pytest.raises(ValueError, match="hint shape"):
        transform(image, mask, hint[:10])


def test_detector_shapes_and_bce_ignores_padding():
    net = create_saliency_detector(BackboneConfig(out_indices=(1, 2, 3, 4), output_stride=32))
    assert net(torch.randn(2, 3, 67, 45)).shape == (2, 1, 67, 45)
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 5.0]]]])
    mask = torch.tensor([[[1, 0], [255, 255]]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]))
    assert saliency_bce(logits, mask) == pytest.approx(float(expected))
    assert saliency_bce(logits, torch.full_like(mask, 255)) == 0.0


def test_adam_option_with_constant_rate():
    param = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([{"params": [param]}], OptimConfig(algorithm="adam", lr=0.01, poly_power=0.0), total_steps=5)
    assert isinstance(opt, torch.optim.Adam)
    for _ in range(5):
        param.grad = torch.ones(3)
        opt.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01) and param.detach().lt(1).all()
    state = opt.state_dict()
    assert state["global_step"] == 5
    with pytest.raises(ValueError, match="algorithm"):
        build_optimizer([{"params": [param]}], OptimConfig(algorithm="rmsprop"), total_steps=5)


# ------------------------------------------------------------------------------------------ stages end to end
@pytest.fixture(scope="module")
def saliency_ctx(tmp_path_factory, tiny_synthetic):
    from conftest import tiny_configs

    from wsss_lib.stages.context import RunContext
    from wsss_lib.stages.priors import run_priors

    root = tmp_path_factory.mktemp("saliency")
    ctx = RunContext.create("unit", str(root / "work"), str(root / "reports"))
    cfg = tiny_configs(tiny_synthetic)
    run_priors(ctx, cfg.classifier, "cam", tta=cfg.tta, progress=False)
    return ctx, cfg


def _saliency(ctx, cfg, hints):
    from wsss_lib.stages.saliency import run_saliency

    return run_saliency(ctx, cfg.c2am, cfg.detector, hints, eval_split="train", tta=cfg.tta, pseudo=cfg.pseudo_saliency,
                        workers=0, progress=False)


def test_c2am_and_c2amh_runs_record_and_reload(saliency_ctx):
    from wsss_lib.reporting.saliency_report import table6
    from wsss_lib.stages.priors import load_priors_runs
    from wsss_lib.stages.saliency import load_saliency_runs

    ctx, cfg = saliency_ctx
    plain = _saliency(ctx, cfg, "")
    hinted = _saliency(ctx, cfg, "CAM")
    assert plain.label == "C2AM" and hinted.label == "C2AM-H (CAM)"
    assert "main/hint" in hinted.c2am.history.columns and "main/hint" not in plain.c2am.history.columns
    assert not hinted.c2am.invert  # hints anchor the foreground: no border heuristic
    orientation = (plain.c2am.stage.path / "orientation.json").read_text()
    assert "border heuristic" in orientation
    assert len(list(plain.pseudo.file("png").glob("*.png"))) == 8
    reloaded = {r.label: r for r in load_saliency_runs(ctx)}
    assert set(reloaded) == {"C2AM", "C2AM-H (CAM)"}
    for key, value in hinted.c2am.method.state_dict().items():
        assert torch.equal(value, reloaded["C2AM-H (CAM)"].c2am.method.state_dict()[key]), key
    # a rerun loads every stage instead of retraining
    again = _saliency(ctx, cfg, "CAM")
    assert again.c2am.stage == hinted.c2am.stage and again.refined == hinted.refined
    scores = table6(ctx, [plain, hinted], load_priors_runs(ctx, ["CAM"]), cfg.data, "train", progress=False)
    assert list(scores.table["priors"]) == ["CAM", "GT", "CAM", "GT"]
    assert scores.table[["P.", "R."]].notna().all().all() and scores.table[["P.", "R."]].le(100).all().all()


def test_missing_hint_source_and_mismatched_hints_are_named(saliency_ctx):
    from dataclasses import replace

    from wsss_lib.stages.saliency import run_saliency, train_c2am

    ctx, cfg = saliency_ctx
    with pytest.raises(FileNotFoundError, match="no priors run 'P-NOC\\+LS'"):
        _saliency(ctx, cfg, "P-NOC+LS")
    with pytest.raises(ValueError, match="configured with hints none"):
        train_c2am(ctx, cfg.c2am, hints=ctx.store.stage("cams", {"x": 1}), progress=False)
    with pytest.raises(ValueError, match="pseudo-saliency of 'train'"):
        run_saliency(ctx, cfg.c2am, replace(cfg.detector, train_split="train_aug"), "", progress=False)


def test_c2am_method_adds_the_hint_term_only_with_hints_and_trains_the_head():
    from wsss_lib.methods.base import StepInfo
    from wsss_lib.methods.c2am import C2AMConfig, C2AMMethod
    from wsss_lib.models.c2am import create_c2am_network

    torch.manual_seed(0)
    method = C2AMMethod(create_c2am_network(BackboneConfig()), C2AMConfig())
    batch = {"image": torch.randn(3, 3, 64, 64)}
    info = StepInfo(0, 1, 0)
    assert set(method.losses("main", batch, info, {})) == {"pos_fg", "neg", "pos_bg"}
    hint = torch.zeros(3, 1, 64, 64)
    hint[:, :, 16:48, 16:48] = 1.0
    terms = method.losses("main", {**batch, "hint": hint}, info, {})
    assert set(terms) == {"pos_fg", "neg", "pos_bg", "hint"} and terms["hint"] > 0
    terms["hint"].backward()
    assert method.network.head.conv.weight.grad.abs().sum() > 0
    groups = {g["name"]: g["lr_mult"] for g in method.param_groups("main", 1e-3, 1e-4)}
    assert groups["new_weight"] == 10.0 and groups["pretrained_weight"] == 1.0
