"""Tables and figures of notebook 08: Table 7 (pseudo-mask ablation), Figure 5 (affinity labels), the affinity
labels' quality, and the random walk's effect per class and class group."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wsss_lib.data.stats import group_statistics
from wsss_lib.evaluation.seeds import summarize
from wsss_lib.formats.cam_io import cam_path, load_cam
from wsss_lib.formats.masks import load_affinity_labels
from wsss_lib.refinement.affinity_labels import coarse_affinity_labels
from wsss_lib.reporting.figures import colorize_mask
from wsss_lib.reporting.literature import load_literature
from wsss_lib.stages.priors import METHOD_LABELS, paper_label
from wsss_lib.stages.refinement import RefinementRun

__all__ = ["table7", "table7_per_seed", "table7_by_seed", "literature_table7", "label_quality_table", "figure5",
           "rw_class_effect", "rw_group_effect"]


def _flags(run: RefinementRun) -> dict[str, object]:
    """Table 7's columns of a run's priors label; a recipe note stays in ``method`` (``"P-NOC (OC lr 0.1x)"``) and
    is not read as a flag (``"P-NOC+LS (OC lr 0.1x)"`` is P-NOC with LS)."""
    base, _, ls = paper_label(run.priors).partition("+")
    note = run.priors[len(paper_label(run.priors)):]
    return {"method": base + note, "+LS": ls == "LS", "+C2AM-H": run.saliency.startswith("C2AM-H"),
            "+NOC": base == METHOD_LABELS["pnoc"]}


ORACLE_COLUMNS = ("priors", "RW (oracle t)", "pseudo-masks")
"""Table 7's numbers at the oracle threshold (the paper's protocol; the pseudo-masks at the run's threshold)."""
HELDOUT_COLUMNS = ("priors (held-out t)", "RW (held-out t)", "pseudo-masks (held-out t)")
"""The same numbers at the thresholds chosen on the held-out split."""


def table7_per_seed(runs: Sequence[RefinementRun]) -> pd.DataFrame:
    """One row per refinement run (row and seed) and evaluation split: the mIoU (%) of the priors (oracle background
    threshold, no CRF), of the walked maps (oracle threshold, no CRF) and of the pseudo-masks (the run's threshold
    + CRF), and, where the run has a held-out split, the same at the thresholds chosen there."""
    rows = []
    for run in runs:
        for split, result in run.splits.items():
            row = {"row": run.label, **_flags(run), "saliency": run.saliency or "-", "split": split, "seed": run.seed,
                   "pseudo-mask threshold": run.pseudo_threshold,
                   "priors": 100 * result.priors_sweep.best.miou,
                   "RW (oracle t)": 100 * result.walked_sweep.best.miou,
                   "pseudo-masks": 100 * result.masks_confusion.scores().miou}
            if result.heldout is not None:
                row.update({"held-out split": result.heldout.split,
                            "priors (held-out t)": result.heldout.priors_miou,
                            "RW (held-out t)": result.heldout.walked_miou,
                            "pseudo-masks (held-out t)": 100 * result.heldout.masks_confusion.scores().miou})
            rows.append(row)
    return pd.DataFrame(rows)


def table7(runs: Sequence[RefinementRun]) -> pd.DataFrame:
    """Table 7: :func:`table7_per_seed` as mean and SD over seeds, one row per refinement row and split."""
    per_seed = table7_per_seed(runs)
    if not len(per_seed):
        return per_seed
    values = [c for c in (*ORACLE_COLUMNS, *HELDOUT_COLUMNS, "pseudo-mask threshold") if c in per_seed]
    return summarize(per_seed, ["row", "method", "+LS", "+C2AM-H", "+NOC", "saliency", "split"], values)


def table7_by_seed(runs: Sequence[RefinementRun]) -> dict[str, dict[int, float]]:
    """``"<row> / <split>: <column>"`` -> seed -> mIoU (%): the rows the paper's claims compare."""
    out: dict[str, dict[int, float]] = {}
    for row in table7_per_seed(runs).to_dict("records"):
        for column in (*ORACLE_COLUMNS, *HELDOUT_COLUMNS):
            if column in row and row[column] == row[column]:
                out.setdefault(f"{row['row']} / {row['split']}: {column}", {})[int(row["seed"])] = row[column]
    return out


