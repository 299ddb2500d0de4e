"""Stages of the priors pipeline: train a CAM classifier, infer its CAMs with TTA, sweep the threshold.

``ClassifierStageConfig`` names everything that determines a trained classifier; its hash is the stage key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.config import from_dict, to_dict
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.evaluation.sweep import DEFAULT_THRESHOLDS, SweepResult, threshold_sweep
from wsss_lib.inference.tta import TTAConfig, infer_cams
from wsss_lib.io import atomic_save_npz
from wsss_lib.methods.base import Method
from wsss_lib.methods.registry import build_method, method_config
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.ops.crf import label_crf_fn
from wsss_lib.stages import planning
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.inference import inference_stage
from wsss_lib.stages.training import StageConfig, Trained, load_trained, train_stage, weights_key
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, seed_everything

__all__ = ["ClassifierStageConfig", "TrainedClassifier", "ORDINARY_METHODS", "with_ordinary", "train_classifier",
           "load_classifier", "load_classifier_stage", "infer_cams_stage", "sweep_stage", "sweep_stage_dir", "load_sweep"]

ORDINARY_METHODS = ("occse", "poc", "pnoc")
"""Methods trained against the ordinary classifier (notebook 01's RandAugment + LS classifier)."""


@dataclass(frozen=True)
class ClassifierStageConfig(StageConfig):
    stage: ClassVar[str] = "classifier"

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: str = "cam"
    method_params: dict[str, Any] = field(default_factory=dict)
    """The method's config fields (``wsss_lib.methods.registry.method_config`` of ``method``), e.g. Puzzle's
    ``reconstruction``; its official values where not given."""
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resnest269e", weights="timm",
                                                                            output_stride=16))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.1, momentum=0.0, weight_decay=1e-4,
                                                                   accumulate_steps=2))
    train_split: str = "train_aug"
    eval_split: str = "train"
    ordinary_key: str = ""
    """Stage key of the ordinary classifier (OC-CSE, P-OC, P-NOC): part of the hash, so retraining the OC
    retrains every method built on it. Set with :func:`with_ordinary`."""

    @property
    def method_config(self) -> Any:
        """``method_params`` typed as ``method``'s config (unknown fields fail, naming the method)."""
        return method_config(self.method, self.method_params)

    @property
    def run_name(self) -> str:
        smoothing = self.method_config.label_smoothing
        suffix = f"-ls{smoothing:g}" if smoothing else ""
        return f"{self.method}{suffix}-{self.backbone.name}-seed{self.train.seed}"

    @property
    def needs_ordinary(self) -> bool:
        return self.method in ORDINARY_METHODS

    def hashed(self) -> dict[str, Any]:
        """What determines the trained weights (device, workers and evaluation settings excluded)."""
        payload = weights_key(self)
        payload["method_params"] = to_dict(self.method_config)
        return payload

    def check(self, ordinary: Trained | None) -> None:
        """A method trained against the ordinary classifier needs the one its key names (:func:`with_ordinary`)."""
        if not self.needs_ordinary:
            return
        if not self.ordinary_key:
            raise ValueError(f"method {self.method!r} needs the ordinary classifier: bind it with "
                             "with_ordinary(cfg, train_classifier(ctx, ordinary_cfg))")
        if ordinary is None or ordinary.stage.key != self.ordinary_key:
            got = ordinary.stage.key if ordinary is not None else None
            raise ValueError(f"method {self.method!r} was configured with ordinary classifier {self.ordinary_key}, "
                             f"got {got}; pass the same trained classifier to train_classifier(..., ordinary=...)")

    def build(self, ctx: RunContext, weights: str | None, ordinary: Trained | None = None) -> Method:
        """The untrained method (with the ordinary classifier's weights when it needs them), or its bare
        architecture (``weights="none"``: ``model.pt`` holds every weight, the ordinary classifier's included)."""
        num_classes = open_dataset(self.dataset, self.eval_split, work_dir=ctx.work_dir, progress=False).num_classes
        if weights is not None:
            return build_method(self.method, self.method_config, replace(self.backbone, weights=weights),
                                num_classes - 1, untrained_ordinary=self.needs_ordinary)
        extra = {"ordinary_state": ordinary.method.state_dict()} if self.needs_ordinary else {}
        seed_everything(self.train.seed)  # the new layers' initialisation is part of what the stage key names
        return build_method(self.method, self.method_config, self.backbone, num_classes - 1, **extra)

    def train_set(self, ctx: RunContext, ordinary: Trained | None, method: Method) -> Any:
        return open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir,
                            transform=build_train_transform(self.augment, *method.normalization))

    def eval_set(self, ctx: RunContext) -> Any:
        return open_dataset(self.dataset, self.eval_split, work_dir=ctx.work_dir)


