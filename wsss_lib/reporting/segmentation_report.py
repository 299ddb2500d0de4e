"""Tables and figures of notebook 09: segmentation mIoU per training source, per-class IoU in the layout of
Table 10, and Figures 9 and 10 (predictions of models trained on different masks, on the same images)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wsss_lib.evaluation.seeds import summarize
from wsss_lib.formats.masks import IGNORE_INDEX, load_mask
from wsss_lib.reporting.figures import colorize_mask
from wsss_lib.reporting.literature import load_literature
from wsss_lib.stages.segmentation import GROUND_TRUTH, SegmentationRun

__all__ = ["results_table", "results_per_seed", "results_by_seed", "class_iou_table", "literature_table10",
           "prediction_grid", "overlay_grid"]


def results_per_seed(runs: Sequence[SegmentationRun]) -> pd.DataFrame:
    """One row per network (training source and seed): its training masks' mIoU on the training split (not scored
    for the ground truth itself) and its mIoU (%) on the evaluation split before and after the CRF."""
    return pd.DataFrame([{
        "network": run.label, "training masks": run.source, "seed": run.seed,
        "training masks mIoU": 100 * run.masks_confusion.scores().miou if run.masks_confusion else np.nan,
        "mIoU before CRF": 100 * run.confusion_before_crf.scores().miou if run.confusion_before_crf else np.nan,
        "mIoU": 100 * run.confusion.scores().miou} for run in runs])


def results_table(runs: Sequence[SegmentationRun]) -> pd.DataFrame:
    """One row per network (training source): :func:`results_per_seed` as mean and SD over seeds, and the mean mIoU
    as a share of the fully supervised network's (when run)."""
    per_seed = results_per_seed(runs)
    if not len(per_seed):
        return per_seed
    table = summarize(per_seed, ["network", "training masks"], ["training masks mIoU", "mIoU before CRF", "mIoU"])
    reference = table.loc[table["training masks"] == GROUND_TRUTH, "mIoU"]
    table["% of fully supervised"] = 100 * table["mIoU"] / reference.iloc[0] if len(reference) else np.nan
    return table


def results_by_seed(runs: Sequence[SegmentationRun]) -> dict[str, dict[int, float]]:
    """Network (``"<training source> · DeepLabV3+"``) -> seed -> mIoU (%) on the evaluation split: the rows the
    paper's claims compare."""
    out: dict[str, dict[int, float]] = {}
    for run in runs:
        out.setdefault(run.label, {})[run.seed] = 100 * run.confusion.scores().miou
    return out


def class_iou_table(runs: Sequence[SegmentationRun], class_names: Sequence[str]) -> pd.DataFrame:
    """Table 10's layout: one row per network (training source), the IoU (%) of every class (background first) and
    their mean, each the mean over seeds."""
    rows = []
    for run in runs:
        iou = 100 * run.confusion.scores().iou
        rows.append({"network": run.label, **dict(zip(class_names, iou)), "mean": float(np.nanmean(iou))})
    frame = pd.DataFrame(rows)
    return frame.groupby("network", sort=False).mean().reset_index() if rows else frame


def literature_table10() -> pd.DataFrame:
    """Table 10 as printed (VOC 2012 *test* IoU per class, from the evaluation server; literature)."""
    return load_literature("pnoc_table10_voc_test_iou")


def _overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    colour = colorize_mask(mask).astype(np.float32)
    keep = ((mask == 0) | (mask == IGNORE_INDEX))[..., None]
    return np.where(keep, image, (1 - alpha) * image + alpha * colour).astype(np.uint8)


def prediction_grid(dataset, ids: Sequence[str], columns: dict[str, str | Path | None]) -> plt.Figure:
    """Figure 9: one row per image, columns = the image, then ``title -> prediction folder`` (VOC layout; ``None``
    = the ground truth), masks in the VOC colours."""
    fig, axes = plt.subplots(len(ids), len(columns) + 1, figsize=(2.2 * (len(columns) + 1), 2.0 * len(ids)),
                             squeeze=False)
    for row, image_id in enumerate(ids):
        axes[row, 0].imshow(dataset.load_image(image_id))
        axes[row, 0].set_ylabel(image_id, fontsize=7)
        for col, (title, folder) in enumerate(columns.items(), start=1):
            mask = dataset.load_mask(image_id) if folder is None else load_mask(folder, image_id, dataset.num_classes)
            axes[row, col].imshow(colorize_mask(mask), interpolation="nearest")
            if row == 0:
                axes[row, col].set_title(title, fontsize=8)
        if row == 0:
            axes[row, 0].set_title("image", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def overlay_grid(dataset, ids: Sequence[str], folder: str | Path, title: str, columns: int = 4) -> plt.Figure:
    """Figure 10: the masks in ``folder`` (predictions or pseudo-masks, VOC layout) over their images."""
    rows = int(np.ceil(len(ids) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, image_id in enumerate(ids):
        mask = load_mask(folder, image_id, dataset.num_classes)
        ax = axes[i // columns, i % columns]
        ax.imshow(_overlay(dataset.load_image(image_id), mask))
        present = [dataset.class_names[k] for k in np.unique(mask) if k not in (0, IGNORE_INDEX)]
        ax.set_title(", ".join(present) or "background", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
