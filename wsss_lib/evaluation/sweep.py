"""CAM -> label maps by a constant background threshold, and the oracle threshold sweep.

Labelling (official ``scripts/evaluate.py``, PuzzleCAM and IRN): prepend a constant background channel
``t`` to the ``K`` per-class CAMs of an image, take the ``argmax`` and map the winning channel through
``[0, *keys]``. A pixel is therefore foreground iff ``max_k cam_k > t`` (ties go to background, the first
channel); the winning class is the first ``argmax`` over the foreground maps. The comparison is done in
the CAM's dtype (``float32``), as the official ``np.pad(..., constant_values=t)`` does.

The sweep (official default ``t in arange(0.05, 0.81, 0.05)``) scores every threshold against the
ground truth and reports the best one. **This is an oracle**: choosing ``t`` with ground-truth masks
leaks labels into the method (ReCAM #3, wseg #3; see ``ecosystem-notes.md`` section 5). Report it as
"oracle threshold on <split>", never tune it on the split you report segmentation results on, and
report a fixed-threshold number beside it where the comparison matters.

Unlike PNOC's evaluator, a CAM whose size differs from its mask is an error (PNOC silently resizes
mis-shaped predictions), and a missing CAM file is an error (PNOC skips and counts it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from wsss_lib.evaluation.confusion import ConfusionMatrix, SegmentationScores
from wsss_lib.formats.cam_io import CamRecord, cam_path, load_cam
from wsss_lib.io.progress import tqdm
from wsss_lib.timing import timed

__all__ = [
    "DEFAULT_THRESHOLDS",
    "SweepDataset",
    "CrfFn",
    "SweepResult",
    "labels_from_cams",
    "threshold_sweep",
    "sweep_counts",
]

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(np.round(np.arange(0.05, 0.8001, 0.05), 2).tolist())
"""Official CAM sweep ``0.05, 0.10, ..., 0.80`` (16 values). Rounded for printing; identical to
``np.arange(0.05, 0.8001, 0.05)`` once cast to the CAMs' float32, where the comparison happens."""

CrfFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""``(image HxWx3 uint8, labels HxW in [0, n_labels), n_labels) -> refined labels HxW``."""


class SweepDataset(Protocol):
    """What the sweep needs from a dataset (e.g. VOC ``train``, 1,464 images)."""

    ids: Sequence[str]

    def __len__(self) -> int: ...

    def load_mask(self, image_id: str) -> np.ndarray:  # HxW uint8, 255 = ignore
        ...

    def load_image(self, image_id: str) -> np.ndarray:  # HxWx3 uint8 RGB (only used with a CRF)
        ...


# ------------------------------------------------------------------------------------------- labels
def _maps(record: CamRecord, high_res: bool) -> np.ndarray:
    return record.hr_cam if high_res else record.cam


def labels_from_cams(record: CamRecord, threshold: float, high_res: bool = True) -> np.ndarray:
    """Label map (uint8, class ids) from one image's CAMs: ``[0, *keys][argmax([t, cam_1..cam_K])]``.

    ``high_res=False`` uses the stride-4 ``cam`` instead of ``hr_cam``. ``K == 0`` gives all background.
    """
    scores, class_ids = record.with_background(threshold, high_res=high_res)
    return class_ids[np.argmax(scores, axis=0)].astype(np.uint8)


def _nearest_resize(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize by pixel-centre sampling (what PIL ``NEAREST`` does)."""
    h, w = shape
    rows = np.minimum(((np.arange(h) + 0.5) * mask.shape[0] / h).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * mask.shape[1] / w).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


