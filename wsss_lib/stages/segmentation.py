"""Stages of the segmentation step (P-NOC sections 6.3 and 7.4; official ``scripts/segmentation/*``):

1. ``train_segmentation``: DeepLab (v2 or v3+) trained on the pseudo-masks of a refinement run (notebook 08) or on
   the ground truth (the fully supervised reference);
2. ``predict_stage``: multi-scale + flip inference of a split, optional DeepLab-v2 CRF, palette PNGs in the VOC
   layout (``SegmentationClass/``; before the CRF in ``raw/SegmentationClass/``);
3. ``prediction_score_stage``: their confusion matrix against the split's ground truth (cached);
4. ``export_test_stage``: the VOC evaluation-server archive of a test split (no ground truth needed).

``run_segmentation`` chains them for one training source and records the run under
``<work_dir>/runs/segmentation/`` for the state-of-the-art notebook (10).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Sequence

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.saliency import PseudoMaskDataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.formats.masks import MASK_FOLDER
from wsss_lib.inference.segmentation import SegInferenceConfig, export_voc_test, infer_segmentation, raw_dir
from wsss_lib.methods.registry import SegmentationMethodConfig, build_method
from wsss_lib.methods.segmentation import SegmentationLossConfig, SegmentationMethod
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.deeplab import DeepLabConfig, head_label
from wsss_lib.refinement.pseudo_masks import score_masks
from wsss_lib.stages import planning
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.inference import inference_stage
from wsss_lib.stages.records import (
    read_records,
    relative,
    slug,
    stage_from_record,
    write_record,
)
from wsss_lib.stages.refinement import load_refinement_runs, mask_score_stage
from wsss_lib.stages.scores import cached_confusion
from wsss_lib.stages.training import StageConfig, Trained, train_stage
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, seed_everything

__all__ = ["GROUND_TRUTH", "SegmentationStageConfig", "TrainedSegmentation", "train_segmentation", "predict_stage",
           "prediction_score_stage", "export_test_stage", "SegmentationRun",
           "run_segmentation", "RecordedSegmentation", "load_segmentation_runs"]

GROUND_TRUTH = "ground truth"
"""The training source of the fully supervised reference (the split's own masks)."""


@dataclass(frozen=True)
class SegmentationStageConfig(StageConfig):
    """Everything that determines a trained segmentation network (its hash is the stage key); it learns from the
    pseudo-mask stage ``masks_key`` names, or from the ground truth."""

    stage: ClassVar[str] = "segmentation"

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resnest269e", weights="timm",
                                                                            output_stride=16, frozen_bn=True))
    network: DeepLabConfig = field(default_factory=DeepLabConfig)
    loss: SegmentationLossConfig = field(default_factory=SegmentationLossConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(crop_size=512, resize_long_side=(256, 1024),
                                                                         resize_scale=(0.5, 1.5)))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=50, batch_size=16, amp="off", eval_every=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.007, momentum=0.0, weight_decay=4e-5))
    iterations: int = 0
    """> 0: train that many optimizer steps instead of ``train.epochs`` epochs (DeepLab-v2: 10,000 / 20,000)."""
    train_split: str = "train_aug"
    masks_key: str = ""
    """Key of the pseudo-mask stage (of ``train_split``) to learn from; empty = the split's ground truth."""
    masks_label: str = GROUND_TRUTH

    @property
    def run_name(self) -> str:
        return f"deeplab{self.network.head}-{slug(self.masks_label)}-{self.backbone.name}-seed{self.train.seed}"

    @property
    def max_steps(self) -> int:
        return int(self.iterations or 0)

    def check(self, masks: StageDir | None) -> None:
        if (masks.key if masks is not None else "") != self.masks_key:
            raise ValueError(f"segmentation network configured with mask stage {self.masks_key or 'ground truth'!r} "
                             f"but given {masks.key if masks is not None else 'ground truth'!r}")

    def build(self, ctx: RunContext, weights: str | None, masks: StageDir | None = None) -> SegmentationMethod:
        num_classes = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir, progress=False).num_classes
        backbone = replace(self.backbone, weights=weights) if weights else self.backbone
        seed_everything(self.train.seed)  # the head's initialisation is part of what the stage key names
        return build_method("segmentation", SegmentationMethodConfig(self.network, self.loss), backbone, num_classes)

    def train_set(self, ctx: RunContext, masks: StageDir | None, method: SegmentationMethod) -> Any:
        transform = build_train_transform(self.augment, *method.normalization)
        if masks is None:  # the ground truth: the same split, opened with the training transform
            return open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir, transform=transform)
        base = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir)
        return PseudoMaskDataset(base, masks.path / MASK_FOLDER, transform)


