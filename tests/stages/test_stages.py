"""Classifier stages end to end on a tiny synthetic benchmark: train, cache, infer CAMs, sweep (with CRF)."""

from __future__ import annotations

import pytest
import torch

from wsss_lib.artifacts import StageNotFoundError
from wsss_lib.data import DatasetConfig
from wsss_lib.data.transforms import AugmentConfig
from wsss_lib.evaluation.quick import QuickEvalConfig
from wsss_lib.inference.tta import TTAConfig
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.stages.classifier import (
    ClassifierStageConfig,
    infer_cams_stage,
    load_classifier,
    sweep_stage,
    train_classifier,
)
from wsss_lib.stages.context import RunContext
from wsss_lib.train import OptimConfig, TrainConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_synthetic):
    root = tmp_path_factory.mktemp("tiny")
    ctx = RunContext.create("unit", str(root / "work"), str(root / "reports"))
    cfg = ClassifierStageConfig(
        dataset=DatasetConfig(name="synthetic", data_root=str(tiny_synthetic)),
        backbone=BackboneConfig(weights="offline-lite0"), augment=AugmentConfig(crop_size=64, resize_long_side=(48, 64)),
        train=TrainConfig(epochs=1, batch_size=4, num_workers=0, device="cpu", eval=QuickEvalConfig(size=64)),
        optim=OptimConfig(lr=0.01))
    return ctx, cfg


def test_train_cache_infer_and_sweep(tiny):
    ctx, cfg = tiny
    with pytest.raises(StageNotFoundError, match="Train it first"):
        load_classifier(ctx, cfg)
    trained = train_classifier(ctx, cfg, progress=False)
    assert trained.stage.done and list(trained.history["epoch"]) == [1] and "quick_miou" in trained.history
    again = train_classifier(ctx, cfg, progress=False)  # loaded, not retrained
    assert again.stage.path == trained.stage.path
    for a, b in zip(trained.method.state_dict().values(), again.method.state_dict().values()):
        assert torch.equal(a, b)
    cams = infer_cams_stage(ctx, trained, "train", TTAConfig(scales=(1.0,)), progress=False)
    assert len(list(cams.file("npz").glob("*.npz"))) == 8
    plain = sweep_stage(ctx, cams, cfg.dataset, "train", thresholds=(0.3,), progress=False)
    refined = sweep_stage(ctx, cams, cfg.dataset, "train", thresholds=(0.3,), crf="label", progress=False)
    assert plain.num_images == refined.num_images == 8
    assert plain.table["miou"].iloc[0] != refined.table["miou"].iloc[0]  # the CRF changed the labels


def test_stage_key_ignores_device_and_workers(tiny):
    _, cfg = tiny
    moved = ClassifierStageConfig(**{**cfg.__dict__, "train": TrainConfig(**{**cfg.train.__dict__, "device": "cuda", "num_workers": 9})})
    reseeded = ClassifierStageConfig(**{**cfg.__dict__, "train": TrainConfig(**{**cfg.train.__dict__, "seed": 7})})
    assert moved.hashed() == cfg.hashed() and reseeded.hashed() != cfg.hashed()