@timed("count")
def sweep_counts(
    maps: np.ndarray,
    keys: np.ndarray,
    gt: np.ndarray,
    thresholds: np.ndarray,
    num_classes: int,
    ignore_index: int = 255,
) -> np.ndarray:
    """Confusion counts of one image for every threshold at once: ``(len(thresholds), C, C+1)`` int64.

    Equivalent to ``ConfusionMatrix.update(labels_from_cams(..., t), gt)`` for each ``t`` but with a single
    ``bincount``: with ``k(x)`` = number of thresholds below ``m(x) = max_k cam_k(x)`` (thresholds sorted),
    pixel ``x`` is predicted as its arg-max class for the first ``k(x)`` thresholds and as background for
    the others, so one histogram over ``(k, gt, argmax class)`` followed by prefix/suffix sums over ``k``
    gives all tables. Column ``C`` (unassigned predictions) stays 0 here; it exists for compatibility.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    order = np.argsort(thresholds, kind="stable")
    n_thr, c, c1 = thresholds.size, num_classes, num_classes + 1
    if maps.shape[1:] != gt.shape:
        raise ValueError(f"CAM spatial shape {maps.shape[1:]} does not match mask shape {gt.shape}")
    if maps.shape[0] != keys.size:
        raise ValueError(f"{keys.size} keys but {maps.shape[0]} CAM channels")
    if keys.size and (keys.min() < 1 or keys.max() >= num_classes):
        raise ValueError(f"CAM keys {keys.tolist()} outside the foreground ids [1, {num_classes})")

    gt = gt.reshape(-1).astype(np.int64)
    valid = gt != ignore_index
    gt = gt[valid]
    bad = (gt < 0) | (gt >= num_classes)
    if bad.any():
        raise ValueError(f"mask holds value {int(gt[bad][0])} outside [0, {num_classes}) and != {ignore_index}")
    if keys.size:
        flat = maps.reshape(keys.size, -1)[:, valid]
        fg_max = flat.max(axis=0)
        if not np.isfinite(fg_max).all():
            bad = keys[~np.isfinite(flat).all(axis=1)].tolist()
            raise FloatingPointError(f"the CAM of class id(s) {bad} holds NaN or infinite values")
        fg_id = keys.astype(np.int64)[flat.argmax(axis=0)]
        # compare in the CAM dtype, as the official constant background channel does
        sorted_thr = thresholds[order].astype(maps.dtype)
        k = np.searchsorted(sorted_thr, fg_max, side="left")  # thresholds strictly below fg_max
    else:
        fg_id = np.zeros_like(gt)
        k = np.zeros_like(gt)
    hist = np.bincount(k * (c * c1) + gt * c1 + fg_id, minlength=(n_thr + 1) * c * c1).reshape(n_thr + 1, c, c1)
    # threshold i (sorted): foreground pixels have k > i, background pixels k <= i
    suffix = np.cumsum(hist[::-1], axis=0)[::-1]  # suffix[j] = sum_{k >= j} hist[k]
    counts = suffix[1:].copy()  # sum_{k > i}
    prefix_rows = np.cumsum(hist.sum(axis=2), axis=0)[:-1]  # (T, C): gt pixels with k <= i
    counts[:, :, 0] += prefix_rows
    out = np.empty_like(counts)
    out[order] = counts
    return out


# ------------------------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class SweepResult:
    """Outcome of :func:`threshold_sweep`.

    Attributes:
        thresholds: ``(T,)`` thresholds in the order they were given.
        confusion: one :class:`ConfusionMatrix` per threshold (dataset-level counts).
        class_names: ``C`` names used for the ``iou_<name>`` columns.
        num_images: number of images scored.
        table: wide table, one row per threshold, columns ``threshold, miou, miou_fg, fp, fn,
            pixel_accuracy, iou_<class>...`` (fractions in [0, 1]; ``fp``/``fn`` are the foreground
            means). Use :meth:`per_class` for the long (tidy) per-class form.
    """

    thresholds: np.ndarray
    confusion: tuple[ConfusionMatrix, ...] = field(repr=False)
    class_names: tuple[str, ...] = field(repr=False)
    num_images: int
    table: pd.DataFrame = field(repr=False)

    @classmethod
    def from_confusion(
        cls,
        thresholds: Sequence[float],
        confusion: Sequence[ConfusionMatrix],
        class_names: Sequence[str],
        num_images: int,
    ) -> "SweepResult":
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if len(confusion) != thresholds.size:
            raise ValueError(f"{len(confusion)} confusion matrices for {thresholds.size} thresholds")
        rows = []
        for t, cm in zip(thresholds, confusion):
            s = cm.scores()
            row = {"threshold": float(t), "miou": s.miou, "miou_fg": s.miou_fg, "fp": s.mean_fp,
                   "fn": s.mean_fn, "pixel_accuracy": s.pixel_accuracy}
            row.update({f"iou_{name}": v for name, v in zip(class_names, s.iou)})
            rows.append(row)
        return cls(thresholds, tuple(confusion), tuple(class_names), int(num_images), pd.DataFrame(rows))

    @property
    def best_index(self) -> int:
        """Index of the highest mIoU (first one on ties, like the official ``>`` update)."""
        miou = self.table["miou"].to_numpy(dtype=np.float64)
        if np.isnan(miou).all():
            raise ValueError("every threshold has an undefined mIoU (no labelled pixels were scored)")
        return int(np.nanargmax(miou))

    @property
    def best_threshold(self) -> float:
        """The oracle threshold (chosen with ground truth; see the module docstring)."""
        return float(self.thresholds[self.best_index])

    @property
    def best(self) -> SegmentationScores:
        return self.scores(self.best_index)

    def scores(self, index: int) -> SegmentationScores:
        return self.confusion[index].scores()

    def per_class(self) -> pd.DataFrame:
        """Long table: ``threshold, class_id, class, iou, fp, fn`` (one row per threshold and class)."""
        frames = []
        for t, cm in zip(self.thresholds, self.confusion):
            frame = cm.scores().to_frame(self.class_names)
            frame.insert(0, "threshold", float(t))
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


# -------------------------------------------------------------------------------------------- sweep
def threshold_sweep(
    cam_dir: str | os.PathLike,
    dataset: SweepDataset,
    thresholds: Sequence[float] | np.ndarray = DEFAULT_THRESHOLDS,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    high_res: bool = True,
    crf: CrfFn | None = None,
    ignore_index: int = 255,
    progress: bool = True,
) -> SweepResult:
    """Oracle background-threshold sweep of saved CAMs against ground-truth masks.

    The best threshold is chosen **with the ground truth** of ``dataset``: it is an oracle number
    (label leakage), to be reported as such and computed on the CAM split (VOC ``train``), not on the
    split segmentation results are reported on.

    Args:
        cam_dir: folder of ``<image_id>.npz`` CAM files (:mod:`wsss_lib.formats.cam_io`).
        dataset: provides ``ids``, ``load_mask(id)`` and, with ``crf``, ``load_image(id)``.
        thresholds: background thresholds (default: official ``0.05..0.80`` step ``0.05``).
        num_classes: ``C``, background included (21 for VOC).
        class_names: ``C`` names for the ``iou_<name>`` columns (default ``class_0 ...``).
        high_res: score ``hr_cam`` at image size (official). ``False`` scores the stride-4 ``cam``
            against the mask nearest-downsampled to the CAM size (in-training validation style).
        crf: optional refinement ``(image, labels, n_labels) -> labels`` applied per threshold to the
            channel indices ``argmax([t, cam_1..cam_K])`` with ``n_labels = K + 1`` before they are
            mapped to class ids (official ``crf_inference_label`` call); requires ``high_res``. Images
            with ``K == 0`` are all background and skip the CRF (official: ``n_labels = max(K+1, 2)``,
            whose extra label has no evidence).
            Without ``crf`` all thresholds are scored from one histogram per image (:func:`sweep_counts`).
        ignore_index: ground-truth value that is ignored.
        progress: show a tqdm bar.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thresholds.size == 0:
        raise ValueError("thresholds is empty")
    if class_names is None:
        class_names = [f"class_{i}" for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} entries, expected num_classes={num_classes}")
    if crf is not None and not high_res:
        raise ValueError("crf needs image-size labels; use high_res=True")
    ids = list(dataset.ids)
    if not ids:
        raise ValueError("dataset has no images")

    total = np.zeros((thresholds.size, num_classes, num_classes + 1), dtype=np.int64)
    for image_id in tqdm(ids, desc="threshold sweep", disable=not progress):
        path = cam_path(cam_dir, image_id)
        record = load_cam(path)  # raises FileNotFoundError naming the file
        gt = np.asarray(dataset.load_mask(image_id))
        maps = _maps(record, high_res)
        if not high_res and gt.ndim == 2 and maps.shape[1:] != gt.shape:
            gt = _nearest_resize(gt, maps.shape[1:])
        try:
            if crf is None:
                total += sweep_counts(maps, record.keys, gt, thresholds, num_classes, ignore_index)
            else:
                total += _crf_counts(record, dataset, image_id, gt, thresholds, crf, num_classes, ignore_index)
        except (ValueError, FloatingPointError) as err:
            raise type(err)(f"{path} (image {image_id!r}): {err}") from err
    confusion = [ConfusionMatrix(num_classes, ignore_index).add_counts(counts) for counts in total]
    return SweepResult.from_confusion(thresholds, confusion, class_names, len(ids))


