"""One "priors run" of notebooks 01-05: train a method, infer its TTA CAMs, sweep the threshold, record it.

A priors notebook's parameters are the stage configs it runs, in their nested shape: ``classifier``
(:class:`~wsss_lib.stages.classifier.ClassifierStageConfig`: backbone, augment, train, optim, splits, the method's
``method_params``), ``ordinary`` (:class:`OrdinaryConfig`, the ordinary classifier of OC-CSE / P-OC / P-NOC) and
``tta`` (:class:`~wsss_lib.inference.tta.TTAConfig`); :mod:`wsss_lib.stages.parameters` builds them. ``run_priors``
chains the stages of :mod:`wsss_lib.stages.classifier` and writes a small JSON record under
``<work_dir>/runs/priors/`` naming the stages it used; notebook 06 gathers the records with
:func:`load_priors_runs` instead of guessing which runs exist. A record is overwritten by the next run of
the same label and seed, so it always points to the latest configuration a notebook ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from wsss_lib.artifacts import StageDir
from wsss_lib.config import merge
from wsss_lib.evaluation.pathology import error_breakdown, region_scores
from wsss_lib.evaluation.sweep import SweepResult
from wsss_lib.inference.tta import TTAConfig
from wsss_lib.stages.classifier import (
    ClassifierStageConfig,
    TrainedClassifier,
    infer_cams_stage,
    load_sweep,
    regions_stage_dir,
    sweep_stage_dir,
    train_classifier,
    with_ordinary,
)
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.records import read_records, relative, stage_from_record, write_record

__all__ = ["OrdinaryConfig", "ordinary_config", "method_classifier", "PriorsRun", "method_label", "recipe_note",
           "paper_label", "run_priors", "run_priors_grid", "record_run", "find_priors_run", "load_priors_runs", "runs_table", "as_list"]

METHOD_LABELS = {"cam": "CAM", "puzzle": "P", "occse": "OC-CSE", "poc": "P-OC", "pnoc": "P-NOC", "acr": "ACR", "amn": "AMN",
                 "rib": "RIB"}
"""Display names used in the paper's tables (P = Puzzle-CAM)."""


HELDOUT_MIOU = "TTA mIoU, held-out threshold (%)"
"""The summary column of the evaluation split's mIoU at the threshold chosen on the held-out split."""
HELDOUT_THRESHOLD = "threshold (held-out)"


def threshold_index(sweep: SweepResult, threshold: float) -> int:
    """The index of ``threshold`` in ``sweep``'s grid (the held-out threshold must be one of the evaluated ones)."""
    found = np.flatnonzero(np.isclose(np.asarray(sweep.thresholds, dtype=float), threshold))
    if not found.size:
        raise ValueError(f"threshold {threshold} is not on the sweep's grid {list(sweep.thresholds)}")
    return int(found[0])


def variant_label(name: str, label_smoothing: float) -> str:
    """The label of a named variant of a method (``variants`` of notebooks 01-05, e.g. ``"P (alpha 0)"``), with
    ``+LS`` when it trains with label smoothing, like :func:`method_label`."""
    if not name or "/" in name:
        raise ValueError(f"a variant needs a plain, non-empty name, got {name!r}")
    return f"{name}+LS" if label_smoothing > 0 else name


def method_label(method: str, label_smoothing: float, note: str = "") -> str:
    """``"P-NOC+LS"`` style label of a method and its label smoothing, with the recipe ``note`` in parentheses where
    the run departs from the paper's recipe (:func:`recipe_note`: ``"P-NOC+LS (OC lr 0.1x)"``)."""
    label = METHOD_LABELS.get(method, method) + ("+LS" if label_smoothing else "")
    return f"{label} ({note})" if note else label


def recipe_note(method_config: Any) -> str:
    """What a run's label says of a departure from the paper's recipe: the P-NOC family's ordinary-classifier learning
    rate when it is not the official 1x (``"OC lr 0.1x"``), so that every table carries it; empty otherwise."""
    adversarial = getattr(method_config, "adversarial", None)
    if adversarial is not None and float(adversarial.lr_multiplier) != 1.0:
        return f"OC lr {adversarial.lr_multiplier:g}x"
    return ""


_NOTE = re.compile(r" \(OC lr [0-9.e+-]+x\)$")


def paper_label(label: str) -> str:
    """The paper's name of one of our labels: the label without its :func:`recipe_note` (``"P-NOC+LS (OC lr 0.1x)"``
    -> ``"P-NOC+LS"``); the literature is looked up by it."""
    return _NOTE.sub("", label)


