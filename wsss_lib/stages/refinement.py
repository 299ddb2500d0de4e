"""Stages of the refinement pipeline (P-NOC sections 5 and 7.3; official ``runners/3-rw.sh``):

1. ``affinity_labels_stage``: affinity labels of the affinity network's training split, from a priors run's CAMs
   (conventional rule) or from its CAMs and a saliency run's maps (P-NOC's saliency-aware rule);
2. ``train_affinity``: the affinity network (IRN boundary branch, or AffinityNet's feature head) on those labels;
3. ``random_walk_stage``: the priors' CAMs of an evaluation split walked with the network's affinities;
4. ``pseudo_mask_stage``: background threshold + one CRF iteration -> palette PNG pseudo-masks (VOC layout);
5. ``mask_score_stage``: their confusion matrix against the split's ground truth (Table 7).

Every stage is keyed by a hash of its configuration and upstream keys, resumes per image and writes atomically.
``run_refinement`` chains them for one row of Table 7 (a priors run and, optionally, a saliency run) and records
it under ``<work_dir>/runs/refinement/`` for notebook 08 and the segmentation notebook (09).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Sequence

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.saliency import AffinityLabelsDataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.evaluation.sweep import SweepResult
from wsss_lib.formats.masks import load_affinity_labels
from wsss_lib.inference.affinity import RandomWalkConfig, infer_random_walk
from wsss_lib.methods.affinity import AffinityLossConfig, AffinityMethod
from wsss_lib.methods.registry import AffinityMethodConfig, build_method
from wsss_lib.models.affinity import AffinityNetConfig
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.refinement.affinity_labels import AffinityLabelConfig, make_affinity_labels
from wsss_lib.refinement.pseudo_masks import make_pseudo_masks, score_masks
from wsss_lib.stages import planning
from wsss_lib.stages.classifier import load_sweep, sweep_stage_dir
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.inference import inference_stage
from wsss_lib.stages.priors import find_priors_run, threshold_index
from wsss_lib.stages.records import (
    read_records,
    relative,
    slug,
    stage_from_record,
    write_record,
)
from wsss_lib.stages.saliency import SaliencyRun, hint_cams_stage, infer_saliency_stage, load_saliency_runs
from wsss_lib.stages.scores import cached_confusion
from wsss_lib.stages.training import StageConfig, Trained, train_stage
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, seed_everything

__all__ = ["AffinityStageConfig", "TrainedAffinity", "affinity_labels_stage", "train_affinity", "random_walk_stage",
           "pseudo_mask_stage", "mask_score_stage", "label_quality_stage", "PseudoMaskConfig", "RefinementRun",
           "SplitResult", "HeldOut", "refinement_label", "run_refinement", "RecordedRefinement", "load_refinement_runs"]


@dataclass(frozen=True)
class AffinityStageConfig(StageConfig):
    """Everything that determines a trained affinity network (its hash is the stage key); it learns from the
    affinity-label stage ``labels_key`` names."""

    stage: ClassVar[str] = "affinity"

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(
        name="resnest269e", weights="timm", out_indices=(0, 1, 2, 3, 4), output_stride=16, frozen_bn=True))
    network: AffinityNetConfig = field(default_factory=AffinityNetConfig)
    loss: AffinityLossConfig = field(default_factory=AffinityLossConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        crop_size=512, resize_mode="long_side", resize_long_side=(320, 640), color_jitter=None))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, batch_size=32, eval_every=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.1, momentum=0.0, weight_decay=1e-4))
    train_split: str = "train_aug"
    labels_key: str = ""
    """Key of the affinity-label stage (of ``train_split``) the network learns from."""
    labels_label: str = ""

    @property
    def run_name(self) -> str:
        return f"affinity-{self.network.head}-{slug(self.labels_label) or 'labels'}-{self.backbone.name}-seed{self.train.seed}"

    def check(self, labels: StageDir) -> None:
        if labels.key != self.labels_key:
            raise ValueError(f"affinity network configured with label stage {self.labels_key} but given {labels.key}")

    def build(self, ctx: RunContext, weights: str | None, labels: StageDir | None = None) -> AffinityMethod:
        backbone = replace(self.backbone, weights=weights) if weights else self.backbone
        seed_everything(self.train.seed)  # the head's initialisation is part of what the stage key names
        return build_method("affinity", AffinityMethodConfig(self.network, self.loss), backbone, 0)

    def train_set(self, ctx: RunContext, labels: StageDir, method: AffinityMethod) -> Any:
        base = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir)
        return AffinityLabelsDataset(base, labels.file("png"), build_train_transform(self.augment, *method.normalization))


TrainedAffinity = Trained
"""A trained affinity network: ``Trained[AffinityStageConfig, AffinityMethod]``."""


def affinity_labels_stage(ctx: RunContext, cams: StageDir, dataset_cfg: DatasetConfig, split: str,
                          cfg: AffinityLabelConfig, saliency: StageDir | None = None,
                          progress: bool = True, workers: int = 1) -> StageDir:
    """Affinity label PNGs of ``split`` (stage ``affinity_labels``; saliency maps needed in ``saliency`` mode)."""
    if cfg.needs_saliency != (saliency is not None):
        raise ValueError(f"affinity labels in {cfg.mode!r} mode {'need' if cfg.needs_saliency else 'take no'} "
                         "saliency maps")
    sd = ctx.store.stage("affinity_labels", {"cams": cams.key, "saliency": saliency.key if saliency else "",
                                             "split": split, "labels": cfg},
                         name=f"{cfg.mode}-{cams.path.name.rsplit('-', 1)[0]}")
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    with sd.computing(sharded=True) as todo:
        if todo:
            with timing.scope("affinity_labels"):
                counts = make_affinity_labels(dataset, cams.file("npz"), sd.file("png"), cfg,
                                              saliency.file("png") if saliency else None, progress=progress,
                                              workers=workers)
                sd.finish_images(len(dataset), counts)
    # the conventional rule runs two CRFs per image (the fg and the bg thresholding), the saliency-aware one two
    # (the salient region, then the classes inside it)
    planning.record_images(ctx, sd, split, len(dataset), crf=cfg.crf, crfs=2 if cfg.crf and cfg.mode != "coarse" else 0)
    return sd


def train_affinity(ctx: RunContext, cfg: AffinityStageConfig, labels: StageDir, progress: bool = True) -> Trained:
    """Train (resume, or load) the affinity network on the labels in ``labels``."""
    return train_stage(ctx, cfg, labels, progress=progress)


def random_walk_stage(ctx: RunContext, trained: TrainedAffinity, cams: StageDir, split: str, cfg: RandomWalkConfig,
                      progress: bool = True) -> StageDir:
    """Walked CAM files of ``split`` (stage ``rw``, CAM file format under ``npz/``; resumable)."""
    config = trained.config
    return inference_stage(ctx, "rw", {"affinity": trained.stage.key, "cams": cams.key, "split": split, "walk": cfg},
                           f"{config.run_name}-{split}", trained.method, config.train, config.dataset, split,
                           lambda network, dataset, sd, mean, std, **kw: infer_random_walk(
                               network, dataset, cams.file("npz"), sd.file("npz"), mean, std, cfg, **kw),
                           progress=progress, recipe={"backbone": config.backbone.name, "flip": cfg.flip,
                                                      "radius": cfg.radius, "exp_times": cfg.exp_times})


def pseudo_mask_stage(ctx: RunContext, walked: StageDir, dataset_cfg: DatasetConfig, split: str, bg_threshold: float,
                      crf: str = "label_pseudo_mask", progress: bool = True, workers: int = 1) -> StageDir:
    """Palette PNG pseudo-masks of ``split`` in ``<stage>/SegmentationClass/`` (stage ``pseudo_masks``)."""
    sd = ctx.store.stage("pseudo_masks", {"rw": walked.key, "split": split, "bg_threshold": float(bg_threshold),
                                          "crf": crf}, name=walked.path.name.rsplit("-", 1)[0])
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    with sd.computing(sharded=True) as todo:
        if todo:
            with timing.scope("pseudo_masks"):
                counts = make_pseudo_masks(dataset, walked.file("npz"), sd.path, bg_threshold, crf, progress=progress,
                                           workers=workers)
                sd.finish_images(len(dataset), counts)
    planning.record_images(ctx, sd, split, len(dataset), crf=crf, crfs=1 if crf else 0)
    return sd


def mask_score_stage(ctx: RunContext, masks: StageDir, dataset_cfg: DatasetConfig, split: str,
                     progress: bool = True) -> ConfusionMatrix:
    """Confusion matrix of the pseudo-masks in ``masks`` against ``split``'s ground truth (cached)."""
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    return cached_confusion(ctx, "mask_scores", {"masks": masks.key, "split": split}, dataset,
                             lambda: score_masks(dataset, masks.path, progress=progress))


