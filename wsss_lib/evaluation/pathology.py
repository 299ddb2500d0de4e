"""What a segmentation prior gets wrong, beside its mIoU: misses, spill, cross-class confusion, and (where the
data annotates regions, as the synthetic benchmark v2 does) recall on discriminative parts against far body
pixels and false positives on context backgrounds.

**Error breakdown** (from a ``C x C`` or ``C x (C+1)`` confusion table, rows = ground truth, columns =
prediction, last column = unassigned; :class:`~wsss_lib.evaluation.confusion.ConfusionMatrix`). For a set ``K``
of foreground classes (default: every class ``1..C-1``) with ground-truth area ``T_K = sum_{c in K} T_c``:

- ``right = sum_c n[c, c] / T_K`` — foreground pixels given their own class;
- ``confused = sum_c sum_{c' >= 1, c' != c} n[c, c'] / T_K`` — given another foreground class;
- ``missed = sum_c (n[c, 0] + n[c, unassigned]) / T_K`` — given background (or nothing);
- ``spill = sum_c n[0, c] / T_K`` — ground-truth *background* pixels predicted as a class of ``K``, relative to
  the foreground area (it can exceed 1).

``right + confused + missed == 1``. An incomplete prior (the P-NOC paper's "part-only" CAM) has ``missed`` above
``spill``; an over-expanded one the reverse. All values are fractions; tables show percentages.

**Regions** (:data:`REGIONS`, the ``SegmentationRegion/<id>.png`` annotation of the synthetic benchmark v2):
0 plain background, 1 context background (a context-biased class's texture), 2 discriminative part, 3 body near
the part, 4 body far from the part, 255 void. :func:`region_counts` counts, per region, the pixels predicted as
their own ground-truth class, as another foreground class, and as background; :func:`region_scores` turns that
into ``part_recall``, ``near_body_recall``, ``far_body_recall``, ``context_fp`` (share of context-background pixels
predicted as foreground) and ``plain_bg_fp`` (the same on plain backgrounds, its reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from wsss_lib.data.synthetic import REGION_CODES, REGION_DIR

__all__ = ["REGIONS", "REGION_DIR", "error_breakdown", "group_error_breakdown", "region_counts", "region_scores",
           "load_region_map", "cam_region_counts", "label_prior_loss"]

REGIONS: dict[str, int] = REGION_CODES
"""Region codes of the ``SegmentationRegion`` annotation (255: void, as in the class masks), as the synthetic
benchmark's generator writes them."""