TrainedClassifier = Trained
"""A trained classifier: ``Trained[ClassifierStageConfig, Method]``."""


def with_ordinary(cfg: ClassifierStageConfig, ordinary: Trained) -> ClassifierStageConfig:
    """``cfg`` bound to the trained ordinary classifier ``ordinary`` (its stage key enters the hash)."""
    if ordinary.config.method != "cam":
        raise ValueError(f"the ordinary classifier must be a plain CAM classifier, got method {ordinary.config.method!r}")
    if ordinary.config.backbone != cfg.backbone:
        raise ValueError(f"ordinary classifier backbone {ordinary.config.backbone.name!r} differs from the "
                         f"generator's {cfg.backbone.name!r}")
    return replace(cfg, ordinary_key=ordinary.stage.key)


def train_classifier(ctx: RunContext, cfg: ClassifierStageConfig, progress: bool = True,
                     ordinary: Trained | None = None) -> Trained:
    """Train (or resume, or load if finished) the classifier described by ``cfg``.

    Methods in :data:`ORDINARY_METHODS` need ``ordinary``: the trained RandAugment + LS classifier whose key
    ``cfg`` was bound to with :func:`with_ordinary`.
    """
    return train_stage(ctx, cfg, ordinary, progress=progress)


def load_classifier(ctx: RunContext, cfg: ClassifierStageConfig) -> Trained:
    """A finished classifier (raises ``StageNotFoundError`` naming the stage if it was never trained)."""
    sd = ctx.store.require("classifier", cfg.hashed(), name=cfg.run_name,
                           hint="Train it first (notebook 01 trains the CAM and the RandAugment+LS classifiers).")
    return load_trained(ctx, sd, cfg)


def load_classifier_stage(ctx: RunContext, sd: StageDir) -> Trained:
    """The finished classifier stored in ``sd``, rebuilt from its ``config.json`` (device and evaluation
    settings, which are not part of the key, take their defaults)."""
    cfg = from_dict(ClassifierStageConfig, sd.config()["config"], where=str(sd.file("config.json")))
    return load_trained(ctx, sd, cfg)


def infer_cams_stage(ctx: RunContext, trained: TrainedClassifier, split: str, tta: TTAConfig = TTAConfig(),
                     progress: bool = True) -> StageDir:
    """CAM files of ``split`` (resumable), stage ``cams`` keyed by the classifier and the TTA settings."""
    cfg = trained.config
    return inference_stage(ctx, "cams", {"classifier": trained.stage.key, "split": split, "tta": tta},
                           f"{cfg.run_name}-{split}", trained.method, cfg.train, cfg.dataset, split,
                           lambda model, dataset, sd, mean, std, **kw: infer_cams(model, dataset, sd.file("npz"), mean,
                                                                                   std, tta, **kw),
                           progress=progress, recipe={"backbone": cfg.backbone.name, "scales": tta.scales,
                                                      "flip": tta.flip})


