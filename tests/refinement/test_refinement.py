"""Refinement: affinity-label rules, pairs and affinity loss, affinity network, pseudo-masks, the parallel
per-image loop, and the stages end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from wsss_lib.formats.cam_io import CamRecord
from wsss_lib.refinement.affinity_labels import (
    AffinityLabelConfig,
    affinity_labels,
    coarse_affinity_labels,
    conventional_affinity_labels,
    saliency_affinity_labels,
)


def _record(hr_cam: np.ndarray, keys) -> CamRecord:
    h, w = hr_cam.shape[1:]
    return CamRecord(np.asarray(keys, np.int64), np.zeros((len(keys), math.ceil(h / 4), math.ceil(w / 4)), np.float32),
                     hr_cam.astype(np.float32))


@pytest.fixture()
def hand_case():
    """One class (id 3) whose CAM is 0.9 in columns 0-3, 0.2 in 4-7 and 0.02 in 8-11; saliency 0.8 on 0-7."""
    cam = np.zeros((1, 6, 12), np.float32)
    cam[0, :, :4], cam[0, :, 4:8], cam[0, :, 8:] = 0.9, 0.2, 0.02
    saliency = np.zeros((6, 12), np.float32)
    saliency[:, :8] = 0.8
    image = np.full((6, 12, 3), 128, np.uint8)
    return image, _record(cam, [3]), saliency


def test_conventional_and_coarse_rules_without_crf(hand_case):
    image, record, _ = hand_case
    labels = conventional_affinity_labels(image, record, fg_threshold=0.4, bg_threshold=0.1, crf="")
    assert (labels[:, :4] == 3).all() and (labels[:, 4:8] == 255).all() and (labels[:, 8:] == 0).all()
    np.testing.assert_array_equal(coarse_affinity_labels(record, 0.4, 0.1), labels)
    empty = _record(np.zeros((0, 6, 12)), [])
    assert (conventional_affinity_labels(image, empty, 0.4, 0.1, crf="") == 0).all()


def test_saliency_aware_rule_without_crf(hand_case):
    image, record, saliency = hand_case
    labels = saliency_affinity_labels(image, record, saliency, fg_threshold=0.4, bg_threshold=0.1, crf="")
    # strong CAM -> class; salient with a weak CAM -> uncertain; not salient -> background (even if CAM were high)
    assert (labels[:, :4] == 3).all() and (labels[:, 4:8] == 255).all() and (labels[:, 8:] == 0).all()
    saliency_low = saliency.copy()
    saliency_low[:, :2] = 0.05
    labels = saliency_affinity_labels(image, record, saliency_low, 0.4, 0.1, crf="")
    assert (labels[:, :2] == 0).all() and (labels[:, 2:4] == 3).all()
    empty = _record(np.zeros((0, 6, 12)), [])
    no_class = saliency_affinity_labels(image, empty, saliency, 0.4, 0.1, crf="")
    assert (no_class[:, :8] == 255).all() and (no_class[:, 8:] == 0).all()
    with pytest.raises(ValueError, match="need the image's saliency"):
        affinity_labels(image, record, AffinityLabelConfig(mode="saliency"))
    with pytest.raises(ValueError, match="mode"):
        AffinityLabelConfig(mode="psa")


def test_label_crf_cleans_a_noisy_label_map():
    rng = np.random.default_rng(0)
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 220  # two flat regions
    cam = np.zeros((1, 40, 40), np.float32)
    cam[0, :, 20:] = 0.9
    cam[0] = np.clip(cam[0] + rng.normal(0, 0.35, (40, 40)), 0, 1)  # noisy CAM: speckles on both sides
    record = _record(cam, [1])
    raw = coarse_affinity_labels(record, 0.4, 0.4)
    refined = conventional_affinity_labels(image, record, 0.4, 0.4, crf="label")
    truth = np.zeros((40, 40), np.uint8)
    truth[:, 20:] = 1
    assert (refined == truth).mean() > (raw == truth).mean() + 0.05


def test_pair_offsets_cover_each_unordered_pair_once():
    from wsss_lib.methods.affinity import pair_offsets
    from wsss_lib.ops.random_walk import disc_offsets

    offsets = pair_offsets(10)
    assert all(0 < y * y + x * x < 100 for y, x in offsets)
    assert len(set(offsets)) == len(offsets) and not any((-y, -x) in offsets for y, x in offsets)
    assert 2 * len(offsets) == len(disc_offsets(10)) - 1
    assert pair_offsets(2) == ((0, 1), (1, -1), (1, 0), (1, 1))  # IRN's order: right, then the rows below


def test_pair_labels_on_a_hand_made_map():
    from wsss_lib.methods.affinity import pair_labels

    labels = torch.tensor([[[0, 0, 2, 2, 255]]])  # one row, radius 2: only the offset (0, 1) stays inside
    pairs = pair_labels(labels, radius=2)
    k = [(0, 1), (1, -1), (1, 0), (1, 1)].index((0, 1))
    assert pairs["pos_bg"][0, k, 0].tolist() == [1, 0, 0, 0, 0]
    assert pairs["neg"][0, k, 0].tolist() == [0, 1, 0, 0, 0]
    assert pairs["pos_fg"][0, k, 0].tolist() == [0, 0, 1, 0, 0]  # (2, 2); (2, 255) and (255, outside) are invalid
    assert sum(p[:, [i for i in range(4) if i != k]].sum() for p in pairs.values()) == 0  # other offsets leave the map


def test_affinity_loss_terms_are_balanced_means():
    from wsss_lib.methods.affinity import EPS, affinity_loss_terms

    affinity = torch.tensor([0.5, 0.5, 0.9, 0.2, 0.2, 0.2]).view(1, 6, 1, 1)
    masks = {"pos_bg": torch.tensor([1.0, 1, 0, 0, 0, 0]), "pos_fg": torch.tensor([0.0, 0, 1, 0, 0, 0]),
             "neg": torch.tensor([0.0, 0, 0, 1, 1, 1])}
    terms = affinity_loss_terms(affinity, {k: v.view(1, 6, 1, 1) for k, v in masks.items()})
    assert terms["pos_bg"].item() == pytest.approx(0.25 * -math.log(0.5 + EPS) * 2 / (2 + EPS), rel=1e-5)
    assert terms["pos_fg"].item() == pytest.approx(0.25 * -math.log(0.9 + EPS), rel=1e-4)
    assert terms["neg"].item() == pytest.approx(0.5 * -math.log(1 + EPS - 0.2), rel=1e-4)
    # a mean, not a sum: a class with many pairs does not outweigh one with few
    doubled = affinity_loss_terms(affinity.repeat(1, 2, 1, 1), {k: v.view(1, 6, 1, 1).repeat(1, 2, 1, 1)
                                                                 for k, v in masks.items()})
    for key in terms:
        assert doubled[key].item() == pytest.approx(terms[key].item(), rel=1e-4)


@pytest.mark.parametrize("head", ["edge", "feature"])
def test_affinity_network_shapes_frozen_backbone_and_training_step(head):
    from wsss_lib.methods.affinity import AffinityLossConfig, AffinityMethod
    from wsss_lib.methods.base import StepInfo
    from wsss_lib.models.affinity import AffinityNetConfig, create_affinity_network
    from wsss_lib.models.backbone import BackboneConfig

    torch.manual_seed(0)
    network = create_affinity_network(BackboneConfig(out_indices=(0, 1, 2, 3, 4), frozen_bn=True),
                                      AffinityNetConfig(head=head))
    out = network(torch.randn(2, 3, 70, 45))
    assert out.shape[-2:] == (18, 12) and out.shape[1] == (1 if head == "edge" else 448)
    method = AffinityMethod(network, AffinityLossConfig(radius=4))
    groups = method.param_groups("main", 0.1, 1e-4)
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in network.head.parameters()}
    backbone_before = [p.clone() for p in network.backbone.parameters()]
    head_before = [p.clone() for p in network.head.parameters()]
    mask = torch.zeros(2, 64, 64, dtype=torch.long)
    mask[:, :, 32:] = 1
    mask[:, :4] = 255
    method.set_train_mode()
    terms = method.losses("main", {"image": torch.randn(2, 3, 64, 64), "mask": mask}, StepInfo(0, 1, 0), {})
    assert set(terms) == {"pos_bg", "pos_fg", "neg"} and all(torch.isfinite(t) for t in terms.values())
    optimizer = torch.optim.SGD(groups, lr=0.1)
    sum(terms.values()).backward()
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(backbone_before, network.backbone.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(head_before, network.head.parameters()))
    assert not network.backbone.training  # batch norm statistics of the frozen backbone never move


def test_pseudo_mask_rule_palette_png_and_errors(tmp_path):
    from wsss_lib.formats.masks import load_mask, mask_path
    from wsss_lib.refinement.pseudo_masks import pseudo_mask

    hr = np.zeros((2, 5, 6), np.float32)
    hr[0, :, :2], hr[1, :, 4:] = 0.9, 0.5
    record = _record(hr, [4, 7])
    image = np.zeros((5, 6, 3), np.uint8)
    mask = pseudo_mask(image, record, bg_threshold=0.3, crf="")
    assert (mask[:, :2] == 4).all() and (mask[:, 2:4] == 0).all() and (mask[:, 4:] == 7).all()
    assert (pseudo_mask(image, record, bg_threshold=0.6, crf="")[:, 4:] == 0).all()
    assert (pseudo_mask(image, _record(np.zeros((0, 5, 6)), []), 0.3) == 0).all()
    from wsss_lib.formats.masks import to_palette_image

    path = mask_path(tmp_path, "a")
    path.parent.mkdir(parents=True)
    to_palette_image(mask).save(path)
    with Image.open(path) as im:
        assert im.mode == "P"
    np.testing.assert_array_equal(load_mask(tmp_path, "a", num_classes=8), mask)
    with pytest.raises(Exception, match="neither a class"):
        load_mask(tmp_path, "a", num_classes=5)  # class 7 does not exist in a 5-class dataset


def test_walk_record_is_normalised_by_the_global_maximum():
    from wsss_lib.inference.affinity import RandomWalkConfig, walk_record

    cams = torch.zeros(2, 4, 5)
    cams[0, 1, 1], cams[1, 2, 3] = 1.0, 0.5
    cam, hr = walk_record(cams, torch.zeros(4, 5), "edge", (15, 18), RandomWalkConfig(radius=2, exp_times=2))
    assert hr.shape == (2, 15, 18) and cam.shape == (2, 4, 5)
    assert hr.max() == pytest.approx(1.0) and hr[1].max() < hr[0].max()  # one maximum for all classes


def test_for_each_missing_resumes_and_runs_in_processes(tmp_path):
    from wsss_lib.io import atomic_write_text, for_each_missing

    ids = [f"im{i}" for i in range(7)]
    (tmp_path / "im0.txt").write_text("old")
    counts = for_each_missing(ids, lambda i: tmp_path / f"{i}.txt", lambda i, p: atomic_write_text(p, i),
                              progress=False, workers=2)
    assert counts == {"computed": 6, "skipped": 1, "missing": 0}
    assert (tmp_path / "im0.txt").read_text() == "old" and (tmp_path / "im6.txt").read_text() == "im6"

    def fail_on_3(image_id, path):
        if image_id == "x3":
            raise ValueError("corrupt")
        atomic_write_text(path, image_id)

    with pytest.raises(RuntimeError, match="worker process"):
        for_each_missing([f"x{i}" for i in range(6)], lambda i: tmp_path / f"{i}.txt", fail_on_3, progress=False,
                         workers=2)
    assert not (tmp_path / "x3.txt").exists()


# ------------------------------------------------------------------------------------------ stages end to end
@pytest.fixture(scope="module")
def refinement_ctx(tmp_path_factory, tiny_synthetic):
    from conftest import TINY_LITE0, tiny_configs

    from wsss_lib.stages.context import RunContext
    from wsss_lib.stages.priors import run_priors
    from wsss_lib.stages.saliency import run_saliency

    root = tmp_path_factory.mktemp("refinement")
    ctx = RunContext.create("unit", str(root / "work"), str(root / "reports"))
    cfg = tiny_configs(tiny_synthetic, num_workers=2, affinity={
        "backbone": TINY_LITE0, "augment": {"crop_size": 64, "resize_long_side": [48, 64]},
        "train": {"epochs": 2, "batch_size": 4}, "loss": {"radius": 4}, "train_split": "train"},
        labels={}, walk={"exp_times": 3}, pseudo={})
    run_priors(ctx, cfg.classifier, "cam", tta=cfg.tta, progress=False)
    run_saliency(ctx, cfg.c2am, cfg.detector, "", eval_split="train", tta=cfg.tta, workers=0, progress=False)
    return ctx, cfg


def _refinement(ctx, cfg, priors, saliency):
    from wsss_lib.stages.refinement import run_refinement

    return run_refinement(ctx, cfg.affinity, priors, saliency, eval_splits=("train", "val"), labels=cfg.labels,
                          walk=cfg.walk, pseudo=cfg.pseudo, heldout_split="val", workers=2, progress=False)


@pytest.mark.slow
def test_refinement_rows_record_reload_and_score(refinement_ctx):
    from wsss_lib.data import open_dataset
    from wsss_lib.reporting.refinement_report import label_quality_table, table7
    from wsss_lib.stages.refinement import load_refinement_runs

    ctx, cfg = refinement_ctx
    conventional = _refinement(ctx, cfg, "CAM", "")
    aware = _refinement(ctx, cfg, "CAM", "C2AM")
    assert conventional.labels.config()["config"]["labels"]["mode"] == "conventional"
    assert aware.labels.config()["config"]["labels"]["mode"] == "saliency"
    for run in (conventional, aware):
        for split, result in run.splits.items():
            pngs = sorted((result.masks.path / "SegmentationClass").glob("*.png"))
            dataset = open_dataset(cfg.data, split, work_dir=ctx.work_dir)
            assert [p.stem for p in pngs] == sorted(dataset.ids) and all(Image.open(p).mode == "P" for p in pngs)
            assert 0 < result.masks_confusion.scores().miou <= 1
    table = table7([conventional, aware])
    assert list(table["row"]) == ["CAM (conventional labels)"] * 2 + ["CAM + C2AM"] * 2
    assert list(table["split"]) == ["train", "val"] * 2 and (table["seeds"] == 1).all()
    assert {"priors", "RW (oracle t)", "pseudo-masks", "priors SD"} <= set(table.columns)
    # the held-out threshold: train's numbers at the thresholds chosen on val, beside the oracle's (none for val)
    heldout = conventional.splits["train"].heldout
    walked_val = conventional.splits["val"].walked_sweep
    assert heldout.split == "val" and heldout.walked_threshold == walked_val.best_threshold
    assert heldout.walked_miou <= 100 * conventional.splits["train"].walked_sweep.best.miou + 1e-9
    assert conventional.splits["val"].heldout is None
    row = table[(table["row"] == "CAM (conventional labels)") & (table["split"] == "train")].iloc[0]
    assert row["RW (held-out t)"] == pytest.approx(heldout.walked_miou)
    assert row["pseudo-masks (held-out t)"] == pytest.approx(100 * heldout.masks_confusion.scores().miou)
    assert label_quality_table([conventional, aware])["confident pixels"].between(0, 100).all()
    records = load_refinement_runs(ctx)
    assert {r.label for r in records} == {"CAM (conventional labels)", "CAM + C2AM"}
    assert set(records[0].masks) == {"train", "val"} and records[0].seed == 0
    assert load_refinement_runs(ctx, split="train_aug") == []  # none has pseudo-masks of train_aug
    again = _refinement(ctx, cfg, "CAM", "C2AM")  # cached: nothing retrains
    assert again.affinity.stage == aware.affinity.stage and again.splits["val"].masks == aware.splits["val"].masks


def test_missing_runs_are_named(refinement_ctx):
    ctx, cfg = refinement_ctx
    with pytest.raises(FileNotFoundError, match="no priors run 'P-NOC\\+LS'"):
        _refinement(ctx, cfg, "P-NOC+LS", "")
    with pytest.raises(FileNotFoundError, match="no saliency run 'C2AM-H \\(X\\)'"):
        _refinement(ctx, cfg, "CAM", "C2AM-H (X)")


def test_affinity_label_dataset_names_missing_and_stray_labels(tmp_path, tiny_synthetic):
    from wsss_lib.data import DatasetConfig, open_dataset
    from wsss_lib.data.saliency import AffinityLabelsDataset
    from wsss_lib.formats.errors import DatasetError

    base = open_dataset(DatasetConfig(data_root=str(tiny_synthetic)), "val", work_dir=tmp_path)
    with pytest.raises(DatasetError, match="no affinity label map for 4 image"):
        AffinityLabelsDataset(base, tmp_path, lambda image, mask: (image, mask))
    for image_id in base.ids:
        Image.fromarray(np.full(base.load_image(image_id).shape[:2], 200, np.uint8), mode="L").save(tmp_path / f"{image_id}.png")
    with pytest.raises(DatasetError, match="neither a class"):
        AffinityLabelsDataset(base, tmp_path, lambda image, mask: (image, mask))[0]


@pytest.mark.parametrize("priors, saliency, method, ls, c2amh, noc", [
    ("P-OC", "", "P-OC", False, False, False),
    ("P-NOC+LS", "C2AM-H (P-OC)", "P-NOC", True, True, True),
    ("P-NOC (OC lr 0.1x)", "C2AM-H (P-OC)", "P-NOC (OC lr 0.1x)", False, True, True),
    ("P-NOC+LS (OC lr 0.1x)", "C2AM", "P-NOC (OC lr 0.1x)", True, False, True),
])
def test_table7_flags_read_through_a_recipe_note(priors, saliency, method, ls, c2amh, noc):
    """The study's P-NOC rows carry "(OC lr 0.1x)": it stays in the method column and hides neither +LS nor +NOC."""
    from types import SimpleNamespace

    from wsss_lib.reporting.refinement_report import _flags

    flags = _flags(SimpleNamespace(priors=priors, saliency=saliency))
    assert flags == {"method": method, "+LS": ls, "+C2AM-H": c2amh, "+NOC": noc}