def label_quality_stage(ctx: RunContext, labels: StageDir, dataset_cfg: DatasetConfig, split: str,
                        progress: bool = True) -> ConfusionMatrix:
    """Confusion matrix of affinity labels against the ground truth (uncertain 255 = unassigned, a miss)."""
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)

    def compute() -> ConfusionMatrix:
        confusion = ConfusionMatrix(dataset.num_classes)
        for image_id in dataset.ids:
            confusion.update(load_affinity_labels(labels.file("png") / f"{image_id}.png", dataset.num_classes),
                             dataset.load_mask(image_id))
        return confusion

    return cached_confusion(ctx, "affinity_label_scores", {"labels": labels.key, "split": split}, dataset, compute)


# ---------------------------------------------------------------------------------------------- notebook 08
def refinement_label(priors: str, saliency: str) -> str:
    """Row label of Table 7: ``"P-NOC+LS + C2AM-H (P-NOC+LS)"`` or ``"P (conventional labels)"``."""
    return f"{priors} + {saliency}" if saliency else f"{priors} (conventional labels)"


@dataclass(frozen=True)
class PseudoMaskConfig:
    """Pseudo-masks from the walked maps: a background threshold, then one CRF iteration."""

    bg_threshold: float = 0.25
    """The official constant (0.25 paper-time, 0.3 HEAD)."""
    threshold_from: Literal["fixed", "sweep"] = "fixed"
    """``"fixed"``: ``bg_threshold``; ``"sweep"``: the walked maps' oracle background threshold on the first
    evaluation split, applied to every split."""

    def __post_init__(self) -> None:  # checked when the profile is read, not when notebook 08 runs
        if self.threshold_from not in ("fixed", "sweep"):
            raise ValueError(f"pseudo.threshold_from must be 'fixed' or 'sweep', got {self.threshold_from!r}")
    crf: str = "label_pseudo_mask"


