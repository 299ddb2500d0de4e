"""Stages of the comparator methods (notebook 11): AMN and RIB, which are not CAM classifiers trained on image labels,
and ACR, which is (``method="acr"`` of the classifier stage). Each run ends like a priors run of notebooks 01-05:
TTA CAMs of the evaluation split in the common CAM format, the same threshold sweep, and a record under
``<work_dir>/runs/priors/``, so every method is compared with the same data, inference, thresholds and class groups.

- **AMN**: IRN-style labels (conventional affinity-label rule, official fg 0.30 / bg 0.05, label CRF) from the CAMs
  of a recorded priors run (``source``, default the vanilla CAM) on AMN's training split; the label-conditioned
  network trained on them (``train_amn``); its CAMs on the evaluation split (``amn_cams_stage``), normalised outside
  the background of the same rule's labels of that split.
- **RIB**: the per-image fine-tuning of the source run's trained classifier (``rib_cams_stage``), drawing the
  disjoint-class batches from the classifier's training split.
- **ACR**: ``run_priors(ctx, acr, "acr", ...)`` of ``wsss_lib.stages.priors`` (``acr``: notebook 11's ``acr``
  parameter, ACR's own recipe, merged over the priors ``classifier``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from wsss_lib.artifacts import StageDir
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.saliency import AffinityLabelsDataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.inference.amn import infer_amn_cams
from wsss_lib.inference.rib import infer_rib_cams
from wsss_lib.inference.tta import TTAConfig
from wsss_lib.methods.amn import AMNLossConfig, AMNMethod
from wsss_lib.methods.registry import AMNMethodConfig, build_method
from wsss_lib.methods.rib import RIBConfig
from wsss_lib.models.amn import AMNNetConfig
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.refinement.affinity_labels import AffinityLabelConfig
from wsss_lib.stages import planning
from wsss_lib.stages.classifier import (
    ClassifierStageConfig,
    TrainedClassifier,
    infer_cams_stage,
    load_classifier_stage,
    regions_stage_dir,
    sweep_stage_dir,
)
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.inference import inference_stage
from wsss_lib.stages.priors import PriorsRun, find_priors_run, record_run
from wsss_lib.stages.records import slug
from wsss_lib.stages.refinement import affinity_labels_stage
from wsss_lib.stages.training import StageConfig, Trained, train_stage
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, seed_everything

__all__ = ["AMNStageConfig", "TrainedAMN", "train_amn", "amn_cams_stage", "rib_cams_stage", "AMN_LABELS",
           "amn_stage_config", "run_amn", "run_rib", "run_comparators"]


@dataclass(frozen=True)
class AMNStageConfig(StageConfig):
    """Everything that determines a trained AMN network (its hash is the stage key); it learns from the IR-label
    stage ``labels_key`` names."""

    stage: ClassVar[str] = "amn"

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resnet50", output_stride=16,
                                                                            frozen_bn=True, out_indices=(-1,)))
    network: AMNNetConfig = field(default_factory=AMNNetConfig)
    loss: AMNLossConfig = field(default_factory=AMNLossConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        crop_size=512, resize_mode="scale", resize_scale=(0.5, 1.5), color_jitter=None))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, batch_size=16, eval_every=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(algorithm="adam", lr=5e-6, weight_decay=1e-4,
                                                                   poly_power=0.0))
    train_split: str = "train_aug"
    labels_key: str = ""
    """Key of the IR-label stage (of ``train_split``) the network learns from."""
    labels_label: str = ""

    @property
    def run_name(self) -> str:
        return f"amn-{slug(self.labels_label) or 'labels'}-{self.backbone.name}-seed{self.train.seed}"

    def check(self, labels: StageDir) -> None:
        if labels.key != self.labels_key:
            raise ValueError(f"AMN configured with label stage {self.labels_key} but given {labels.key}")

    def build(self, ctx: RunContext, weights: str | None, labels: StageDir | None = None) -> AMNMethod:
        num_classes = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir, progress=False).num_classes
        backbone = replace(self.backbone, weights=weights) if weights else self.backbone
        seed_everything(self.train.seed)  # the new layers' initialisation is part of what the stage key names
        return build_method("amn", AMNMethodConfig(self.network, self.loss), backbone, num_classes - 1)

    def train_set(self, ctx: RunContext, labels: StageDir, method: AMNMethod) -> Any:
        base = open_dataset(self.dataset, self.train_split, work_dir=ctx.work_dir)
        return AffinityLabelsDataset(base, labels.file("png"), build_train_transform(self.augment, *method.normalization))


TrainedAMN = Trained
"""A trained AMN: ``Trained[AMNStageConfig, AMNMethod]``."""


def train_amn(ctx: RunContext, cfg: AMNStageConfig, labels: StageDir, progress: bool = True) -> Trained:
    """Train (resume, or load) AMN on the IR labels in ``labels`` (an ``affinity_labels`` stage of ``train_split``)."""
    return train_stage(ctx, cfg, labels, progress=progress)


def amn_cams_stage(ctx: RunContext, trained: TrainedAMN, ir_labels: StageDir, split: str, tta: TTAConfig = TTAConfig(),
                   progress: bool = True) -> StageDir:
    """AMN's CAM files of ``split`` (stage ``cams``), normalised outside the background of ``ir_labels`` (same split)."""
    key = {"amn": trained.stage.key, "ir_labels": ir_labels.key, "split": split, "tta": tta}
    return inference_stage(ctx, "cams", key, f"{trained.config.run_name}-{split}", trained.method, trained.config.train,
                           trained.config.dataset, split,
                           lambda model, dataset, sd, mean, std, **kw: infer_amn_cams(
                               model, dataset, ir_labels.file("png"), sd.file("npz"), mean, std, tta, **kw),
                           progress=progress, recipe={"backbone": trained.config.backbone.name, "scales": tta.scales,
                                                      "flip": tta.flip})


