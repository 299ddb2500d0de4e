"""DeepLab heads, the segmentation loss, multi-scale inference, the VOC server export and the segmentation stages."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from wsss_lib.formats.masks import mask_path, to_palette_image
from wsss_lib.inference.segmentation import (
    VOC_TEST_FOLDER,
    SegInferenceConfig,
    export_voc_test,
    infer_segmentation,
    raw_dir,
    segmentation_probabilities,
)
from wsss_lib.io import atomic_save_image
from wsss_lib.methods.segmentation import SegmentationLossConfig, SegmentationMethod, segmentation_loss
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.deeplab import DeepLabConfig, create_deeplab
from wsss_lib.reporting.writer import Report

LITE = BackboneConfig(name="tf_efficientnet_lite0", weights="none", frozen_bn=True)


# ----------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("head", ["v2", "v3+"])
@pytest.mark.parametrize("stride", [16, 8])
def test_deeplab_shapes_and_strides_on_odd_sizes(head, stride):
    model = create_deeplab(BackboneConfig(**{**LITE.__dict__, "output_stride": stride}), DeepLabConfig(head=head), 5)
    model.eval()
    out = model(torch.randn(2, 3, 67, 93))
    assert out.shape == (2, 5, 67, 93)
    assert model.backbone.reduction[-1] == stride
    if head == "v3+":
        assert model.backbone.reduction[0] == 4  # decoder on the stride-4 stage
        assert len(model.head.branches) == 4 and isinstance(model.head.reduce[1], nn.GroupNorm)
    else:
        assert [b.dilation[0] for b in model.head.branches] == [6, 12, 18, 24]
        assert all(b.out_channels == 5 for b in model.head.branches)


def test_deeplab_rates_follow_the_official_rule():
    assert DeepLabConfig(head="v3+").resolved_rates(16) == (1, 6, 12, 18)
    assert DeepLabConfig(head="v3+").resolved_rates(8) == (1, 12, 24, 36)
    assert DeepLabConfig(head="v2").resolved_rates(8) == (6, 12, 18, 24)
    assert DeepLabConfig(head="v3+", rates=(2, 4)).resolved_rates(16) == (2, 4)
    with pytest.raises(ValueError, match="head"):
        DeepLabConfig(head="v3")


def test_v2_sums_its_branches_and_only_the_head_is_new():
    model = create_deeplab(LITE, DeepLabConfig(head="v2"), 3).eval()
    features = model.backbone(torch.randn(1, 3, 64, 64))
    expected = sum(branch(features[-1]) for branch in model.head.branches)
    assert torch.allclose(model.head(features), expected)
    method = SegmentationMethod(model, SegmentationLossConfig())
    groups = {g["name"]: g for g in method.param_groups("main", 0.01, 1e-4)}
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in groups["new_weight"]["params"] + groups["new_bias"]["params"]} == head_ids
    assert groups["new_weight"]["lr"] == pytest.approx(0.1)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())  # frozen


# ----------------------------------------------------------------------------------------------- loss
def test_loss_ignores_void_pixels_and_never_divides_by_zero():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, requires_grad=True)
    masks = torch.randint(0, 4, (2, 5, 6))
    masks[0, :2] = 255
    valid = masks != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], masks[valid])
    loss = segmentation_loss(logits, masks)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[0, :, :2] == 0)  # void pixels get no gradient
    changed = logits.detach().clone()
    changed[0, :, :2] += 100.0
    assert segmentation_loss(changed, masks).item() == pytest.approx(loss.item(), rel=1e-6)
    void = torch.full((2, 5, 6), 255)
    assert segmentation_loss(logits, void).item() == 0.0
    smoothed = F.cross_entropy(logits.detach().permute(0, 2, 3, 1)[valid], masks[valid], label_smoothing=0.1)
    assert segmentation_loss(logits.detach(), masks, 0.1).item() == pytest.approx(smoothed.item(), rel=1e-6)


def test_a_training_step_moves_head_and_backbone_weights():
    model = create_deeplab(LITE, DeepLabConfig(head="v3+", channels=16, low_level_channels=8), 3)
    method = SegmentationMethod(model, SegmentationLossConfig())
    optimizer = torch.optim.SGD([p for g in method.param_groups("main", 0.1, 0.0) for p in g["params"]], lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = method.losses("main", {"image": torch.randn(2, 3, 32, 32), "mask": torch.randint(0, 3, (2, 32, 32))},
                         None, {})["ce"]
    loss.backward()
    optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("head.") for n in moved) and any(n.startswith("backbone.") for n in moved)


# ----------------------------------------------------------------------------------------------- inference
class RampNet(nn.Module):
    """Logits depend on the input (a 1x1 conv), so flips and scales matter."""

    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("scales,flip", [((1.0,), False), ((0.5, 1.0, 1.5), True), ((0.75, 1.25), False)])
def test_probabilities_on_odd_sizes(scales, flip):
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    net = RampNet().eval()
    probs = segmentation_probabilities(net, image, (0.5,) * 3, (0.5,) * 3, scales, flip)
    assert probs.shape == (3, 37, 53) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    if scales == (1.0,) and not flip:
        x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
        assert np.allclose(probs, torch.softmax(net(x)[0], 0).detach().numpy(), atol=1e-5)


class _Images:
    """The part of a dataset the inference and export read: ids, images, classes."""

    def __init__(self, n: int = 3, classes: int = 3, split: str = "test"):
        rng = np.random.default_rng(1)
        self.images = {f"im{i}": rng.integers(0, 256, (20 + i, 31, 3), dtype=np.uint8) for i in range(n)}
        self.ids, self.num_classes, self.split, self.progress = list(self.images), classes, split, False

    def load_image(self, image_id):
        return self.images[image_id]


@pytest.mark.parametrize("workers", [1, 2])
def test_inference_writes_palette_pngs_before_and_after_the_crf_and_resumes(tmp_path, workers):
    data = _Images()
    counts = infer_segmentation(RampNet(), data, tmp_path, (0.5,) * 3, (0.5,) * 3,
                                SegInferenceConfig(scales=(1.0, 0.5), crf="deeplab_v2"), progress=False, workers=workers)
    assert counts == {"computed": 3, "skipped": 0}
    for image_id, image in data.images.items():
        for folder in (tmp_path, raw_dir(tmp_path)):
            with Image.open(mask_path(folder, image_id)) as png:
                assert png.mode == "P" and png.size == (image.shape[1], image.shape[0])
                assert np.asarray(png).max() < 3
    mask_path(tmp_path, "im1").unlink()
    again = infer_segmentation(RampNet(), data, tmp_path, (0.5,) * 3, (0.5,) * 3,
                               SegInferenceConfig(scales=(1.0,), crf=""), progress=False, workers=workers)
    assert again == {"computed": 1, "skipped": 2}


def test_inference_without_crf_writes_the_argmax_only(tmp_path):
    data = _Images(n=1)
    infer_segmentation(RampNet(), data, tmp_path, (0.5,) * 3, (0.5,) * 3, SegInferenceConfig(scales=(1.0,), flip=False,
                       crf=""), progress=False)
    probs = segmentation_probabilities(RampNet().eval(), data.images["im0"], (0.5,) * 3, (0.5,) * 3, (1.0,), False)
    with Image.open(mask_path(tmp_path, "im0")) as png:
        assert np.array_equal(np.asarray(png), probs.argmax(0))
    assert not raw_dir(tmp_path).exists()


# ----------------------------------------------------------------------------------------------- export
def _write_predictions(folder: Path, data: _Images, value: int = 1) -> None:
    for image_id, image in data.images.items():
        atomic_save_image(mask_path(folder, image_id), to_palette_image(np.full(image.shape[:2], value, np.uint8)))


def test_voc_server_export_layout(tmp_path):
    data = _Images()
    _write_predictions(tmp_path / "pred", data)
    (tmp_path / "out" / VOC_TEST_FOLDER).mkdir(parents=True)
    (tmp_path / "out" / VOC_TEST_FOLDER / "stale.png").write_bytes(b"")
    archive = export_voc_test(data, tmp_path / "pred", tmp_path / "out")
    folder = tmp_path / "out" / "results" / "VOC2012" / "Segmentation" / "comp6_test_cls"
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(data.ids)
    with Image.open(folder / "im2.png") as png:
        assert png.mode == "P" and png.size == (31, 22) and png.getpalette()[3:6] == [128, 0, 0]
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {f"results/VOC2012/Segmentation/comp6_test_cls/{i}.png" for i in data.ids} <= names
    assert not any(n.endswith("stale.png") for n in names)


def test_voc_server_export_rejects_bad_predictions(tmp_path):
    data = _Images()
    _write_predictions(tmp_path / "pred", data, value=7)
    with pytest.raises(ValueError, match="im0.png: class id 7"):
        export_voc_test(data, tmp_path / "pred", tmp_path / "out")
    mask_path(tmp_path / "pred", "im1").unlink()
    _write_predictions(tmp_path / "ok", _Images(n=1))
    with pytest.raises(FileNotFoundError, match="no prediction for 'im1'"):
        export_voc_test(data, tmp_path / "ok", tmp_path / "out")


# ----------------------------------------------------------------------------------------------- stages
def _configs(data_root: Path, iterations: int = 0):
    from conftest import tiny_configs

    return tiny_configs(data_root, segmentation={
        "backbone": {"name": "tf_efficientnet_lite0", "weights": "none"},
        "augment": {"crop_size": 48, "resize_long_side": [48, 64]}, "train": {"epochs": 1, "batch_size": 4},
        "iterations": iterations, "train_split": "train"}, inference={"scales": [1.0], "crf": "deeplab_v2"})


def _run(ctx, cfg, source, test_split=""):
    from wsss_lib.stages.segmentation import run_segmentation

    return run_segmentation(ctx, cfg.segmentation, source, eval_split="val", test_split=test_split,
                            inference=cfg.inference, workers=0, progress=False)


@pytest.mark.slow
def test_ground_truth_run_end_to_end_with_export_and_cache(tmp_path, tiny_synthetic):
    from wsss_lib.stages.context import RunContext
    from wsss_lib.stages.segmentation import load_segmentation_runs

    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    sets = root / "VOC2012" / "ImageSets" / "Segmentation" if (root / "VOC2012").is_dir() else root / "ImageSets" / "Segmentation"
    shutil.copy(sets / "val.txt", sets / "test.txt")  # a split to export (the synthetic data has no test split)
    ctx = RunContext.create("t", str(tmp_path / "work"), str(tmp_path / "reports"))
    cfg = _configs(root, iterations=3)
    run = _run(ctx, cfg, "ground truth", test_split="test")
    assert run.trained.history["epoch"].tolist() == [1, 2]  # 8 images / batch 4 = 2 steps per epoch, 3 steps
    assert 0.0 <= run.confusion.scores().miou <= 1.0 and run.confusion_before_crf is not None
    assert len(list((run.predictions.path / "SegmentationClass").glob("*.png"))) == 4
    archive = run.test_export.path / "results.tar.gz"
    assert archive.is_file()
    record, = load_segmentation_runs(ctx)
    assert record.supervision == "F" and record.model == "V3+" and record.miou == pytest.approx(
        100 * run.confusion.scores().miou) and record.seed == 0
    assert load_segmentation_runs(ctx, split="train") == []  # evaluated on val only
    again = _run(ctx, cfg, "ground truth", test_split="test")  # every stage cached
    assert again.trained.stage == run.trained.stage and again.predictions == run.predictions
    assert np.array_equal(again.confusion.counts, run.confusion.counts)


def test_unknown_source_names_notebook_08(tmp_path, tiny_synthetic):
    from wsss_lib.stages.context import RunContext

    ctx = RunContext.create("t", str(tmp_path / "work"), str(tmp_path / "reports"))
    with pytest.raises(FileNotFoundError, match="notebook 08"):
        _run(ctx, _configs(tiny_synthetic), "P-NOC+LS + C2AM-H (P-NOC+LS)")


def test_pseudo_mask_training_set_reads_the_masks_not_the_ground_truth(tmp_path, tiny_synthetic):
    from wsss_lib.data import DatasetConfig, open_dataset
    from wsss_lib.data.saliency import PseudoMaskDataset
    from wsss_lib.formats.errors import DatasetError

    base = open_dataset(DatasetConfig(data_root=str(tiny_synthetic)), "train", work_dir=tmp_path, progress=False)
    folder = tmp_path / "masks" / "SegmentationClass"
    for image_id in base.ids:
        h, w = base.load_image(image_id).shape[:2]
        atomic_save_image(folder / f"{image_id}.png", to_palette_image(np.full((h, w), 2, np.uint8)))
    data = PseudoMaskDataset(base, folder, lambda image, mask: (image, mask))
    assert set(np.unique(data[0]["mask"])) == {2}
    atomic_save_image(folder / f"{base.ids[1]}.png", to_palette_image(np.full((h, w), 99, np.uint8)))
    with pytest.raises(DatasetError, match=f"{base.ids[1]}.png"):
        data[1]
    (folder / f"{base.ids[2]}.png").unlink()
    with pytest.raises(DatasetError, match="no pseudo-mask"):
        PseudoMaskDataset(base, folder, lambda image, mask: (image, mask))


# ----------------------------------------------------------------------------------------------- notebook 10
def _record(source, model, dataset="synthetic", miou=40.0, seed=0):
    from wsss_lib.artifacts import StageDir
    from wsss_lib.stages.segmentation import RecordedSegmentation

    return RecordedSegmentation(source, source, seed, model, "tf_efficientnet_lite0", dataset, "train_aug", "val", "I",
                                "", miou, None, None, "", StageDir("seg_predictions", "k", Path("/nonexistent")))


def test_sota_table_keeps_literature_and_ours_apart():
    from wsss_lib.reporting.sota_report import sota_table

    records = [_record("P-NOC+LS + C2AM-H (P-NOC+LS)", "V3+", miou=12.5), _record("extra", "V2", miou=11.0),
               _record("P-NOC+LS + C2AM-H (P-NOC+LS)", "V3+", miou=14.5, seed=1),
               _record("P-NOC+LS + C2AM-H (P-NOC+LS)", "V3+", dataset="coco", miou=99.0)]
    expected = [["P-NOC+LS + C2AM-H (P-NOC+LS)", "V3+"], ["P-OC + C2AM-H (P-OC)", "V3+"]]
    table = sota_table("table8", records, expected, "smoke")
    literature = table[table["numbers from"].str.startswith("literature")]
    ours = table[table["numbers from"].str.startswith("this code")]
    assert len(literature) == len(pd.read_csv(Path(__file__).parents[2] / "reports/literature/pnoc_table8_voc_sota.csv"))
    assert ours["method"].tolist() == ["P-NOC+LS + C2AM-H (P-NOC+LS)", "P-OC + C2AM-H (P-OC)", "extra"]
    assert ours["Val"].tolist()[0] == 13.5 and np.isnan(ours["Val"].tolist()[1]) and ours["Val"].tolist()[2] == 11.0
    assert ours["seeds"].tolist()[0] == 2 and ours["Val SD"].tolist()[0] == pytest.approx(np.sqrt(2))  # two seeds
    assert "no run yet" in ours["numbers from"].tolist()[1]
    assert ours["Test"].isna().all()  # the test score only comes from the server
    coco = sota_table("table9", records, [["P-NOC+LS + C2AM-H (P-NOC+LS)", "V2"]], "smoke")
    ours = coco[coco["numbers from"].str.startswith("this code")]
    assert ours["Val"].tolist()[0] != ours["Val"].tolist()[0] and ours["Val"].tolist()[1] == 99.0  # NaN, then COCO's
    with pytest.raises(ValueError, match="table"):
        sota_table("table7", records, [], "smoke")


def test_latex_export_escapes_and_keeps_missing_cells_empty(tmp_path):
    from wsss_lib.stages.context import RunContext

    ctx = RunContext.create("t", str(tmp_path / "w"), str(tmp_path / "r"))
    frame = pd.DataFrame({"method": ["P-NOC+LS & C2AM_H"], "Val": [70.34], "Test": [np.nan]})
    Report(ctx).table(frame, "t8", "Table 8 (mIoU %)", latex=True)
    tex = (tmp_path / "r" / "tables" / "t8.tex").read_text()
    assert r"P-NOC+LS \& C2AM\_H & 70.3 &  \\" in tex and r"mIoU \%" in tex and r"\toprule" in tex


def test_same_stage_key_gives_the_same_weights_whatever_ran_before(tmp_path, tiny_synthetic):
    """The stage key names the weights: the new layers' initialisation must not depend on the process's RNG
    state (found: a notebook and a script trained different networks under one key)."""
    from wsss_lib.stages.context import RunContext
    from wsss_lib.stages.segmentation import train_segmentation

    cfg = _configs(tiny_synthetic, iterations=1).segmentation
    weights = []
    for run in range(2):
        torch.rand(17 + run)  # a different history of random draws before each run
        ctx = RunContext.create("t", str(tmp_path / f"work{run}"), str(tmp_path / "reports"))
        weights.append(train_segmentation(ctx, cfg, progress=False).method.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