@dataclass(frozen=True)
class SplitResult:
    """One evaluation split of a refinement run."""

    split: str
    cams: StageDir
    walked: StageDir
    masks: StageDir
    priors_sweep: SweepResult = field(repr=False)
    """The priors' CAMs: oracle background threshold, no CRF."""
    walked_sweep: SweepResult = field(repr=False)
    """The walked maps: oracle background threshold, no CRF."""
    masks_confusion: ConfusionMatrix = field(repr=False)
    """The pseudo-masks (the run's threshold + CRF)."""
    heldout: "HeldOut | None" = field(default=None, repr=False)
    """The same numbers at the thresholds chosen on the held-out split (``run_refinement(heldout_split=...)``)."""


@dataclass(frozen=True)
class HeldOut:
    """A split's numbers at the background thresholds chosen on the held-out split (its own oracle there): the
    priors' and the walked maps' mIoU at those thresholds, and pseudo-masks made at the walked maps' one."""

    split: str
    priors_threshold: float
    walked_threshold: float
    priors_miou: float
    walked_miou: float
    masks: StageDir
    masks_confusion: ConfusionMatrix = field(repr=False)


@dataclass(frozen=True)
class RefinementRun:
    """One row of Table 7: the affinity labels, the network and the per-split results."""

    label: str
    priors: str
    saliency: str
    seed: int
    """The chain's seed: the priors run, the saliency run and the affinity network's training all use it."""
    labels: StageDir
    train_cams: StageDir
    """The priors' CAMs of the training split the labels were made from."""
    affinity: TrainedAffinity = field(repr=False)
    label_confusion: ConfusionMatrix = field(repr=False)
    splits: dict[str, SplitResult] = field(repr=False)
    pseudo_threshold: float = 0.25
    """The background threshold the pseudo-masks used."""