def rib_cams_stage(ctx: RunContext, trained: TrainedClassifier, split: str, cfg: RIBConfig, tta: TTAConfig = TTAConfig(),
                   seed: int = 0, progress: bool = True) -> StageDir:
    """RIB CAM files of ``split`` (stage ``cams``) from the trained classifier ``trained``; the disjoint-class batches
    come from the classifier's training split, augmented with ``cfg``'s crop and resize."""
    ccfg = trained.config
    sd = ctx.store.stage("cams", {"rib": cfg, "classifier": trained.stage.key, "split": split, "tta": tta, "seed": seed},
                         name=f"rib-{ccfg.run_name}-{split}")
    with sd.computing(sharded=True) as todo:
        if todo:
            mean, std = trained.method.normalization
            augment = AugmentConfig(crop_size=cfg.crop_size, resize_mode="long_side",
                                    resize_long_side=cfg.resize_long_side, color_jitter=None)
            pool = open_dataset(ccfg.dataset, ccfg.train_split, work_dir=ctx.work_dir, progress=progress,
                                transform=build_train_transform(augment, mean, std))
            dataset = open_dataset(ccfg.dataset, split, work_dir=ctx.work_dir, progress=progress)
            from wsss_lib.train.precision import resolve_device

            model = trained.method.cam_model()
            counts = infer_rib_cams(model, dataset, pool, sd.file("npz"), mean, std, cfg, tta, seed=seed,
                                    device=resolve_device(ccfg.train.device), progress=progress)
            model.cpu()
            sd.finish_images(len(dataset), counts)
    planning.record_images(ctx, sd, split, sd.summary().get("images", 0), backbone=ccfg.backbone.name,
                           scales=tta.scales, flip=tta.flip, rib_steps=cfg.steps, rib_batch=cfg.batch_size,
                           crop=cfg.crop_size)
    return sd


AMN_LABELS = AffinityLabelConfig(mode="conventional", fg_threshold=0.30, bg_threshold=0.05, crf="label")
"""AMN's IR labels (official: IRN's conventional rule, fg 0.30 / bg 0.05, label CRF); notebook 11's ``amn_labels``
parameter changes fields of it."""


def amn_stage_config(amn: AMNStageConfig, labels: StageDir, labels_label: str, seed: int) -> AMNStageConfig:
    """``amn`` (the notebook's recipe) bound to its IR-label stage and seed."""
    return replace(amn, train=replace(amn.train, seed=seed), labels_key=labels.key, labels_label=labels_label)


