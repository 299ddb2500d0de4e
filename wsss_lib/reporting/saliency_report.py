"""Notebook 07's tables and figures: Table 6 (C²AM / C²AM-H ablation), Figures 4, 7 and 8, and the per-class
effect of saliency on the priors.

``table6`` scores every saliency run (:class:`wsss_lib.stages.saliency.SaliencyRun`) against every requested
priors run and the ground-truth-prior protocol; the literature values are a separate frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wsss_lib.data.saliency import hint_map
from wsss_lib.data.stats import group_statistics
from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.evaluation.seeds import summarize
from wsss_lib.formats.saliency_io import load_saliency, saliency_path
from wsss_lib.reporting.figures import colorize_mask
from wsss_lib.reporting.literature import load_literature
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.priors import PriorsRun
from wsss_lib.stages.saliency import SaliencyRun, saliency_score_stage

__all__ = ["SaliencyScores", "table6", "literature_table6", "class_effect_table", "context_effect_table",
           "hints_figure", "detector_figure", "c2am_comparison_figure"]

GT = "GT"


@dataclass(frozen=True)
class SaliencyScores:
    """Table 6 as measured: ``table`` (mean and SD over seeds per saliency and priors), ``per_seed`` (one row per
    seed) and the confusion matrices behind them, ``confusion[(saliency, priors, column, seed)]`` with ``column`` in
    ``{"P.", "R."}`` and ``priors`` a priors label or ``"GT"``."""

    table: pd.DataFrame
    per_seed: pd.DataFrame
    confusion: dict[tuple[str, str, str, int], ConfusionMatrix]

    def by_seed(self) -> dict[str, dict[int, float]]:
        """``"<saliency> / <priors> / <P. or R.>"`` -> seed -> mIoU (%): the rows the paper's claims compare
        (:func:`wsss_lib.evaluation.seeds.claims_frame`)."""
        out: dict[str, dict[int, float]] = {}
        for row in self.per_seed.to_dict("records"):
            for column in ("P.", "R."):
                out.setdefault(f"{row['saliency']} / {row['priors']} / {column}", {})[int(row["seed"])] = row[column]
        return out


def table6(ctx: RunContext, runs: Sequence[SaliencyRun], priors: Sequence[PriorsRun], dataset_cfg, split: str,
           salient_threshold: float = 0.5, progress: bool = True) -> SaliencyScores:
    """One row per (saliency run, priors): mIoU (%) of the pseudo-segmentation with the pseudo-saliency masks
    ("P.") and with the detector's saliency ("R."), mean and SD over seeds (a saliency run of seed *s* is combined
    with the priors runs of seed *s*); ``priors alone`` is the priors' own mIoU at their oracle threshold (the gain
    saliency brings is the difference); ``GT`` rows use the ground-truth-prior protocol."""
    rows, confusion = [], {}
    for run in runs:
        backbone = run.c2am.config.backbone.name
        for prior in [*[p for p in priors if p.seed == run.seed], None]:
            name = prior.label if prior is not None else GT
            row = {"method": "C2AM-H" if run.hints else "C2AM", "saliency": run.label, "saliency backbone": backbone,
                   "hints": run.hints or "-", "priors": name, "seed": run.seed,
                   "priors alone": 100 * prior.sweep.best.miou if prior is not None else np.nan}
            for column, maps in (("P.", run.pseudo), ("R.", run.refined)):
                cm = saliency_score_stage(ctx, maps, dataset_cfg, split, "gt" if prior is None else "priors",
                                          prior.cams if prior is not None else None, salient_threshold,
                                          progress=progress)
                confusion[(run.label, name, column, run.seed)] = cm
                row[column] = 100 * cm.scores().miou
            rows.append(row)
    per_seed = pd.DataFrame(rows)
    table = summarize(per_seed, ["method", "saliency", "saliency backbone", "hints", "priors"],
                      ["priors alone", "P.", "R."]) if rows else per_seed
    return SaliencyScores(table, per_seed, confusion)


def literature_table6() -> pd.DataFrame:
    """Table 6 as printed in the P-NOC paper (VOC 2012 train, ResNet-50 / ResNeSt backbones)."""
    return load_literature("pnoc_table6_saliency")


def class_effect_table(scores: SaliencyScores, run_label: str, prior: PriorsRun) -> pd.DataFrame:
    """Per-class IoU (%) of ``prior`` alone (oracle threshold) and with the saliency of ``run_label`` of the same
    seed (P., R.)."""
    frame = pd.DataFrame({"class": prior.sweep.class_names, f"{prior.label} alone": 100 * prior.sweep.best.iou})
    for column in ("P.", "R."):
        iou = scores.confusion[(run_label, prior.label, column, prior.seed)].scores().iou
        frame[f"+ {run_label} {column}"] = 100 * iou
        frame[f"gain {column}"] = frame[f"+ {run_label} {column}"] - frame[f"{prior.label} alone"]
    return frame


def context_effect_table(effect: pd.DataFrame, per_class: pd.DataFrame, groups) -> pd.DataFrame:
    """Class-group means of :func:`class_effect_table` (the ``Context`` family holds the context-biased
    classes on the synthetic benchmark), with the class properties of notebook 00."""
    return group_statistics(per_class, groups, values=effect)


def _axis_off(axes) -> None:
    for ax in np.ravel(axes):
        ax.axis("off")


def hints_figure(dataset, hint_cams_dir, ids: Sequence[str], fg_threshold: float = 0.4,
                 bg_threshold: float = 0.1) -> plt.Figure:
    """Figure 4: the priors' CAM (max over the image's classes) and the hint regions it gives: foreground hints
    (CAM >= ``fg_threshold``, red; the ones C²AM-H uses) and confident background (CAM < ``bg_threshold``, blue)."""
    fig, axes = plt.subplots(len(ids), 3, figsize=(6.6, 2.2 * len(ids)), squeeze=False)
    _axis_off(axes)
    for row, image_id in enumerate(ids):
        image = dataset.load_image(image_id)
        hint = hint_map(hint_cams_dir, image_id, image.shape[:2])
        overlay = image.astype(np.float32) / 255
        overlay[hint >= fg_threshold] = 0.5 * overlay[hint >= fg_threshold] + 0.5 * np.array([1.0, 0.1, 0.1])
        overlay[hint < bg_threshold] = 0.5 * overlay[hint < bg_threshold] + 0.5 * np.array([0.1, 0.3, 1.0])
        axes[row, 0].imshow(image)
        axes[row, 1].imshow(image)
        axes[row, 1].imshow(hint, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes[row, 2].imshow(overlay.clip(0, 1))
        axes[row, 0].text(2, 12, image_id, color="white", fontsize=6, backgroundcolor="black")
    for ax, title in zip(axes[0], ["image", "priors CAM (max)", f"hints: fg >= {fg_threshold} (red), bg < {bg_threshold} (blue)"]):
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def detector_figure(dataset, run: SaliencyRun, ids: Sequence[str]) -> plt.Figure:
    """Figure 7: image, ground truth, the C²AM(-H) saliency, its pseudo-saliency mask and the detector's output."""
    columns = ["image", "ground truth", f"{run.label} saliency", "pseudo-saliency (t + CRF)", "detector"]
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(2.2 * len(columns), 2.2 * len(ids)), squeeze=False)
    _axis_off(axes)
    for row, image_id in enumerate(ids):
        image, mask = dataset.load_pair(image_id)
        maps = [load_saliency(saliency_path(sd.file("png"), image_id), mask.shape)
                for sd in (run.saliency, run.pseudo, run.refined)]
        axes[row, 0].imshow(image)
        axes[row, 1].imshow(colorize_mask(mask), interpolation="nearest")
        for col, sal in enumerate(maps, start=2):
            axes[row, col].imshow(sal, cmap="gray", vmin=0, vmax=1)
        axes[row, 0].text(2, 12, image_id, color="white", fontsize=6, backgroundcolor="black")
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def c2am_comparison_figure(dataset, runs: Sequence[SaliencyRun], ids: Sequence[str], refined: bool = False) -> plt.Figure:
    """Figure 8: ground truth, then each run's saliency (C²AM against C²AM-H) on the same images."""
    columns = ["ground truth", *[r.label for r in runs]]
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(2.2 * len(columns), 2.2 * len(ids)), squeeze=False)
    _axis_off(axes)
    for row, image_id in enumerate(ids):
        image, mask = dataset.load_pair(image_id)
        axes[row, 0].imshow(colorize_mask(mask), interpolation="nearest")
        for col, run in enumerate(runs, start=1):
            folder = (run.refined if refined else run.saliency).file("png")
            axes[row, col].imshow(image)
            axes[row, col].imshow(load_saliency(saliency_path(folder, image_id), mask.shape), cmap="jet", alpha=0.5,
                                  vmin=0, vmax=1)
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