def _saliency_maps(ctx: RunContext, run: SaliencyRun, source: str, split: str, progress: bool) -> StageDir:
    """The saliency maps of ``split`` from the run's detector (official) or its C²AM(-H) model."""
    stored = run.refined if source == "detector" else run.saliency
    stored_cfg = stored.config()["config"]
    if stored_cfg["split"] == split:
        return stored
    model = run.detector if source == "detector" else run.c2am
    return infer_saliency_stage(ctx, model, split, tuple(stored_cfg["tta"]["scales"]), stored_cfg["tta"]["flip"],
                                progress=progress)


def run_refinement(ctx: RunContext, affinity: AffinityStageConfig, priors: str, saliency: str = "", *,
                   eval_splits: Sequence[str] = ("train", "val"), seed: int = 0,
                   labels: AffinityLabelConfig = AffinityLabelConfig(), saliency_source: str = "detector",
                   walk: RandomWalkConfig = RandomWalkConfig(), pseudo: PseudoMaskConfig = PseudoMaskConfig(),
                   heldout_split: str = "", workers: int = 2, progress: bool = True) -> RefinementRun:
    """One Table 7 row: affinity labels (rule ``labels``; its mode follows ``saliency``) from the priors run ``priors``
    (and the saliency run ``saliency``, e.g. ``"C2AM-H (P-NOC+LS)"``; empty = conventional labels) on
    ``affinity.train_split``, the affinity network (recipe ``affinity``), the walk and the pseudo-masks of every
    evaluation split, their scores; recorded for later notebooks.

    ``seed``: the chain's seed (the priors and saliency runs of that seed; it replaces the affinity network's
    ``train.seed``). ``heldout_split`` (one of ``eval_splits``, e.g. ``"val"``): every other split also gets its
    numbers at the thresholds chosen on that split (:class:`HeldOut`), beside the oracle ones."""
    if saliency_source not in ("detector", "c2am"):
        raise ValueError(f"saliency_source must be 'detector' or 'c2am', got {saliency_source!r}")
    if heldout_split and heldout_split not in eval_splits:
        raise ValueError(f"heldout_split {heldout_split!r} must be one of the evaluation splits {list(eval_splits)}")
    data, train_split = affinity.dataset, affinity.train_split
    priors_run = find_priors_run(ctx, priors, seed)
    train_cams = hint_cams_stage(ctx, priors_run, train_split, progress=progress)
    saliency_maps = None
    if saliency:
        found = load_saliency_runs(ctx, [saliency], seeds=[seed])
        if not found:
            raise FileNotFoundError(f"no saliency run {saliency!r} of seed {seed} is recorded under "
                                    f"{ctx.work_dir / 'runs' / 'saliency'}; run notebook 07 with that hint source "
                                    "and seed first")
        saliency_maps = _saliency_maps(ctx, found[0], saliency_source, train_split, progress)
    label = refinement_label(priors, saliency)
    rule = replace(labels, mode="saliency" if saliency else "conventional")
    label_stage = affinity_labels_stage(ctx, train_cams, data, train_split, rule, saliency_maps, progress=progress,
                                        workers=workers)
    label_confusion = label_quality_stage(ctx, label_stage, data, train_split, progress=progress)
    cfg = replace(affinity, train=replace(affinity.train, seed=seed), labels_key=label_stage.key, labels_label=label)
    trained = train_affinity(ctx, cfg, label_stage, progress=progress)
    walked, sweeps = {}, {}
    for split in eval_splits:
        cams = hint_cams_stage(ctx, priors_run, split, progress=progress)
        walked[split] = (cams, random_walk_stage(ctx, trained, cams, split, walk, progress=progress))
        sweeps[split] = tuple(load_sweep(sweep_stage_dir(ctx, sd, data, split, progress=progress))
                              for sd in walked[split])
    threshold = (pseudo.bg_threshold if pseudo.threshold_from == "fixed"
                 else sweeps[list(eval_splits)[0]][1].best_threshold)
    splits = {}
    for split, (cams, rw) in walked.items():
        masks = pseudo_mask_stage(ctx, rw, data, split, threshold, pseudo.crf, progress=progress, workers=workers)
        heldout = None
        if heldout_split and split != heldout_split:
            chosen_priors, chosen_walked = (sweep.best_threshold for sweep in sweeps[heldout_split])
            heldout_masks = pseudo_mask_stage(ctx, rw, data, split, chosen_walked, pseudo.crf, progress=progress,
                                              workers=workers)
            heldout = HeldOut(heldout_split, chosen_priors, chosen_walked,
                              100 * sweeps[split][0].scores(threshold_index(sweeps[split][0], chosen_priors)).miou,
                              100 * sweeps[split][1].scores(threshold_index(sweeps[split][1], chosen_walked)).miou,
                              heldout_masks, mask_score_stage(ctx, heldout_masks, data, split, progress=progress))
        splits[split] = SplitResult(split, cams, rw, masks, *sweeps[split],
                                    mask_score_stage(ctx, masks, data, split, progress=progress), heldout)
    write_record(ctx, "refinement", f"{slug(label)}-seed{seed}", {
        "label": label, "priors": priors, "saliency": saliency, "seed": int(seed),
        "labels": relative(ctx, label_stage), "train_cams": relative(ctx, train_cams),
        "affinity": relative(ctx, trained.stage),
        "splits": {s: {"cams": relative(ctx, r.cams), "walked": relative(ctx, r.walked), "masks": relative(ctx, r.masks),
                       "heldout_masks": relative(ctx, r.heldout.masks) if r.heldout else ""}
                   for s, r in splits.items()},
        "pseudo_bg_threshold": float(threshold), "pseudo_threshold_from": pseudo.threshold_from,
        "pseudo_crf": pseudo.crf, "heldout_split": heldout_split})
    return RefinementRun(label, priors, saliency, seed, label_stage, train_cams, trained, label_confusion, splits,
                         float(threshold))