def run_amn(ctx: RunContext, classifier: ClassifierStageConfig, amn: AMNStageConfig, *, source: str = "CAM",
            labels: AffinityLabelConfig = AMN_LABELS, tta: TTAConfig = TTAConfig(), seed: int = 0, workers: int = 2,
            notebook: str = "", heldout_split: str = "", progress: bool = True) -> PriorsRun:
    """IR labels from the CAMs of the recorded priors run ``source`` -> AMN (recipe ``amn``) -> its CAMs of the
    evaluation split of ``classifier`` (the priors recipe: dataset, evaluation split) -> sweep -> record ``AMN``;
    with ``heldout_split``, the same CAMs and sweep of that split too (the held-out threshold)."""
    found = find_priors_run(ctx, source, seed)
    trained_source = load_classifier_stage(ctx, found.classifier)
    eval_split, data = classifier.eval_split, classifier.dataset
    split_cams = {eval_split: found.cams}
    for split in {amn.train_split, eval_split, heldout_split} - set(split_cams) - {""}:
        split_cams[split] = infer_cams_stage(ctx, trained_source, split, tta, progress=progress)
    ir_labels = {split: affinity_labels_stage(ctx, cams, data, split, labels, progress=progress, workers=workers)
                 for split, cams in split_cams.items()}
    trained = train_amn(ctx, amn_stage_config(amn, ir_labels[amn.train_split], source, seed),
                        ir_labels[amn.train_split], progress=progress)
    cams = amn_cams_stage(ctx, trained, ir_labels[eval_split], eval_split, tta, progress=progress)
    sweep = sweep_stage_dir(ctx, cams, data, eval_split, progress=progress)
    regions = regions_stage_dir(ctx, cams, data, eval_split, sweep, progress=progress)
    heldout = None
    if heldout_split and heldout_split != eval_split:
        heldout_cams = amn_cams_stage(ctx, trained, ir_labels[heldout_split], heldout_split, tta, progress=progress)
        heldout = sweep_stage_dir(ctx, heldout_cams, data, heldout_split, progress=progress)
    return record_run(ctx, "AMN", "amn", 0.0, seed, notebook, trained.stage, cams, sweep, regions, heldout=heldout)


def run_rib(ctx: RunContext, classifier: ClassifierStageConfig, rib: RIBConfig, *, source: str = "CAM",
            tta: TTAConfig = TTAConfig(), seed: int = 0, notebook: str = "", heldout_split: str = "",
            progress: bool = True) -> PriorsRun:
    """RIB (``rib``) on the classifier of the recorded priors run ``source`` -> CAMs of ``classifier``'s evaluation
    split -> sweep -> record ``RIB``; with ``heldout_split``, that split's CAMs and sweep too."""
    found = find_priors_run(ctx, source, seed)
    trained_source = load_classifier_stage(ctx, found.classifier)
    eval_split, data = classifier.eval_split, classifier.dataset
    cams = rib_cams_stage(ctx, trained_source, eval_split, rib, tta, seed=seed, progress=progress)
    sweep = sweep_stage_dir(ctx, cams, data, eval_split, progress=progress)
    regions = regions_stage_dir(ctx, cams, data, eval_split, sweep, progress=progress)
    heldout = None
    if heldout_split and heldout_split != eval_split:
        heldout_cams = rib_cams_stage(ctx, trained_source, heldout_split, rib, tta, seed=seed, progress=progress)
        heldout = sweep_stage_dir(ctx, heldout_cams, data, heldout_split, progress=progress)
    return record_run(ctx, "RIB", "rib", 0.0, seed, notebook, found.classifier, cams, sweep, regions, heldout=heldout)


def run_comparators(ctx: RunContext, classifier: ClassifierStageConfig, methods: list[str], seeds: list[int], *,
                    acr: ClassifierStageConfig | None = None, amn: AMNStageConfig = AMNStageConfig(),
                    amn_labels: AffinityLabelConfig = AMN_LABELS, amn_source: str = "CAM", rib: RIBConfig = RIBConfig(),
                    rib_source: str = "CAM", tta: TTAConfig = TTAConfig(), workers: int = 2, notebook: str = "",
                    heldout_split: str = "", progress: bool = True) -> list[PriorsRun]:
    """Run (or load) the comparators named in ``methods`` (``"AMN"``, ``"RIB"``, ``"ACR"``) for each seed.

    ``classifier``: the priors recipe (dataset, evaluation split); ``acr``: ACR's classifier recipe (notebook 11's
    ``acr`` parameter merged over ``classifier``; its ``method_params`` are ACR's)."""
    from wsss_lib.stages.priors import run_priors

    unknown = sorted(set(methods) - {"AMN", "RIB", "ACR"})
    if unknown:
        raise KeyError(f"unknown comparator(s) {unknown}; choose among 'AMN', 'RIB', 'ACR'")
    runs = []
    for seed in seeds:
        if "ACR" in methods:
            # without an acr config: the priors recipe without its method's params, as build_parameter makes it
            runs.append(run_priors(ctx, acr or replace(classifier, method_params={}), "acr", tta=tta, seed=seed,
                                   notebook=notebook, heldout_split=heldout_split, progress=progress))
        if "AMN" in methods:
            runs.append(run_amn(ctx, classifier, amn, source=amn_source, labels=amn_labels, tta=tta, seed=seed,
                                workers=workers, notebook=notebook, heldout_split=heldout_split, progress=progress))
        if "RIB" in methods:
            runs.append(run_rib(ctx, classifier, rib, source=rib_source, tta=tta, seed=seed, notebook=notebook,
                                heldout_split=heldout_split, progress=progress))
    return runs