TrainedSegmentation = Trained
"""A trained segmentation network: ``Trained[SegmentationStageConfig, SegmentationMethod]``."""


def train_segmentation(ctx: RunContext, cfg: SegmentationStageConfig, masks: StageDir | None = None,
                       progress: bool = True) -> Trained:
    """Train (resume, or load) the segmentation network on ``masks`` (a pseudo-mask stage of ``cfg.train_split``)
    or, with ``masks=None``, on the split's ground truth."""
    return train_stage(ctx, cfg, masks, progress=progress)


def predict_stage(ctx: RunContext, trained: TrainedSegmentation, split: str, cfg: SegInferenceConfig,
                  progress: bool = True, workers: int = 1) -> StageDir:
    """Predictions of ``split`` (stage ``seg_predictions``; VOC layout, resumable; CRFs in ``workers`` processes)."""
    config = trained.config
    return inference_stage(ctx, "seg_predictions", {"segmentation": trained.stage.key, "split": split, "tta": cfg},
                           f"{config.run_name}-{split}", trained.method, config.train, config.dataset, split,
                           lambda network, dataset, sd, mean, std, **kw: infer_segmentation(
                               network, dataset, sd.path, mean, std, cfg, workers=workers, **kw),
                           progress=progress, recipe={"backbone": config.backbone.name, "head": config.network.head,
                                                      "scales": cfg.scales, "flip": cfg.flip, "crf": cfg.crf,
                                                      "crfs": 1 if cfg.crf else 0})


def prediction_score_stage(ctx: RunContext, predictions: StageDir, dataset_cfg: DatasetConfig, split: str,
                           before_crf: bool = False, progress: bool = True) -> ConfusionMatrix:
    """Confusion matrix of the predictions (``before_crf``: those before the CRF) against ``split``'s ground truth."""
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    folder = raw_dir(predictions.path) if before_crf else predictions.path
    return cached_confusion(ctx, "seg_scores", {"predictions": predictions.key, "split": split, "before_crf": before_crf},
                            dataset, lambda: score_masks(dataset, folder, progress=progress))


def export_test_stage(ctx: RunContext, predictions: StageDir, dataset_cfg: DatasetConfig, split: str,
                      progress: bool = True) -> StageDir:
    """The VOC evaluation-server archive of the predictions of ``split`` (stage ``voc_export``)."""
    sd = ctx.store.stage("voc_export", {"predictions": predictions.key, "split": split},
                         name=predictions.path.name.rsplit("-", 1)[0])
    with sd.computing() as todo:
        if todo:
            with timing.scope("voc_export"):
                dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
                archive = export_voc_test(dataset, predictions.path, sd.path)
            sd.mark_done(images=len(dataset), archive=archive.name)
    planning.record_images(ctx, sd, split, int(sd.summary().get("images", 0)))
    return sd


# ---------------------------------------------------------------------------------------------- notebook 09
@dataclass(frozen=True)
class SegmentationRun:
    """One segmentation network: its training source, the predictions of the evaluation split and their scores."""

    label: str
    source: str
    seed: int
    """The chain's seed: the pseudo-masks' refinement run and DeepLab's training use it."""
    trained: TrainedSegmentation = field(repr=False)
    predictions: StageDir
    confusion: ConfusionMatrix = field(repr=False)
    """Final predictions (after the CRF when one is configured)."""
    confusion_before_crf: ConfusionMatrix | None = field(repr=False)
    masks: StageDir | None = None
    """The pseudo-mask stage it trained on (``None``: ground truth)."""
    masks_confusion: ConfusionMatrix | None = field(default=None, repr=False)
    """Those pseudo-masks against the training split's ground truth."""
    test_export: StageDir | None = None


def _training_masks(ctx: RunContext, source: str, split: str, seed: int) -> tuple[StageDir | None, str]:
    """The pseudo-masks of ``split`` of the refinement run ``source`` of ``seed`` and its saliency (none for the
    ground truth)."""
    if source == GROUND_TRUTH:
        return None, ""
    found = load_refinement_runs(ctx, [source], seeds=[seed])
    if not found:
        known = sorted({(r.label, r.seed) for r in load_refinement_runs(ctx)})
        raise FileNotFoundError(f"no refinement run {source!r} of seed {seed} is recorded under "
                                f"{ctx.work_dir / 'runs' / 'refinement'} (recorded: {known}); run notebook 08 with that "
                                f"row and seed first, or use {GROUND_TRUTH!r}")
    record = found[0]
    if split not in record.masks:
        raise FileNotFoundError(f"refinement run {source!r} has pseudo-masks of {sorted(record.masks)}, not of the "
                                f"training split {split!r}; add it to notebook 08's eval_splits")
    return record.masks[split], record.saliency