def sweep_stage(ctx: RunContext, cams: StageDir, dataset_cfg: DatasetConfig, split: str,
                thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS, crf: str = "",
                progress: bool = True) -> SweepResult:
    """Oracle background-threshold sweep of the CAMs in ``cams`` against ``split``'s ground truth.

    Stored as stage ``sweeps`` (the per-threshold confusion counts, see :func:`sweep_stage_dir`), so later
    notebooks (06) reload it instead of rescoring.

    ``crf`` names a label-CRF preset of ``wsss_lib.ops.crf`` (e.g. ``"label"``, the official
    t=10, gt_prob 0.7 refinement) applied to each thresholded map before scoring; empty = no CRF. With a
    CRF every threshold costs one CRF per image (about 1.5-4 s at VOC size on 2 CPU cores), so pass few
    thresholds.
    """
    return load_sweep(sweep_stage_dir(ctx, cams, dataset_cfg, split, thresholds, crf, progress))


def sweep_stage_dir(ctx: RunContext, cams: StageDir, dataset_cfg: DatasetConfig, split: str,
                    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS, crf: str = "",
                    progress: bool = True) -> StageDir:
    """The ``sweeps`` stage of :func:`sweep_stage` (computed if missing), keyed by the CAM stage, the split's
    image list, the thresholds and the CRF preset."""
    thresholds = tuple(float(t) for t in thresholds)
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    sd = ctx.store.stage("sweeps", {"cams": cams.key, "split": split, "dataset_key": dataset.cache_key(),
                                    "thresholds": thresholds, "crf": crf}, name=cams.path.name)
    with sd.computing() as todo:
        if todo:
            with timing.scope("sweeps"):
                crf_fn = label_crf_fn(crf) if crf else None
                result = threshold_sweep(cams.file("npz"), dataset, thresholds, num_classes=dataset.num_classes,
                                         class_names=dataset.class_names, crf=crf_fn, progress=progress)
                atomic_save_npz(sd.file("counts.npz"), counts=np.stack([cm.counts for cm in result.confusion]),
                                thresholds=result.thresholds, class_names=np.array(result.class_names),
                                num_images=np.array(result.num_images))
                sd.write_frame("table.csv", result.table)
                sd.mark_done(images=result.num_images)
    planning.record_images(ctx, sd, split, len(dataset), thresholds=len(thresholds), crf=crf)
    return sd


def regions_stage_dir(ctx: RunContext, cams: StageDir, dataset_cfg: DatasetConfig, split: str, sweep_dir: StageDir,
                      progress: bool = True) -> StageDir | None:
    """The ``regions`` stage: part / near-body / far-body recall and context false positives
    (:func:`wsss_lib.evaluation.pathology.cam_region_counts`) of the CAMs at the sweep's oracle threshold, or
    ``None`` when the dataset has no region annotation (VOC, COCO, the synthetic benchmark v1)."""
    from wsss_lib.evaluation.pathology import REGION_DIR, cam_region_counts

    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    if not (Path(getattr(dataset, "root", "")) / REGION_DIR).is_dir():
        return None
    threshold = load_sweep(sweep_dir).best_threshold
    sd = ctx.store.stage("regions", {"cams": cams.key, "sweep": sweep_dir.key, "threshold": threshold},
                         name=cams.path.name)
    with sd.computing() as todo:
        if todo:
            with timing.scope("regions"):
                counts = cam_region_counts(cams.file("npz"), dataset, threshold, progress=progress)
                atomic_save_npz(sd.file("region_counts.npz"), counts=counts, threshold=np.array(threshold))
                sd.mark_done(images=len(dataset))
    planning.record_images(ctx, sd, split, len(dataset))
    return sd


def load_sweep(sd: StageDir) -> SweepResult:
    """The :class:`SweepResult` stored by :func:`sweep_stage` in ``sd``."""
    data = sd.load_npz("counts.npz", ("counts", "thresholds", "class_names", "num_images"))
    counts, thresholds = data["counts"], data["thresholds"]
    names, num_images = [str(n) for n in data["class_names"]], int(data["num_images"])
    confusion = [ConfusionMatrix(len(names)).add_counts(c) for c in counts]
    return SweepResult.from_confusion(thresholds, confusion, names, num_images)