def _table(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[1] not in (counts.shape[0], counts.shape[0] + 1):
        raise ValueError(f"expected a C x C or C x (C+1) confusion table, got shape {counts.shape}")
    if counts.shape[1] == counts.shape[0]:
        counts = np.concatenate([counts, np.zeros((counts.shape[0], 1), np.int64)], axis=1)
    return counts


def error_breakdown(counts: np.ndarray, classes: Sequence[int] | None = None) -> dict[str, float]:
    """``right``, ``confused``, ``missed`` and ``spill`` of the foreground classes ``classes`` (default: all),
    as fractions of their ground-truth area (see the module docstring); NaN when that area is 0."""
    counts = _table(counts)
    c = counts.shape[0]
    keep = np.asarray(range(1, c) if classes is None else classes, dtype=np.int64)
    if keep.size and (keep.min() < 1 or keep.max() >= c):
        raise ValueError(f"classes must be foreground ids in [1, {c}), got {keep.tolist()}")
    rows = counts[keep]
    area = float(rows.sum())
    if area == 0:
        return {"right": float("nan"), "confused": float("nan"), "missed": float("nan"), "spill": float("nan")}
    right = float(rows[np.arange(keep.size), keep].sum())
    missed = float(rows[:, 0].sum() + rows[:, c].sum())
    spill = float(counts[0, keep].sum())
    return {"right": right / area, "confused": (area - right - missed) / area, "missed": missed / area,
            "spill": spill / area}


def group_error_breakdown(counts: np.ndarray, class_names: Sequence[str],
                          groups: Mapping[str, Mapping[str, Sequence[str]]]) -> pd.DataFrame:
    """:func:`error_breakdown` for every class group (``{family: {group: [class names]}}``), one row per group,
    plus an ``all`` row; percentages. Classes absent from ``class_names`` are an error."""
    index = {name: i for i, name in enumerate(class_names)}
    rows = [{"family": "all", "group": "all", **error_breakdown(counts)}]
    for family, members in groups.items():
        for group, names in members.items():
            unknown = [n for n in names if n not in index]
            if unknown:
                raise KeyError(f"class group {family}/{group}: unknown class(es) {unknown}; known: {list(class_names)}")
            rows.append({"family": family, "group": group, **error_breakdown(counts, [index[n] for n in names])})
    frame = pd.DataFrame(rows)
    for col in ("right", "confused", "missed", "spill"):
        frame[col] *= 100.0
    return frame


def region_counts(pred: np.ndarray, gt: np.ndarray, region: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """``(len(REGIONS), 3)`` int64 counts: per region, pixels predicted as their own ground-truth class, as another
    foreground class, as background (a prediction outside the classes counts as background). Void pixels (in
    ``gt`` or ``region``) are left out. The three arrays must have one shape."""
    pred, gt, region = (np.asarray(a) for a in (pred, gt, region))
    if not pred.shape == gt.shape == region.shape:
        raise ValueError(f"prediction {pred.shape}, ground truth {gt.shape} and regions {region.shape} differ in shape")
    valid = (gt != ignore_index) & (region != ignore_index)
    r = region[valid].astype(np.int64)
    if r.size and r.max() >= len(REGIONS):
        raise ValueError(f"region codes must be in [0, {len(REGIONS)}) or {ignore_index}, found {int(r.max())}")
    p, g = pred[valid].astype(np.int64), gt[valid].astype(np.int64)
    fg = (p >= 1) & (p != ignore_index)
    outcome = np.where(p == g, 0, np.where(fg, 1, 2))
    outcome = np.where((g == 0) & fg, 1, outcome)  # background predicted as a class: "other class"
    return np.bincount(r * 3 + outcome, minlength=len(REGIONS) * 3).reshape(len(REGIONS), 3)


def region_scores(counts: np.ndarray) -> dict[str, float]:
    """Recall of the part, near-body and far-body pixels (predicted as their own class), and the false-positive
    rate (predicted as any class) of context and plain backgrounds; fractions, NaN for an empty region."""
    counts = np.asarray(counts, dtype=np.float64)

    def share(region: str, outcome: int) -> float:
        row = counts[REGIONS[region]]
        total = row.sum()
        return float(row[outcome] / total) if total else float("nan")

    return {"part_recall": share("part", 0), "near_body_recall": share("near_body", 0),
            "far_body_recall": share("far_body", 0), "context_fp": share("context_background", 1),
            "plain_bg_fp": share("plain_background", 1)}


def load_region_map(voc_root: str | Path, image_id: str) -> np.ndarray | None:
    """``<voc_root>/SegmentationRegion/<image_id>.png`` as uint8, or ``None`` when the dataset has no region
    annotation at all (no such folder). A missing file in an existing folder is an error naming it."""
    from PIL import Image

    folder = Path(voc_root) / REGION_DIR
    if not folder.is_dir():
        return None
    path = folder / f"{image_id}.png"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: region annotation missing (the folder exists, so every image needs one)")
    return np.asarray(Image.open(path))


def cam_region_counts(cam_dir: str | Path, dataset, threshold: float, progress: bool = True) -> np.ndarray | None:
    """:func:`region_counts` summed over ``dataset`` (VOC layout, ``dataset.root`` = the ``VOC2012`` folder) for
    the CAM files of ``cam_dir`` labelled at background ``threshold`` (as the sweep labels them); ``None`` when the
    dataset has no region annotation."""
    from wsss_lib.evaluation.sweep import labels_from_cams
    from wsss_lib.formats.cam_io import cam_path, load_cam
    from wsss_lib.io.progress import tqdm

    root = getattr(dataset, "root", None)
    if root is None or not (Path(root) / REGION_DIR).is_dir():
        return None
    total = np.zeros((len(REGIONS), 3), dtype=np.int64)
    for image_id in tqdm(list(dataset.ids), desc="region scores", disable=not progress):
        path = cam_path(cam_dir, image_id)
        pred = labels_from_cams(load_cam(path), threshold)
        gt = np.asarray(dataset.load_mask(image_id))
        try:
            total += region_counts(pred, gt, load_region_map(root, image_id))
        except ValueError as err:
            raise ValueError(f"{path} (image {image_id!r}): {err}") from err
    return total


def label_prior_loss(labels: np.ndarray, label_smoothing: float = 0.0) -> float:
    """The classification loss (mean over classes of the binary cross-entropy, as
    ``multilabel_soft_margin_loss``) of a predictor that ignores the image and outputs each class's frequency in
    ``labels`` (``N x C`` multi-hot, targets smoothed as the methods smooth them: ``(1 - a) y + a / 2``). A
    classifier whose training loss is not well below this has learned little beyond the label distribution."""
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty N x C array, got shape {y.shape}")
    y = (1.0 - label_smoothing) * y + label_smoothing / 2.0
    p = np.clip(y.mean(axis=0), 1e-12, 1 - 1e-12)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