def run_segmentation(ctx: RunContext, segmentation: SegmentationStageConfig, source: str, *, eval_split: str = "val",
                     test_split: str = "", inference: SegInferenceConfig = SegInferenceConfig(), seed: int = 0,
                     variant: str = "", workers: int = 2, progress: bool = True) -> SegmentationRun:
    """Train DeepLab (recipe ``segmentation``) on ``source`` (``"ground truth"`` or a refinement run's label), predict
    and score ``eval_split`` (and predict and export ``test_split``, a split without ground truth, if set); record the
    run for notebook 10. ``seed``: the chain's seed (the refinement run of that seed; it replaces DeepLab's
    ``train.seed``). ``variant``: the name of the notebook's ``segmentation_variants`` entry ``segmentation`` is (e.g.
    ``"DeepLabV2"``), for the dry run's plan."""
    data, train_split = segmentation.dataset, segmentation.train_split
    masks, saliency = _training_masks(ctx, source, train_split, seed)
    cfg = replace(segmentation, train=replace(segmentation.train, seed=seed),
                  masks_key=masks.key if masks is not None else "", masks_label=source)
    with planning.built_from(f"segmentation_variants.{variant}" if variant else ""):
        trained = train_segmentation(ctx, cfg, masks, progress=progress)
    predictions = predict_stage(ctx, trained, eval_split, inference, progress=progress, workers=workers)
    confusion = prediction_score_stage(ctx, predictions, data, eval_split, progress=progress)
    before = (prediction_score_stage(ctx, predictions, data, eval_split, before_crf=True, progress=progress)
              if inference.crf else None)
    masks_confusion = (mask_score_stage(ctx, masks, data, train_split, progress=progress)
                       if masks is not None else None)
    export = None
    if test_split:
        test_predictions = predict_stage(ctx, trained, test_split, inference, progress=progress, workers=workers)
        export = export_test_stage(ctx, test_predictions, data, test_split, progress=progress)
    model = head_label(segmentation.network.head)
    label = f"{source} · DeepLab{model}"
    write_record(ctx, "segmentation", f"{slug(label)}-seed{seed}", {
        "label": label, "source": source, "seed": int(seed), "model": model, "backbone": segmentation.backbone.name,
        "dataset": data.name, "train_split": train_split, "eval_split": eval_split,
        "supervision": "F" if source == GROUND_TRUTH else "I",
        "saliency": saliency, "segmentation": relative(ctx, trained.stage),
        "predictions": relative(ctx, predictions), "masks": relative(ctx, masks),
        "masks_miou": 100 * masks_confusion.scores().miou if masks_confusion else None,
        "miou": 100 * confusion.scores().miou, "miou_before_crf": 100 * before.scores().miou if before else None,
        "crf": inference.crf, "test_split": test_split, "test_export": relative(ctx, export)})
    return SegmentationRun(label, source, seed, trained, predictions, confusion, before, masks, masks_confusion,
                           export)


@dataclass(frozen=True)
class RecordedSegmentation:
    """A recorded segmentation run (notebook 09), as notebook 10 reads it."""

    label: str
    source: str
    seed: int
    model: str
    backbone: str
    dataset: str
    train_split: str
    eval_split: str
    supervision: str
    saliency: str
    miou: float
    miou_before_crf: float | None
    masks_miou: float | None
    test_export: str
    predictions: StageDir


def load_segmentation_runs(ctx: RunContext, labels: Sequence[str] | None = None,
                           seeds: Sequence[int] | None = None,
                           split: str | None = None) -> list[RecordedSegmentation]:
    """The recorded segmentation runs of this profile (their predictions checked to be finished), optionally only
    ``labels`` (in that order), ``seeds`` and those evaluated on ``split``, ordered by label then seed."""
    records = [{**r, "seed": int(r.get("seed", 0))} for r in read_records(ctx, "segmentation")]
    if seeds is not None:
        records = [r for r in records if r["seed"] in set(seeds)]
    if labels is not None:
        records = [r for r in records if r["label"] in labels]
    order = {label: i for i, label in enumerate(labels or [])}
    records = sorted(records, key=lambda r: (order.get(r["label"], len(order)), r["label"], r["seed"]))
    if split is not None:
        records = [r for r in records if r["eval_split"] == split]
    return [RecordedSegmentation(r["label"], r["source"], r["seed"], r["model"], r["backbone"], r["dataset"],
                                 r["train_split"], r["eval_split"], r["supervision"], r.get("saliency", ""),
                                 r["miou"], r.get("miou_before_crf"), r.get("masks_miou"), r.get("test_export", ""),
                                 stage_from_record(ctx, r["predictions"], "notebook 09")) for r in records]
