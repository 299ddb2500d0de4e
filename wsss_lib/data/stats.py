"""Class properties and class-group statistics (the property columns and the rho block of Table 1).

Per foreground class ``c``, over the images of a split (streaming over the masks, one pass):

- ``O``  (occurrence): number of images whose mask contains ``c``;
- ``%S`` (average relative size): mean, over the images containing ``c``, of the fraction of the image's
  pixels labelled ``c``. The denominator is a documented switch: ``"all"`` (every pixel, default) or
  ``"valid"`` (pixels not labelled 255); the paper does not say which it used;
- ``%C`` (co-occurrence rate): fraction of the images containing ``c`` that contain another class too;
- ``L``  (label cardinality): mean number of classes in the label sets of the images containing ``c``.

The background row reports ``%S`` only (as in the paper's Table 1). Group rows average the per-class values
of their members; ``property_correlations`` gives Pearson's rho between properties (and any extra per-class
columns such as a method's IoU) across classes, in percent, as the paper prints it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from wsss_lib.formats.masks import IGNORE_INDEX
from wsss_lib.io.progress import tqdm

__all__ = ["LabelStatistics", "collect_label_statistics", "class_statistics", "group_statistics",
           "property_correlations", "tertile_groups", "PROPERTY_COLUMNS"]

PROPERTY_COLUMNS = ("O", "%S", "%C", "L")


@dataclass(frozen=True)
class LabelStatistics:
    """What one pass over the masks collects: presence and relative size of every class in every image."""

    class_names: tuple[str, ...]
    presence: np.ndarray  # (N, C) bool, column 0 = background
    fraction: np.ndarray  # (N, C) float64, fraction of the image's pixels (per the denominator)
    size_denominator: str

    @property
    def num_images(self) -> int:
        return int(self.presence.shape[0])


def collect_label_statistics(dataset, *, size_denominator: Literal["all", "valid"] = "all",
                             workers: int = 4, progress: bool = True) -> LabelStatistics:
    """One streaming pass over ``dataset``'s masks (``dataset.ids``, ``dataset.load_mask``)."""
    if size_denominator not in ("all", "valid"):
        raise ValueError(f"size_denominator must be 'all' or 'valid', got {size_denominator!r}")
    num_classes = dataset.num_classes

    def one(image_id: str) -> tuple[np.ndarray, np.ndarray]:
        counts = np.bincount(dataset.load_mask(image_id).ravel(), minlength=256).astype(np.float64)
        total = counts.sum() if size_denominator == "all" else counts.sum() - counts[IGNORE_INDEX]
        return counts[:num_classes] > 0, counts[:num_classes] / max(total, 1.0)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(tqdm(pool.map(one, dataset.ids), total=len(dataset.ids), disable=not progress,
                         desc="class statistics"))
    presence = np.stack([r[0] for r in rows])
    fraction = np.stack([r[1] for r in rows])
    return LabelStatistics(tuple(dataset.class_names), presence, fraction, size_denominator)


def class_statistics(stats: LabelStatistics) -> pd.DataFrame:
    """One row per class (background first): ``class, O, %S, %C, L`` (percentages in 0..100)."""
    fg = stats.presence[:, 1:]
    cardinality = fg.sum(axis=1)  # label-set size of each image
    rows = []
    for c, name in enumerate(stats.class_names):
        has = stats.presence[:, c]
        n = int(has.sum())
        row = {"class": name, "O": float(n), "%S": 100.0 * stats.fraction[has, c].mean() if n else np.nan}
        if c == 0:
            row.update({"O": np.nan, "%C": np.nan, "L": np.nan})
        else:
            row["%C"] = 100.0 * (cardinality[has] > 1).mean() if n else np.nan
            row["L"] = float(cardinality[has].mean()) if n else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["class", *PROPERTY_COLUMNS])


def group_statistics(per_class: pd.DataFrame, groups: Mapping[str, Mapping[str, Sequence[str]]],
                     values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Average per-class properties (and ``values``' extra columns, e.g. IoU per method) over groups.

    ``groups`` maps a family ("Occurrence", "Size", "Group", ...) to named groups of class names. The
    first row is ``Overall``: properties averaged over the foreground classes, ``values`` over every class
    including background (the mIoU, as the paper's Table 3 "overall" row); the second ``Background`` (its
    ``%S`` and values).
    """
    table = per_class.set_index("class")
    if values is not None:
        table = table.join(values.set_index("class"), how="left")
    fg = [c for c in table.index if c != "background"]
    unknown = sorted({c for fam in groups.values() for members in fam.values() for c in members} - set(fg))
    if unknown:
        raise KeyError(f"class groups name unknown classes {unknown}; known: {fg}")
    value_cols = [c for c in table.columns if c not in PROPERTY_COLUMNS]
    overall = table.loc[fg].mean(numeric_only=True)
    if value_cols and "background" in table.index:
        # the paper's "overall" method scores are the usual mIoU: the mean over all classes, background included
        overall[value_cols] = table[value_cols].mean(numeric_only=True)
    rows = [{"family": "Overall", "group": "all", "classes": "all", **overall.to_dict()}]
    if "background" in table.index:
        bg = table.loc["background"]
        rows.append({"family": "Background", "group": "-", "classes": "-", "%S": bg["%S"],
                     **{c: bg[c] for c in value_cols}})
    for family, named in groups.items():
        for group, members in named.items():
            rows.append({"family": family, "group": group, "classes": " ".join(members),
                         **table.loc[list(members)].mean(numeric_only=True).to_dict()})
    return pd.DataFrame(rows, columns=["family", "group", "classes", *PROPERTY_COLUMNS, *value_cols])


def property_correlations(per_class: pd.DataFrame, values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pearson's rho (x100) between the class properties (rows) and properties + ``values`` (columns)."""
    table = per_class[per_class["class"] != "background"].set_index("class")[list(PROPERTY_COLUMNS)]
    if values is not None:
        table = table.join(values.set_index("class"), how="left")
    corr = 100.0 * table.astype(float).corr(method="pearson")
    return corr.loc[list(PROPERTY_COLUMNS)]


def tertile_groups(per_class: pd.DataFrame) -> dict[str, dict[str, tuple[str, ...]]]:
    """Data-driven Occurrence and Size groups (thirds of the classes ranked by ``O`` and ``%S``).

    Used where a dataset has no published grouping (COCO); always labelled as derived, not the paper's.
    """
    fg = per_class[per_class["class"] != "background"]
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for family, column, labels in (("Occurrence", "O", ("Low freq.", "Mid freq.", "High freq.")),
                                   ("Size", "%S", ("Small", "Mid", "Large"))):
        ranked = fg.sort_values([column, "class"])["class"].tolist()
        parts = np.array_split(np.arange(len(ranked)), 3)
        out[family] = {label: tuple(sorted(ranked[i] for i in part)) for label, part in zip(labels, parts)}
    return out
