"""Tables and figures of the CAM notebooks: threshold curves, per-class IoU, qualitative grids, baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.evaluation.sweep import SweepResult, labels_from_cams
from wsss_lib.formats.cam_io import cam_path, load_cam
from wsss_lib.reporting.figures import colorize_mask

__all__ = ["sweep_curve_figure", "per_class_iou", "cam_grid_figure", "trivial_baselines", "history_table"]


def history_table(history: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch losses and the quick mIoU (in %), as the paper's Table 2 prints it."""
    table = history.copy()
    if "quick_miou" in table:
        table["quick_miou"] = 100 * table["quick_miou"]
    return table


def sweep_curve_figure(results: dict[str, SweepResult | pd.DataFrame], title: str = "") -> plt.Figure:
    """mIoU, mean false-positive and false-negative ratio against the background threshold (Figure 6).

    Each value is a :class:`SweepResult` or a table with ``threshold, miou, fp, fn`` columns (fractions).
    """
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharex=True)
    for label, result in results.items():
        table = result.table if isinstance(result, SweepResult) else result
        for ax, column, name in zip(axes, ("miou", "fp", "fn"), ("mIoU (%)", "FPR (%)", "FNR (%)")):
            ax.plot(table["threshold"], 100 * table[column], marker="o", ms=3, label=label)
            ax.set_ylabel(name)
            ax.set_xlabel("background threshold")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_class_iou(result: SweepResult) -> pd.DataFrame:
    """IoU, FP and FN ratios (%) per class at the sweep's best threshold."""
    frame = result.best.to_frame(list(result.class_names)).drop(columns=["class_id"])
    frame[["iou", "fp", "fn"]] = 100 * frame[["iou", "fp", "fn"]]
    return frame


def cam_grid_figure(dataset, cam_dir: str | Path, ids: Sequence[str], threshold: float,
                    columns: Sequence[str] = ("image", "ground truth", "CAM", "prediction")) -> plt.Figure:
    """Rows of image, ground truth, CAM heat map (max over the image's classes) and thresholded labels."""
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(2.4 * len(columns), 2.3 * len(ids)), squeeze=False)
    for row, image_id in enumerate(ids):
        image, mask = dataset.load_pair(image_id)
        record = load_cam(cam_path(cam_dir, image_id))
        heat = record.hr_cam.max(axis=0) if record.keys.size else np.zeros(mask.shape, np.float32)
        panels = {"image": image, "ground truth": colorize_mask(mask),
                  "CAM": None, "prediction": colorize_mask(labels_from_cams(record, threshold))}
        for col, name in enumerate(columns):
            ax = axes[row, col]
            ax.axis("off")
            if name == "CAM":
                ax.imshow(image)
                ax.imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            else:
                ax.imshow(panels[name], interpolation="nearest")
            if row == 0:
                ax.set_title(name if name != "prediction" else f"prediction (t={threshold:.2f})", fontsize=8)
        axes[row, 0].text(2, 12, image_id, color="white", fontsize=6, backgroundcolor="black")
    fig.tight_layout()
    return fig


def trivial_baselines(dataset) -> pd.DataFrame:
    """mIoU of label-only predictions, the floor any CAM must clear on this split:

    - ``all background``: every pixel background;
    - ``fill with a present class``: every pixel labelled with the image's first ground-truth class
      (uses the image-level labels, like CAMs do, but no localisation at all).
    """
    background = ConfusionMatrix(dataset.num_classes)
    fill = ConfusionMatrix(dataset.num_classes)
    for image_id in dataset.ids:
        mask = dataset.load_mask(image_id)
        present = np.flatnonzero(dataset.label_of(image_id)) + 1
        background.update(np.zeros_like(mask), mask)
        fill.update(np.full_like(mask, present[0] if present.size else 0), mask)
    return pd.DataFrame([{"baseline": "all background", "miou": 100 * background.scores().miou},
                         {"baseline": "fill with a present class", "miou": 100 * fill.scores().miou}])