def literature_table7() -> pd.DataFrame:
    """Table 7 as printed in the P-NOC paper (RW pseudo-masks, VOC 2012 train/val and COCO 2014 val)."""
    return load_literature("pnoc_table7_pseudo_masks")


def label_quality_table(runs: Sequence[RefinementRun]) -> pd.DataFrame:
    """How good each run's affinity labels are against the ground truth of the training split (%):
    the confident share of pixels, the accuracy of the confident ones, the share of ground-truth object pixels
    labelled background (false negatives, Figure 5's claim (a)) and the labels' mIoU (uncertain = miss)."""
    rows = []
    for run in runs:
        cm = run.label_confusion
        counts, matrix, unassigned = np.asarray(cm.counts, float), np.asarray(cm.matrix, float), np.asarray(cm.unassigned, float)
        total = counts.sum()
        confident = total - unassigned.sum()
        objects = counts[1:].sum()
        rows.append({"row": run.label, "labels": "saliency-aware" if run.saliency else "conventional", "seed": run.seed,
                     "confident pixels": 100 * confident / max(total, 1),
                     "accuracy of confident pixels": 100 * np.trace(matrix) / max(confident, 1),
                     "object pixels labelled background": 100 * matrix[1:, 0].sum() / max(objects, 1),
                     "uncertain object pixels": 100 * unassigned[1:].sum() / max(objects, 1),
                     "label mIoU (uncertain = miss)": 100 * cm.scores().miou})
    per_seed = pd.DataFrame(rows)
    if not rows:
        return per_seed
    return summarize(per_seed, ["row", "labels"], [c for c in per_seed.columns if c not in ("row", "labels", "seed")])


def _show_labels(ax, labels: np.ndarray) -> None:
    ax.imshow(colorize_mask(labels), interpolation="nearest")  # uncertain (255) in the VOC void colour (cream)


def figure5(dataset, conventional: RefinementRun, saliency_aware: RefinementRun, ids: Sequence[str],
            fg_threshold: float, bg_threshold: float) -> plt.Figure:
    """Figure 5: (a) image and ground truth, (b) coarse affinity labels from the priors (thresholds, no CRF),
    (c) conventional labels (CRF), (d) saliency-aware labels (saliency + CRF). Cream (VOC void colour) = uncertain, ignored in training."""
    columns = ["image", "ground truth", f"coarse ({fg_threshold:.2f}/{bg_threshold:.2f})", "conventional (CRF)",
               f"saliency-aware ({saliency_aware.saliency})"]
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(2.2 * len(columns), 2.2 * len(ids)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for row, image_id in enumerate(ids):
        image, mask = dataset.load_pair(image_id)
        record = load_cam(cam_path(conventional.train_cams.file("npz"), image_id))
        axes[row, 0].imshow(image)
        axes[row, 1].imshow(colorize_mask(mask), interpolation="nearest")
        _show_labels(axes[row, 2], coarse_affinity_labels(record, fg_threshold, bg_threshold))
        for col, run in ((3, conventional), (4, saliency_aware)):
            _show_labels(axes[row, col], load_affinity_labels(run.labels.file("png") / f"{image_id}.png",
                                                              dataset.num_classes))
        axes[row, 0].text(2, 12, image_id, color="white", fontsize=6, backgroundcolor="black")
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def rw_class_effect(run: RefinementRun, split: str) -> pd.DataFrame:
    """Per-class IoU (%) of the priors (oracle threshold), the walked maps (oracle) and the pseudo-masks."""
    result = run.splits[split]
    frame = pd.DataFrame({"class": result.priors_sweep.class_names,
                          "priors": 100 * result.priors_sweep.best.iou,
                          "RW (oracle t)": 100 * result.walked_sweep.best.iou,
                          "pseudo-masks": 100 * result.masks_confusion.scores().iou})
    frame["gain (pseudo-masks - priors)"] = frame["pseudo-masks"] - frame["priors"]
    return frame


def rw_group_effect(effect: pd.DataFrame, per_class: pd.DataFrame, groups) -> pd.DataFrame:
    """Class-group means of :func:`rw_class_effect`, with the class properties of notebook 00."""
    return group_statistics(per_class, groups, values=effect)
