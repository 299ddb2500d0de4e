"""Stages of the priors pipeline: train a CAM classifier, infer its CAMs with TTA, sweep the threshold.

``ClassifierStageConfig`` names everything that determines a trained classifier; its hash is the stage key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from wsss_lib.artifacts import StageDir
from wsss_lib.config import to_dict
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.sweep import DEFAULT_THRESHOLDS, SweepResult, threshold_sweep
from wsss_lib.inference.tta import TTAConfig, infer_cams
from wsss_lib.io import atomic_path
from wsss_lib.methods.base import Method
from wsss_lib.methods.registry import build_method, method_config
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.refinement.crf import label_crf_fn
from wsss_lib.reporting.context import RunContext
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, fit, resolve_device

__all__ = ["ClassifierStageConfig", "TrainedClassifier", "train_classifier", "load_classifier", "infer_cams_stage",
           "sweep_stage"]


@dataclass(frozen=True)
class ClassifierStageConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: str = "cam"
    method_params: dict[str, Any] = field(default_factory=dict)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train_split: str = "train_aug"
    eval_split: str = "train"

    @property
    def run_name(self) -> str:
        return f"{self.method}-{self.backbone.name}-seed{self.train.seed}"

    def hashed(self) -> dict[str, Any]:
        """What determines the trained weights (device, workers and evaluation settings excluded)."""
        payload = to_dict(self)
        for key in ("device", "num_workers", "eval", "eval_every"):
            payload["train"].pop(key)
        payload["method_params"] = to_dict(method_config(self.method, self.method_params))
        return payload


@dataclass(frozen=True)
class TrainedClassifier:
    config: ClassifierStageConfig
    stage: StageDir
    method: Method
    history: pd.DataFrame


def _build(cfg: ClassifierStageConfig, num_classes: int, **extra: Any) -> Method:
    return build_method(cfg.method, method_config(cfg.method, cfg.method_params), cfg.backbone, num_classes, **extra)


def train_classifier(ctx: RunContext, cfg: ClassifierStageConfig, progress: bool = True, **extra: Any) -> TrainedClassifier:
    """Train (or resume, or load if finished) the classifier described by ``cfg``."""
    sd = ctx.store.stage("classifier", cfg.hashed(), name=cfg.run_name)
    eval_set = open_dataset(cfg.dataset, cfg.eval_split, work_dir=ctx.work_dir, progress=progress)
    method = _build(cfg, eval_set.num_classes - 1, **extra)
    if not sd.done:
        mean, std = method.normalization
        train_set = open_dataset(cfg.dataset, cfg.train_split, work_dir=ctx.work_dir, progress=progress,
                                 transform=build_train_transform(cfg.augment, mean, std))
        result = fit(method, train_set, eval_set, cfg.train, cfg.optim, sd.path, resume=True, progress=progress)
        with atomic_path(sd.file("model.pt")) as tmp:
            torch.save(method.state_dict(), tmp)
        sd.mark_done(seconds=round(result.seconds, 1), epochs=cfg.train.epochs)
    else:
        method.load_state_dict(torch.load(sd.file("model.pt"), map_location="cpu", weights_only=True))
    return TrainedClassifier(cfg, sd, method, sd.read_frame("history.csv"))


def load_classifier(ctx: RunContext, cfg: ClassifierStageConfig, **extra: Any) -> TrainedClassifier:
    """A finished classifier (raises ``StageNotFoundError`` naming the stage if it was never trained)."""
    sd = ctx.store.require("classifier", cfg.hashed(), name=cfg.run_name,
                           hint="Train it first (notebook 01 trains the CAM and the RandAugment+LS classifiers).")
    eval_set = open_dataset(cfg.dataset, cfg.eval_split, work_dir=ctx.work_dir, progress=False)
    method = _build(cfg, eval_set.num_classes - 1, **extra)
    method.load_state_dict(torch.load(sd.file("model.pt"), map_location="cpu", weights_only=True))
    return TrainedClassifier(cfg, sd, method, sd.read_frame("history.csv"))


def infer_cams_stage(ctx: RunContext, trained: TrainedClassifier, split: str, tta: TTAConfig = TTAConfig(),
                     progress: bool = True) -> StageDir:
    """CAM files of ``split`` (resumable), stage ``cams`` keyed by the classifier and the TTA settings."""
    sd = ctx.store.stage("cams", {"classifier": trained.stage.key, "split": split, "tta": tta},
                         name=f"{trained.config.run_name}-{split}")
    if sd.done:
        return sd
    cfg = trained.config
    device = resolve_device(cfg.train.device)
    cuda = device.type == "cuda"
    amp = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.train.amp] if cuda else None
    model = trained.method.cam_model().to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    mean, std = trained.method.normalization
    dataset = open_dataset(cfg.dataset, split, work_dir=ctx.work_dir, progress=progress)
    counts = infer_cams(model, dataset, sd.file("npz"), mean, std, tta, device=device, autocast_dtype=amp,
                        channels_last=cfg.train.channels_last, progress=progress)
    sd.mark_done(images=len(dataset), **counts)
    return sd


def sweep_stage(ctx: RunContext, cams: StageDir, dataset_cfg: DatasetConfig, split: str,
                thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS, crf: str = "",
                progress: bool = True) -> SweepResult:
    """Oracle background-threshold sweep of the CAMs in ``cams`` against ``split``'s ground truth.

    ``crf`` names a label-CRF preset of ``wsss_lib.refinement.crf`` (e.g. ``"label"``, the official
    t=10, gt_prob 0.7 refinement) applied to each thresholded map before scoring; empty = no CRF. With a
    CRF every threshold costs one CRF per image (about 1.5-4 s at VOC size on 2 CPU cores), so pass few
    thresholds.
    """
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    crf_fn = label_crf_fn(crf) if crf else None
    return threshold_sweep(cams.file("npz"), dataset, thresholds, num_classes=dataset.num_classes,
                           class_names=dataset.class_names, crf=crf_fn, progress=progress)
