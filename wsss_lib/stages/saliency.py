"""Stages of the saliency pipeline (P-NOC sections 4, 6.2 and 7.2; official ``runners/2-saliency.sh``):

1. ``train_c2am``: C²AM (no hints) or C²AM-H (hints = a priors run's CAMs on the training split);
2. ``infer_saliency_stage``: TTA saliency maps of a split (C²AM: ReLU on the logits, mean over scales, max-norm);
3. ``pseudo_saliency_stage``: threshold (0.2) + 2-label dense CRF -> 0/255 pseudo-saliency masks;
4. ``train_detector``: the PoolNet-style detector on the pseudo-saliency masks of the training split;
5. ``infer_saliency_stage`` again, with the detector (sigmoid outputs);
6. ``saliency_score_stage``: the pseudo-segmentation mIoU with saliency as the background cue (Table 6).

Every stage is keyed by a hash of its configuration and of its upstream keys (``wsss_lib.artifacts``), resumes
per image, and writes atomically. ``run_saliency`` chains them for one hint source and records the run under
``<work_dir>/runs/saliency/`` for notebook 07's tables and for the refinement notebook (08).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Sequence

import numpy as np
import torch

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.config import from_dict
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.saliency import HintedDataset, PseudoSaliencyDataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.evaluation.saliency import score_saliency
from wsss_lib.inference.saliency import SaliencyTTAConfig, infer_saliency
from wsss_lib.inference.tta import TTAConfig
from wsss_lib.io import atomic_write_json
from wsss_lib.methods.base import Method
from wsss_lib.methods.c2am import C2AMConfig, C2AMMethod, border_mean
from wsss_lib.methods.registry import build_method
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.saliency import DetectorConfig
from wsss_lib.refinement.saliency import make_pseudo_saliency
from wsss_lib.stages import planning
from wsss_lib.stages.classifier import infer_cams_stage, load_classifier_stage
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.inference import inference_stage
from wsss_lib.stages.priors import PriorsRun, find_priors_run
from wsss_lib.stages.records import (
    read_records,
    relative,
    slug,
    stage_from_record,
    write_record,
)
from wsss_lib.stages.scores import cached_confusion
from wsss_lib.stages.training import StageConfig, Trained, load_trained, train_stage
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, seed_everything

__all__ = ["C2AMStageConfig", "DetectorStageConfig", "TrainedSaliency", "train_c2am", "train_detector",
           "infer_saliency_stage", "pseudo_saliency_stage", "saliency_score_stage", "hint_cams_stage",
           "PseudoSaliencyConfig", "SaliencyRun", "saliency_label", "run_saliency", "load_saliency_runs"]

@dataclass(frozen=True)
class C2AMStageConfig(StageConfig):
    """Everything that determines a trained C²AM / C²AM-H model (its hash is the stage key); it learns from the hint
    CAMs (the CAM stage ``hints_cams`` names; ``None`` for plain C²AM)."""

    stage: ClassVar[str] = "c2am"

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resnest269e", weights="timm",
                                                                            output_stride=16))
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        crop_size=448, resize_mode="fixed", resize_fixed=515, color_jitter=None))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=32, eval_every=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, weight_decay=1e-4))
    loss: C2AMConfig = field(default_factory=C2AMConfig)
    train_split: str = "train_aug"
    hints_cams: str = ""
    """Key of the CAM stage whose maps are the hints (C²AM-H); empty = plain C²AM."""
    hints_label: str = ""
    """Which priors run those CAMs came from (for names and tables only)."""
    orientation_images: int = 32
    """Plain C²AM: images of the training split whose border decides the orientation (official heuristic)."""

    @property
    def run_name(self) -> str:
        kind = f"c2amh-{slug(self.hints_label) or 'hints'}" if self.hints_cams else "c2am"
        return f"{kind}-{self.backbone.name}-seed{self.train.seed}"

    def check(self, hints: StageDir | None) -> None:
        if bool(self.hints_cams) != (hints is not None) or (hints is not None and hints.key != self.hints_cams):
            raise ValueError(f"C2AM stage configured with hints {self.hints_cams or 'none'} but given "
                             f"{hints.key if hints is not None else 'none'}; pass the CAM stage the config names")
        if hints is not None and self.loss.hint_weight <= 0:
            raise ValueError("C2AM-H needs loss.hint_weight > 0 (hint_weight = 0 is plain C2AM: leave the hints out)")

    def build(self, ctx: RunContext, weights: str | None, hints: StageDir | None = None) -> Method:
        return _build("c2am", self, weights)

    def train_set(self, ctx: RunContext, hints: StageDir | None, method: Method) -> Any:
        transform = build_train_transform(self.augment, *method.normalization)
        if hints is None:
            return open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir, transform=transform)
        base = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir)
        return HintedDataset(base, hints.file("npz"), transform)

    def after(self, ctx: RunContext, hints: StageDir | None, method: Method, sd: StageDir) -> dict[str, Any]:
        """Which partition is the foreground, in ``orientation.json``: the hints anchor the first one; plain C²AM
        decides with the official border heuristic."""
        if hints is not None:
            found = {"invert": False, "rule": "hints anchor the first partition as foreground (P-NOC drops the heuristic)"}
        else:
            plain = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir, progress=False)
            found = _border_orientation(method, plain, self)
        atomic_write_json(sd.file("orientation.json"), found)
        return {"invert": found["invert"]}


@dataclass(frozen=True)
class DetectorStageConfig(StageConfig):
    """Everything that determines a trained saliency detector (PoolNet role); it learns from the pseudo-saliency stage
    ``pseudo_key`` names."""

    stage: ClassVar[str] = "detector"

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(
        name="resnet50", weights="timm", out_indices=(1, 2, 3, 4), output_stride=32, frozen_bn=True))
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        crop_size=512, resize_mode="none", color_jitter=None))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=9, batch_size=1, eval_every=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(algorithm="adam", lr=5e-5, weight_decay=5e-4,
                                                                   poly_power=0.0, accumulate_steps=10))
    train_split: str = "train_aug"
    pseudo_key: str = ""
    """Key of the pseudo-saliency stage (of ``train_split``) the detector learns from."""
    pseudo_label: str = ""

    @property
    def run_name(self) -> str:
        return f"detector-{slug(self.pseudo_label) or 'pseudo'}-{self.backbone.name}-seed{self.train.seed}"

    def check(self, pseudo: StageDir) -> None:
        if pseudo.key != self.pseudo_key:
            raise ValueError(f"detector configured with pseudo-saliency stage {self.pseudo_key} but given {pseudo.key}")

    def build(self, ctx: RunContext, weights: str | None, pseudo: StageDir | None = None) -> Method:
        return _build("detector", self, weights)

    def train_set(self, ctx: RunContext, pseudo: StageDir, method: Method) -> Any:
        base = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir)
        return PseudoSaliencyDataset(base, pseudo.file("png"), build_train_transform(self.augment, *method.normalization))


@dataclass(frozen=True)
class TrainedSaliency(Trained):
    """A trained saliency model (C²AM or detector) and how its output is read."""

    invert: bool = False
    """Plain C²AM whose first partition is the background (border heuristic)."""

    @property
    def kind(self) -> Literal["c2am", "detector"]:
        return self.config.stage

    def tta(self, scales: tuple[float, ...], flip: bool = True) -> SaliencyTTAConfig:
        activation = "relu" if self.kind == "c2am" else "sigmoid"
        return SaliencyTTAConfig(scales=tuple(scales), flip=flip, activation=activation, invert=self.invert)


def _build(kind: str, cfg, weights: str | None = None) -> Method:
    """The untrained model of ``kind`` (``weights=None``: as configured; ``"none"``: to load a finished stage into)."""
    backbone = replace(cfg.backbone, weights=weights) if weights else cfg.backbone
    seed_everything(cfg.train.seed)  # the new layers' initialisation is part of what the stage key names
    if kind == "c2am":
        return build_method("c2am", cfg.loss, backbone, 0)
    return build_method("saliency_detector", cfg.detector, backbone, 0)


def _saliency(done: Trained) -> TrainedSaliency:
    invert = bool(done.stage.read_json("orientation.json")["invert"]) if done.config.stage == "c2am" else False
    return TrainedSaliency(done.config, done.stage, done.method, done.history, invert)


@torch.no_grad()
def _border_orientation(method: C2AMMethod, dataset, cfg: C2AMStageConfig) -> dict[str, Any]:
    """The official ``check_positive`` (mean first-partition probability on a 4-pixel border > 0.5 => invert), on
    the first ``orientation_images`` training images at scale 1 (the official code looks at one training batch)."""
    from wsss_lib.inference.tta import _normalise  # one normalisation for training-time checks and inference

    network = method.network.eval()
    device = next(network.parameters()).device
    mean, std = method.normalization
    means = [border_mean(network(_normalise(dataset.load_image(i), mean, std, device)).probability[0, 0])
             for i in dataset.ids[: max(1, cfg.orientation_images)]]
    value = float(np.mean(means))
    return {"invert": value > 0.5, "border_mean": value, "rule": "border heuristic (plain C2AM): mean first-partition "
            "probability on the 4-pixel border > 0.5 => the first partition is the background", "images": len(means)}


def train_c2am(ctx: RunContext, cfg: C2AMStageConfig, hints: StageDir | None = None,
               progress: bool = True) -> TrainedSaliency:
    """Train (resume, or load) C²AM, or C²AM-H when ``hints`` (the CAM stage ``cfg.hints_cams`` names) is given."""
    return _saliency(train_stage(ctx, cfg, hints, progress=progress))


def train_detector(ctx: RunContext, cfg: DetectorStageConfig, pseudo: StageDir, progress: bool = True) -> TrainedSaliency:
    """Train (resume, or load) the saliency detector on the pseudo-saliency masks in ``pseudo``."""
    return _saliency(train_stage(ctx, cfg, pseudo, progress=progress))


def infer_saliency_stage(ctx: RunContext, trained: TrainedSaliency, split: str, scales: tuple[float, ...],
                         flip: bool = True, progress: bool = True) -> StageDir:
    """Saliency PNGs of ``split`` (stage ``saliency``, keyed by the model and the TTA settings; resumable)."""
    tta = trained.tta(scales, flip)
    cfg = trained.config
    return inference_stage(ctx, "saliency", {"model": trained.stage.key, "split": split, "tta": tta},
                           f"{cfg.run_name}-{split}", trained.method, cfg.train, cfg.dataset, split,
                           lambda model, dataset, sd, mean, std, **kw: infer_saliency(model, dataset, sd.file("png"),
                                                                                       mean, std, tta, **kw),
                           progress=progress, recipe={"backbone": cfg.backbone.name, "scales": tta.scales,
                                                      "flip": tta.flip})


def pseudo_saliency_stage(ctx: RunContext, saliency: StageDir, dataset_cfg: DatasetConfig, split: str,
                          threshold: float = 0.2, crf: str = "label", progress: bool = True,
                          workers: int = 1) -> StageDir:
    """0/255 pseudo-saliency masks of ``split`` from the maps in ``saliency`` (stage ``pseudo_saliency``)."""
    sd = ctx.store.stage("pseudo_saliency", {"saliency": saliency.key, "split": split, "threshold": float(threshold),
                                             "crf": crf}, name=saliency.path.name.rsplit("-", 1)[0])
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    with sd.computing(sharded=True) as todo:
        if todo:
            with timing.scope("pseudo_saliency"):
                counts = make_pseudo_saliency(dataset, saliency.file("png"), sd.file("png"), threshold, crf,
                                              progress=progress, workers=workers)
                sd.finish_images(len(dataset), counts)
    planning.record_images(ctx, sd, split, len(dataset), crf=crf, crfs=1 if crf else 0)
    return sd


def saliency_score_stage(ctx: RunContext, saliency: StageDir, dataset_cfg: DatasetConfig, split: str,
                         protocol: Literal["priors", "gt"], cams: StageDir | None = None,
                         salient_threshold: float = 0.5, progress: bool = True) -> ConfusionMatrix:
    """Confusion matrix of the Table 6 protocol (``wsss_lib.evaluation.saliency``), cached (stage ``saliency_scores``)."""
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    key = {"saliency": saliency.key, "split": split, "protocol": protocol,
           "cams": cams.key if cams is not None else "", "salient_threshold": float(salient_threshold)}
    return cached_confusion(ctx, "saliency_scores", key, dataset, lambda: score_saliency(
        dataset, saliency.file("png"), protocol, cams.file("npz") if cams else None, salient_threshold,
        progress=progress))


def hint_cams_stage(ctx: RunContext, run: PriorsRun, split: str, progress: bool = True) -> StageDir:
    """The priors run's CAMs of ``split``: its recorded CAM stage when that is the split, else inferred with the
    same TTA settings from its classifier."""
    stored = run.cams.config()["config"]
    if stored["split"] == split:
        return run.cams
    trained = load_classifier_stage(ctx, run.classifier)
    return infer_cams_stage(ctx, trained, split, from_dict(TTAConfig, stored["tta"], where=str(run.cams.path)),
                            progress=progress)


# ---------------------------------------------------------------------------------------------- notebook 07
def saliency_label(hints: str) -> str:
    """``"C2AM"`` for no hints, ``"C2AM-H (P-NOC+LS)"`` for hints from a priors run label."""
    return f"C2AM-H ({hints})" if hints else "C2AM"


@dataclass(frozen=True)
class PseudoSaliencyConfig:
    """Pseudo-saliency masks from C²AM(-H) maps (official: threshold 0.2, then the 2-label dense CRF)."""

    threshold: float = 0.2
    crf: str = "label"


@dataclass(frozen=True)
class SaliencyRun:
    """One saliency model of Table 6 with its maps and pseudo-masks on the evaluation split."""

    label: str
    hints: str
    seed: int
    """The chain's seed: the hints' priors run and every network trained here (C²AM(-H), the detector) use it."""
    c2am: TrainedSaliency = field(repr=False)
    detector: TrainedSaliency = field(repr=False)
    hint_cams: StageDir | None
    saliency: StageDir
    """C²AM(-H) saliency maps of the evaluation split."""
    pseudo: StageDir
    """Pseudo-saliency masks (threshold + CRF) of the evaluation split: Table 6's "P." column."""
    refined: StageDir
    """Detector saliency of the evaluation split: Table 6's "R." column."""


