"""Dataset-level confusion matrix and the VOC segmentation scores (IoU, mIoU, FP/FN ratios).

Counting follows the official evaluators (PNOC ``scripts/evaluate.py``, IRN/AMN chainercv confusion):

- only pixels whose **ground truth** is ``ignore_index`` (255, "void") are ignored;
- a **predicted** 255 (or any value outside ``[0, C)``) is *wrong*: it is a false negative of its
  ground-truth class and a false positive of no class. It is stored in an extra "unassigned" column,
  so the internal table has shape ``C x (C + 1)`` (rows = ground truth, columns = prediction,
  last column = unassigned);
- counts are accumulated over the whole dataset (int64) and the scores are computed once from them,
  never averaged per image or per batch.

With ``T_c`` = ground-truth pixels of class c, ``P_c`` = pixels predicted as c, ``TP_c`` = both,
and ``U_c = T_c + P_c - TP_c`` (the union):

- ``IoU_c = TP_c / U_c`` (NaN where ``U_c == 0``: the class is absent from both);
- ``FP_c = (P_c - TP_c) / U_c`` and ``FN_c = (T_c - TP_c) / U_c`` (official ``evaluate.py``;
  Figure 6b of the P-NOC paper), so ``IoU_c + FP_c + FN_c == 1``;
- ``miou`` = NaN-mean of ``IoU_c`` over **all** classes, background included (official mIoU);
  ``miou_fg``, ``mean_fp`` and ``mean_fn`` average over the foreground classes ``1..C-1``
  (the official script reports FP/FN means over ``[1:]``).

The official code adds ``1e-10`` to the denominator, giving 0 instead of NaN for absent classes and
therefore counting them in the mean; with every class present (VOC train/val) the two agree.
All values are fractions in [0, 1]; reports multiply by 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["ConfusionMatrix", "SegmentationScores", "scores_from_counts", "group_miou"]


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """numpy arrays pass through; torch tensors (anything with ``detach``) are moved to CPU numpy."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise TypeError(f"{name} must hold integer class ids, got dtype {x.dtype}")
    return x


def _nan_mean(values: np.ndarray) -> float:
    """NaN-aware mean that returns NaN (without a RuntimeWarning) when every entry is NaN."""
    values = np.asarray(values, dtype=np.float64)
    finite = ~np.isnan(values)
    return float(values[finite].mean()) if finite.any() else float("nan")


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class SegmentationScores:
    """Scores derived from a confusion matrix; arrays are indexed by class id, values in [0, 1].

    Attributes:
        iou: ``(C,)`` per-class IoU ``TP/(T+P-TP)``, NaN for classes absent from GT and prediction.
        fp: ``(C,)`` per-class false-positive ratio ``(P-TP)/(T+P-TP)``.
        fn: ``(C,)`` per-class false-negative ratio ``(T-TP)/(T+P-TP)``.
        miou: NaN-mean IoU over all classes, background included (the paper's mIoU).
        miou_fg: NaN-mean IoU over the foreground classes ``1..C-1``.
        mean_fp: NaN-mean of ``fp`` over the foreground classes (official ``fp_all``).
        mean_fn: NaN-mean of ``fn`` over the foreground classes (official ``fn_all``).
        pixel_accuracy: correctly labelled pixels / non-ignored pixels.
        num_pixels: number of non-ignored pixels counted.
    """

    iou: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    miou: float
    miou_fg: float
    mean_fp: float
    mean_fn: float
    pixel_accuracy: float
    num_pixels: int

    @property
    def num_classes(self) -> int:
        return int(self.iou.shape[0])

    def to_frame(self, class_names: Sequence[str] | None = None) -> pd.DataFrame:
        """A tidy table with one row per class: ``class_id, class, iou, fp, fn``."""
        if class_names is None:
            class_names = [f"class_{i}" for i in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(class_names)} entries, expected {self.num_classes}")
        return pd.DataFrame(
            {
                "class_id": np.arange(self.num_classes),
                "class": list(class_names),
                "iou": self.iou,
                "fp": self.fp,
                "fn": self.fn,
            }
        )

    def summary(self) -> dict[str, float]:
        """The scalar scores as a flat dict (fractions in [0, 1])."""
        return {
            "miou": self.miou,
            "miou_fg": self.miou_fg,
            "fp": self.mean_fp,
            "fn": self.mean_fn,
            "pixel_accuracy": self.pixel_accuracy,
            "num_pixels": self.num_pixels,
        }