def as_list(value: Any) -> list:
    """A notebook parameter that may be one value or a list of values (``label_smoothing``, ``seeds``)."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclass(frozen=True)
class OrdinaryConfig:
    """The ordinary classifier (OC) of OC-CSE, P-OC and P-NOC: the notebook's classifier recipe as a vanilla CAM
    classifier with RandAugment and label smoothing (official), trained once with its own seed."""

    label_smoothing: float = 0.1
    seed: int = 0
    randaugment: bool = True


def ordinary_config(classifier: ClassifierStageConfig, ordinary: OrdinaryConfig) -> ClassifierStageConfig:
    """The stage config of the ordinary classifier: ``classifier``'s recipe, method ``cam`` (no ``method_params``
    but its label smoothing), RandAugment as ``ordinary`` says, seed ``ordinary.seed``."""
    return replace(classifier, method="cam", method_params={"label_smoothing": ordinary.label_smoothing},
                   augment=replace(classifier.augment, randaugment=ordinary.randaugment),
                   train=replace(classifier.train, seed=ordinary.seed), ordinary_key="")


def method_classifier(classifier: ClassifierStageConfig, method: str, method_params: Mapping[str, Any] | None = None,
                      seed: int | None = None) -> ClassifierStageConfig:
    """``classifier`` training ``method`` with ``method_params`` (checked by the method's config, once, here)."""
    train = classifier.train if seed is None else replace(classifier.train, seed=seed)
    cfg = replace(classifier, method=method, method_params=dict(method_params or {}), train=train)
    _ = cfg.method_config  # unknown keys fail here, naming the method and its fields
    return cfg


@dataclass(frozen=True)
class PriorsRun:
    """A finished priors run: the classifier, its TTA CAMs and their threshold sweep."""

    label: str
    method: str
    label_smoothing: float
    seed: int
    notebook: str
    classifier: StageDir
    cams: StageDir
    sweep_dir: StageDir
    history: pd.DataFrame = field(repr=False)
    sweep: SweepResult = field(repr=False)
    regions: np.ndarray | None = field(default=None, repr=False)
    """Region counts at the oracle threshold (``wsss_lib.evaluation.pathology``), where the data annotates regions."""
    heldout: SweepResult | None = field(default=None, repr=False)
    """The threshold sweep of the same classifier's CAMs of a held-out split (``heldout_split``, e.g. ``val``): its
    best threshold, applied to the evaluation split, is the held-out (non-oracle) number."""
    heldout_split: str = ""

    @property
    def split(self) -> str:
        """The split its CAMs (and every number of it but the held-out threshold) are of."""
        return str(self.cams.config()["config"]["split"])

    @property
    def heldout_threshold(self) -> float:
        """The background threshold chosen on the held-out split (NaN without one)."""
        return self.heldout.best_threshold if self.heldout is not None else float("nan")

    @property
    def heldout_miou(self) -> float:
        """The evaluation split's mIoU at :attr:`heldout_threshold` (NaN without a held-out sweep)."""
        if self.heldout is None:
            return float("nan")
        return self.sweep.scores(threshold_index(self.sweep, self.heldout_threshold)).miou

    def pathology(self) -> dict[str, float]:
        """Percentages at the oracle threshold: ``missed``, ``spill`` and ``confused`` (of the ground-truth
        foreground area), and where the data annotates regions ``part recall``, ``far-body recall``,
        ``context FP`` and its reference ``plain-bg FP``; see :mod:`wsss_lib.evaluation.pathology`."""
        errors = error_breakdown(self.sweep.confusion[self.sweep.best_index].counts)
        out = {"missed (%)": 100 * errors["missed"], "spill (%)": 100 * errors["spill"],
               "confused (%)": 100 * errors["confused"]}
        if self.regions is not None:
            regions = region_scores(self.regions)
            out.update({"part recall (%)": 100 * regions["part_recall"],
                        "far-body recall (%)": 100 * regions["far_body_recall"],
                        "context FP (%)": 100 * regions["context_fp"],
                        "plain-bg FP (%)": 100 * regions["plain_bg_fp"]})
        return out

    def summary(self) -> dict[str, Any]:
        best = self.sweep.best
        heldout = {}
        if self.heldout is not None:  # beside the oracle: the threshold chosen on the held-out split
            heldout = {HELDOUT_MIOU: 100 * self.heldout_miou, HELDOUT_THRESHOLD: self.heldout_threshold}
        return {"method": self.label, "seed": self.seed, "TTA mIoU (%)": 100 * best.miou,
                "best threshold (oracle)": self.sweep.best_threshold, **heldout, "FPR (%)": 100 * best.mean_fp,
                "FNR (%)": 100 * best.mean_fn, **self.pathology(), "images": self.sweep.num_images}

    @property
    def train_seconds(self) -> float:
        """The classifier's training wall time recorded in its stage's ``DONE.json`` (NaN where none is: untimed
        epochs, or a run built by hand). Wall time: it includes whatever else the machine ran meanwhile. Stages
        finished before 2ceb62c recorded the time of their last session only (a resumed run's earlier sessions
        are missing)."""
        if not self.classifier.finished:
            return float("nan")
        seconds = self.classifier.summary().get("seconds")
        return float(seconds) if seconds is not None else float("nan")


def run_priors(ctx: RunContext, classifier: ClassifierStageConfig, method: str, *, tta: TTAConfig = TTAConfig(),
               ordinary: OrdinaryConfig = OrdinaryConfig(), label_smoothing: float = 0.0, seed: int = 0,
               method_params: Mapping[str, Any] | None = None, notebook: str = "",
               trained_ordinary: TrainedClassifier | None = None, progress: bool = True, variant: str = "",
               heldout_split: str = "") -> PriorsRun:
    """Train ``method`` (resumed or loaded when its stage exists), infer TTA CAMs of the evaluation split,
    sweep the background threshold, and record the run for notebook 06.

    ``heldout_split`` (e.g. ``"val"``): also infer and sweep that split's CAMs; its best threshold, applied to the
    evaluation split, is the run's held-out number beside the oracle one (:attr:`PriorsRun.heldout_miou`).

    ``variant``: the name of an explanatory variant (e.g. ``"P (alpha 0)"`` with ``method_params`` setting
    Puzzle's α to 0): recorded under that label instead of the method's (:func:`variant_label`).

    ``classifier``: the notebook's recipe (its ``method_params`` are the base that ``method_params``, a variant's,
    is merged over: :func:`wsss_lib.config.merge`);
    ``label_smoothing`` overrides the method config's field of that name; methods trained against the ordinary
    classifier train (or load) it from :func:`ordinary_config` unless ``trained_ordinary`` is given.
    """
    notebook = notebook or ctx.notebook
    params = {**merge(classifier.method_params, dict(method_params or {})), "label_smoothing": float(label_smoothing)}
    cfg = method_classifier(classifier, method, params, seed=seed)
    if cfg.needs_ordinary:
        trained_ordinary = trained_ordinary or train_classifier(ctx, ordinary_config(classifier, ordinary),
                                                                progress=progress)
        cfg = with_ordinary(cfg, trained_ordinary)
    trained = train_classifier(ctx, cfg, progress=progress, ordinary=trained_ordinary)
    cams = infer_cams_stage(ctx, trained, cfg.eval_split, tta, progress=progress)
    sweep_dir = sweep_stage_dir(ctx, cams, cfg.dataset, cfg.eval_split, progress=progress)
    regions = regions_stage_dir(ctx, cams, cfg.dataset, cfg.eval_split, sweep_dir, progress=progress)
    heldout = None
    if heldout_split and heldout_split != cfg.eval_split:
        heldout_cams = infer_cams_stage(ctx, trained, heldout_split, tta, progress=progress)
        heldout = sweep_stage_dir(ctx, heldout_cams, cfg.dataset, heldout_split, progress=progress)
    note = recipe_note(cfg.method_config)
    label = (variant_label(variant, label_smoothing) + (f" ({note})" if note else "") if variant
             else method_label(method, label_smoothing, note))
    return record_run(ctx, label, method, label_smoothing, seed, notebook, trained.stage, cams, sweep_dir, regions,
                      heldout=heldout)


def run_priors_grid(ctx: RunContext, classifier: ClassifierStageConfig, method: str, *, label_smoothing: Any = 0.0,
                    seeds: Any = 0, variants: Mapping[str, Mapping[str, Any]] | None = None, **kwargs: Any
                    ) -> list[PriorsRun]:
    """Every run of a priors notebook (01-05): :func:`run_priors` of ``method`` for each label smoothing and seed
    (one value or a list each), then each named explanatory variant (``{"P (alpha 0)": {method_params}}``) for each
    of them; ``kwargs`` go to every call (``tta``, ``ordinary``, ``notebook``, ``heldout_split``, ...)."""
    grid = [(ls, seed) for ls in as_list(label_smoothing) for seed in as_list(seeds)]
    runs = [run_priors(ctx, classifier, method, label_smoothing=ls, seed=seed, **kwargs) for ls, seed in grid]
    runs += [run_priors(ctx, classifier, method, label_smoothing=ls, seed=seed, variant=name, method_params=params,
                        **kwargs)
             for name, params in (variants or {}).items() for ls, seed in grid]
    return runs


def record_run(ctx: RunContext, label: str, method: str, label_smoothing: float, seed: int, notebook: str,
               classifier: StageDir, cams: StageDir, sweep_dir: StageDir, regions_dir: StageDir | None = None,
               heldout: StageDir | None = None) -> PriorsRun:
    """Write the record ``runs/priors/<label>-seed<seed>.json`` of a finished run and return it loaded.
    ``classifier`` is the stage of the trained network the CAMs came from (its ``history.csv`` is read);
    ``regions_dir`` the run's ``regions`` stage (:func:`regions_stage_dir`), where the data has one; ``heldout`` the
    sweep of a held-out split's CAMs (``run_priors(heldout_split=...)``)."""
    record = {"label": label, "method": method, "label_smoothing": float(label_smoothing), "seed": int(seed),
              "notebook": notebook, "classifier": relative(ctx, classifier), "cams": relative(ctx, cams),
              "sweep": relative(ctx, sweep_dir), "regions": relative(ctx, regions_dir) if regions_dir else "",
              "heldout_sweep": relative(ctx, heldout) if heldout else "",
              "heldout_split": heldout.config()["config"]["split"] if heldout else ""}
    write_record(ctx, "priors", f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-seed{seed}", record)
    return _load_record(ctx, record)


def find_priors_run(ctx: RunContext, label: str, seed: int = 0) -> PriorsRun:
    """The recorded priors run ``label`` (e.g. ``"CAM"``) of ``seed``; a clear error names the notebooks to run."""
    found = [r for r in load_priors_runs(ctx, [label]) if r.seed == seed]
    if not found:
        raise FileNotFoundError(f"no priors run {label!r} (seed {seed}) is recorded under {ctx.work_dir / 'runs' / 'priors'}; "
                                "run the notebook that trains it (01-05) first")
    return found[0]


def _load_record(ctx: RunContext, record: Mapping[str, Any]) -> PriorsRun:
    classifier, cams, sweep_dir = (stage_from_record(ctx, record[k], "the priors notebook that produced it")
                                   for k in ("classifier", "cams", "sweep"))
    regions = heldout = None
    if record.get("regions"):
        regions_dir = stage_from_record(ctx, record["regions"], "the priors notebook that produced it")
        regions = regions_dir.load_npz("region_counts.npz", ("counts",))["counts"]
    if record.get("heldout_sweep"):
        heldout = load_sweep(stage_from_record(ctx, record["heldout_sweep"], "the priors notebook that produced it"))
    return PriorsRun(label=record["label"], method=record["method"], label_smoothing=record["label_smoothing"],
                     seed=record["seed"], notebook=record.get("notebook", ""), classifier=classifier, cams=cams,
                     sweep_dir=sweep_dir, history=classifier.read_frame("history.csv"), sweep=load_sweep(sweep_dir),
                     regions=regions, heldout=heldout, heldout_split=record.get("heldout_split", ""))


def load_priors_runs(ctx: RunContext, labels: Sequence[str] | None = None, split: str | None = None,
                     seeds: Sequence[int] | None = None) -> list[PriorsRun]:
    """Every recorded priors run of this profile (optionally only ``labels``, those whose CAMs are of ``split`` and
    those of ``seeds``), ordered by label then seed."""
    records = read_records(ctx, "priors")
    if labels is not None:
        records = [r for r in records if r["label"] in labels]
    if seeds is not None:
        records = [r for r in records if int(r["seed"]) in set(seeds)]
    runs = [_load_record(ctx, r) for r in records]
    if split is not None:
        runs = [r for r in runs if r.split == split]
    order = {label: i for i, label in enumerate(labels or [])}
    return sorted(runs, key=lambda r: (order.get(r.label, len(order)), r.label, r.seed))


def runs_table(runs: Sequence[PriorsRun]) -> pd.DataFrame:
    """One row per run: its TTA mIoU at the oracle threshold, FPR, FNR, the pathology columns, the classifier's
    training wall time and where it came from."""
    return pd.DataFrame([{**r.summary(), "train (s)": r.train_seconds, "notebook": r.notebook,
                          "classifier stage": r.classifier.path.name} for r in runs])