def run_saliency(ctx: RunContext, c2am: C2AMStageConfig, detector: DetectorStageConfig, hints: str = "", *,
                 eval_split: str = "train", seed: int = 0, tta: TTAConfig = TTAConfig(),
                 pseudo: PseudoSaliencyConfig = PseudoSaliencyConfig(), workers: int = 2,
                 progress: bool = True) -> SaliencyRun:
    """Train C²AM (``hints=""``) or C²AM-H with hints from the priors run labelled ``hints`` with the recipe ``c2am``,
    then everything down to the detector (recipe ``detector``, trained on the pseudo-saliency of
    ``c2am.train_split``) and its saliency of ``eval_split``; record the run.

    ``seed``: the chain's seed: the hints come from the priors run of that seed, and C²AM(-H) and the detector train
    with it (it replaces their ``train.seed``)."""
    train_split = c2am.train_split
    if detector.train_split != train_split:
        raise ValueError(f"the detector trains on the C2AM's pseudo-saliency of {train_split!r}, but its config says "
                         f"train_split {detector.train_split!r}")
    hint_cams = None
    if hints:
        hint_cams = hint_cams_stage(ctx, find_priors_run(ctx, hints, seed), train_split, progress=progress)
    label = saliency_label(hints)
    c2am_cfg = replace(c2am, train=replace(c2am.train, seed=seed), hints_cams=hint_cams.key if hint_cams is not None
                       else "", hints_label=hints)
    trained_c2am = train_c2am(ctx, c2am_cfg, hint_cams, progress=progress)
    per_split = {}
    for split in dict.fromkeys([train_split, eval_split]):
        maps = infer_saliency_stage(ctx, trained_c2am, split, tta.scales, tta.flip, progress=progress)
        per_split[split] = (maps, pseudo_saliency_stage(ctx, maps, c2am.dataset, split, pseudo.threshold, pseudo.crf,
                                                        progress=progress, workers=workers))
    train_pseudo = per_split[train_split][1]
    trained_detector = train_detector(ctx, replace(detector, train=replace(detector.train, seed=seed),
                                                   pseudo_key=train_pseudo.key, pseudo_label=label),
                                      train_pseudo, progress=progress)
    refined = infer_saliency_stage(ctx, trained_detector, eval_split, tta.scales, tta.flip, progress=progress)
    saliency, pseudo_masks = per_split[eval_split]
    write_record(ctx, "saliency", f"{slug(label)}-seed{seed}", {
        "label": label, "hints": hints, "seed": int(seed), "eval_split": eval_split,
        "c2am": relative(ctx, trained_c2am.stage), "detector": relative(ctx, trained_detector.stage),
        "hint_cams": relative(ctx, hint_cams), "saliency": relative(ctx, saliency), "pseudo": relative(ctx, pseudo_masks),
        "refined": relative(ctx, refined)})
    return SaliencyRun(label, hints, seed, trained_c2am, trained_detector, hint_cams, saliency, pseudo_masks, refined)