@dataclass(frozen=True)
class RecordedRefinement:
    """A recorded refinement run (notebook 08), as later notebooks read it: its stages checked to be finished."""

    label: str
    priors: str
    saliency: str
    seed: int
    masks: dict[str, StageDir]
    """Evaluation split -> its pseudo-masks."""
    affinity: StageDir
    pseudo_threshold: float


def load_refinement_runs(ctx: RunContext, labels: Sequence[str] | None = None,
                         seeds: Sequence[int] | None = None, split: str | None = None) -> list[RecordedRefinement]:
    """The recorded refinement runs, optionally only ``labels`` (in that order), ``seeds`` and those with pseudo-masks
    of ``split``, ordered by label then seed."""
    records = [{**r, "seed": int(r.get("seed", 0))} for r in read_records(ctx, "refinement")]
    if seeds is not None:
        records = [r for r in records if r["seed"] in set(seeds)]
    if labels is not None:
        records = [r for r in records if r["label"] in labels]
    order = {label: i for i, label in enumerate(labels or [])}
    records = sorted(records, key=lambda r: (order.get(r["label"], len(order)), r["label"], r["seed"]))
    if split is not None:
        records = [r for r in records if split in r["splits"]]
    return [RecordedRefinement(r["label"], r["priors"], r["saliency"], r["seed"],
                               {s: stage_from_record(ctx, v["masks"], "notebook 08") for s, v in r["splits"].items()},
                               stage_from_record(ctx, r["affinity"], "notebook 08"), float(r["pseudo_bg_threshold"]))
            for r in records]