def scores_from_counts(counts: np.ndarray) -> SegmentationScores:
    """Scores from a ``C x (C+1)`` count table (last column = unassigned predictions) or a ``C x C`` one."""
    counts = np.asarray(counts, dtype=np.int64)
    num_classes = counts.shape[0]
    if counts.ndim != 2 or counts.shape[1] not in (num_classes, num_classes + 1):
        raise ValueError(f"expected a C x C or C x (C+1) count table, got shape {counts.shape}")
    tp = np.diag(counts[:, :num_classes]).astype(np.float64)
    gt_total = counts.sum(axis=1).astype(np.float64)  # T_c, includes unassigned predictions
    pred_total = counts[:, :num_classes].sum(axis=0).astype(np.float64)  # P_c
    union = gt_total + pred_total - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        fp = np.where(union > 0, (pred_total - tp) / union, np.nan)
        fn = np.where(union > 0, (gt_total - tp) / union, np.nan)
    total = int(gt_total.sum())
    return SegmentationScores(
        iou=iou,
        fp=fp,
        fn=fn,
        miou=_nan_mean(iou),
        miou_fg=_nan_mean(iou[1:]),
        mean_fp=_nan_mean(fp[1:]),
        mean_fn=_nan_mean(fn[1:]),
        pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
        num_pixels=total,
    )


class ConfusionMatrix:
    """Streaming ``C x C`` confusion matrix (rows = ground truth, columns = prediction), int64 counts.

    Internally ``C x (C+1)``: column ``C`` counts pixels whose prediction lies outside ``[0, C)``
    (e.g. 255 from an uncertain pseudo mask); see the module docstring.

    Args:
        num_classes: number of classes ``C``, background (0) included.
        ignore_index: ground-truth value to ignore (VOC "void" = 255).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} collides with a class id in [0, {num_classes})")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._counts = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    # ----------------------------------------------------------------------------------- counts
    @property
    def counts(self) -> np.ndarray:
        """The full ``C x (C+1)`` table (read-only view; last column = unassigned predictions)."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    @property
    def matrix(self) -> np.ndarray:
        """The ``C x C`` confusion matrix (read-only view, unassigned predictions left out)."""
        return self.counts[:, : self.num_classes]

    @property
    def unassigned(self) -> np.ndarray:
        """``(C,)`` pixels of each ground-truth class predicted outside ``[0, C)``."""
        return self.counts[:, self.num_classes]

    def update(self, pred: Any, gt: Any) -> "ConfusionMatrix":
        """Accumulate one prediction / ground-truth pair (numpy arrays or torch tensors, same shape).

        Any leading batch dimensions are allowed. Returns ``self`` for chaining.
        """
        pred = _as_numpy(pred, "pred")
        gt = _as_numpy(gt, "gt")
        if pred.shape != gt.shape:
            raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
        gt = gt.reshape(-1).astype(np.int64, copy=False)
        pred = pred.reshape(-1).astype(np.int64, copy=False)
        valid = gt != self.ignore_index
        if not valid.all():
            gt, pred = gt[valid], pred[valid]
        if gt.size == 0:
            return self
        bad = (gt < 0) | (gt >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"gt holds value {int(gt[bad][0])} outside [0, {self.num_classes}) that is not "
                f"ignore_index {self.ignore_index}"
            )
        c1 = self.num_classes + 1
        pred = np.where((pred < 0) | (pred >= self.num_classes), self.num_classes, pred)
        flat = np.bincount(gt * c1 + pred, minlength=self.num_classes * c1)
        self._counts += flat.reshape(self.num_classes, c1)
        return self

    def add_counts(self, counts: np.ndarray) -> "ConfusionMatrix":
        """Add a precomputed ``C x (C+1)`` (or ``C x C``) integer count table."""
        counts = np.asarray(counts)
        if not np.issubdtype(counts.dtype, np.integer):
            raise TypeError(f"counts must be integers, got dtype {counts.dtype}")
        if counts.shape == (self.num_classes, self.num_classes):
            self._counts[:, : self.num_classes] += counts
        elif counts.shape == self._counts.shape:
            self._counts += counts
        else:
            raise ValueError(f"counts shape {counts.shape} does not fit a {self.num_classes}-class matrix")
        return self

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add the counts of ``other`` (same ``num_classes`` and ``ignore_index``) in place."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) into a "
                f"{self.num_classes}-class one (ignore {self.ignore_index})"
            )
        self._counts += other._counts
        return self

    def reset(self) -> None:
        self._counts[...] = 0

    # ----------------------------------------------------------------------------------- scores
    def scores(self) -> SegmentationScores:
        return scores_from_counts(self._counts)

    # ------------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "counts": self._counts.copy(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "ConfusionMatrix":
        cm = cls(int(state["num_classes"]), int(state["ignore_index"]))
        cm.add_counts(np.asarray(state["counts"], dtype=np.int64))
        return cm

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={int(self._counts.sum())})"
        )


def group_miou(per_class_iou: np.ndarray | Sequence[float], groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """NaN-aware mean IoU over named groups of class ids, e.g. ``{"animals": [3, 8, 10, 12, 13, 17]}``.

    A group whose classes are all NaN (absent) maps to NaN. Class ids out of range raise ``IndexError``.
    """
    iou = np.asarray(per_class_iou, dtype=np.float64)
    result = {}
    for name, ids in groups.items():
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size == 0:
            raise ValueError(f"group {name!r} is empty")
        if ids.min() < 0 or ids.max() >= iou.size:
            raise IndexError(f"group {name!r} has class ids {ids.tolist()} outside [0, {iou.size})")
        result[name] = _nan_mean(iou[ids])
    return result
