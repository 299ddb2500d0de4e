"""Evaluation: dataset-level confusion matrices, VOC scores (mIoU, FP/FN ratios) and threshold sweeps."""

from wsss_lib.evaluation.confusion import ConfusionMatrix, SegmentationScores, group_miou, scores_from_counts
from wsss_lib.evaluation.sweep import (
    DEFAULT_THRESHOLDS,
    SweepDataset,
    SweepResult,
    labels_from_cams,
    sweep_counts,
    threshold_sweep,
)

__all__ = [
    "ConfusionMatrix",
    "SegmentationScores",
    "group_miou",
    "scores_from_counts",
    "DEFAULT_THRESHOLDS",
    "SweepDataset",
    "SweepResult",
    "labels_from_cams",
    "sweep_counts",
    "threshold_sweep",
]