def _stage(ctx: RunContext, rel: str) -> StageDir:
    return stage_from_record(ctx, rel, "notebook 07")


def load_saliency_runs(ctx: RunContext, labels: list[str] | None = None,
                       seeds: Sequence[int] | None = None) -> list[SaliencyRun]:
    """The recorded saliency runs of this profile (optionally only ``labels``, in that order, and only ``seeds``),
    ordered by label then seed."""
    records = read_records(ctx, "saliency")
    if seeds is not None:
        records = [r for r in records if int(r.get("seed", 0)) in set(seeds)]
    if labels is not None:
        records = [r for r in records if r["label"] in labels]
    order = {label: i for i, label in enumerate(labels or [])}
    records = sorted(records, key=lambda r: (order.get(r["label"], len(order)), r["label"], int(r.get("seed", 0))))
    runs = []
    for r in records:
        c2am_sd, det_sd = _stage(ctx, r["c2am"]), _stage(ctx, r["detector"])
        c2am = _saliency(load_trained(ctx, c2am_sd, from_dict(C2AMStageConfig, c2am_sd.config()["config"])))
        detector = _saliency(load_trained(ctx, det_sd, from_dict(DetectorStageConfig, det_sd.config()["config"])))
        runs.append(SaliencyRun(r["label"], r["hints"], int(r.get("seed", 0)), c2am, detector,
                                _stage(ctx, r["hint_cams"]) if r["hint_cams"] else None,
                                _stage(ctx, r["saliency"]), _stage(ctx, r["pseudo"]), _stage(ctx, r["refined"])))
    return runs