def _crf_counts(
    record: CamRecord,
    dataset: SweepDataset,
    image_id: str,
    gt: np.ndarray,
    thresholds: np.ndarray,
    crf: CrfFn,
    num_classes: int,
    ignore_index: int,
) -> np.ndarray:
    """Per-threshold counts with CRF refinement of the thresholded channel indices (one CRF per threshold)."""
    maps = record.hr_cam
    if maps.shape[1:] != gt.shape:
        raise ValueError(f"CAM spatial shape {maps.shape[1:]} does not match mask shape {gt.shape}")
    if record.keys.size and (record.keys.min() < 1 or record.keys.max() >= num_classes):
        raise ValueError(f"CAM keys {record.keys.tolist()} outside the foreground ids [1, {num_classes})")
    counts = np.zeros((thresholds.size, num_classes, num_classes + 1), dtype=np.int64)
    if record.keys.size == 0:  # one real label: the CRF cannot change an all-background map
        cm = ConfusionMatrix(num_classes, ignore_index).update(np.zeros_like(gt), gt)
        counts[:] = cm.counts
        return counts
    image = dataset.load_image(image_id)
    n_labels = record.keys.size + 1
    for i, t in enumerate(thresholds):
        scores, class_ids = record.with_background(float(t), high_res=True)
        refined = np.asarray(crf(image, np.argmax(scores, axis=0), n_labels))
        if refined.shape != gt.shape:
            raise ValueError(f"crf returned shape {refined.shape}, expected {gt.shape}")
        if refined.min() < 0 or refined.max() >= n_labels:
            raise ValueError(f"crf returned labels outside [0, {n_labels})")
        counts[i] = ConfusionMatrix(num_classes, ignore_index).update(class_ids[refined], gt).counts
    return counts
