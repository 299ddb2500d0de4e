"""Notebook 11's tables: every priors method under one protocol (TTA mIoU, threshold robustness) and the literature
values of each method's own paper beside them, kept in a separate frame."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from wsss_lib.reporting.literature import load_literature
from wsss_lib.reporting.priors_report import method_table
from wsss_lib.stages.priors import PriorsRun, paper_label

__all__ = ["threshold_robustness", "literature_priors_table", "ours_table", "PNOC_TABLE3_COLUMNS"]

PNOC_TABLE3_COLUMNS = {"CAM": "CAM", "CSE": "OC-CSE", "P": "P", "POC": "P-OC+LS", "PNOC": "P-NOC+LS"}
"""Method columns of the P-NOC paper's Table 3 and our labels for them."""


def threshold_robustness(curves: Mapping[str, pd.DataFrame], margin: float = 0.10, tolerance: float = 5.0) -> pd.DataFrame:
    """How much each method's mIoU depends on the background threshold (AMN's claim), from its sweep curve.

    Columns: best mIoU (%) and its threshold; the mIoU ``margin`` below and above the best threshold (nearest swept
    thresholds); the largest drop among those two; and the width of the threshold range whose mIoU stays within
    ``tolerance`` points of the best (wider = more robust)."""
    rows = []
    for label, curve in curves.items():
        t = curve["threshold"].to_numpy()
        miou = 100 * curve["miou"].to_numpy()
        best = int(np.argmax(miou))
        near = lambda target: miou[int(np.argmin(np.abs(t - target)))]  # noqa: E731
        low, high = near(t[best] - margin), near(t[best] + margin)
        within = t[miou >= miou[best] - tolerance]
        rows.append({"method": label, "best mIoU (%)": miou[best], "best threshold": t[best],
                     f"mIoU at best-{margin:g}": low, f"mIoU at best+{margin:g}": high,
                     "largest drop (points)": miou[best] - min(low, high),
                     f"range within {tolerance:g} points": float(within.max() - within.min())})
    return pd.DataFrame(rows)


def literature_priors_table(methods: Sequence[str] | None = None) -> pd.DataFrame:
    """VOC 2012 train priors mIoU (%) from the literature: the P-NOC paper's Table 3 overall row (ResNeSt-269) for
    CAM, OC-CSE, P, P-OC+LS, P-NOC+LS, and the comparators' values (``comparators_voc_train_priors.csv``)."""
    table3 = load_literature("pnoc_table3_class_groups")
    overall = table3[(table3["family"] == "Overall") & (table3["group"] == "all")].iloc[0]
    rows = [{"method": ours, "backbone": "ResNeSt-269", "priors mIoU (%)": float(overall[col]),
             "source": overall["source"]} for col, ours in PNOC_TABLE3_COLUMNS.items()]
    comparators = load_literature("comparators_voc_train_priors")
    rows += [{"method": r["method"] if r["method"] != "OC-CSE" else "OC-CSE (ACR slides)", "backbone": r["backbone"],
              "priors mIoU (%)": r["seed_miou"], "source": r["source"]} for _, r in comparators.iterrows()]
    frame = pd.DataFrame(rows)
    if methods is not None:  # our labels may carry a recipe note ("P-NOC+LS (OC lr 0.1x)"): the paper's name
        frame = frame[frame["method"].str.split(" ").str[0].isin([paper_label(m) for m in methods])]
    return frame.reset_index(drop=True)


def ours_table(runs: Sequence[PriorsRun]) -> pd.DataFrame:
    """One row per method: :func:`wsss_lib.reporting.priors_report.method_table` (TTA mIoU mean and SD over seeds at
    the oracle threshold, FPR, FNR, the pathology columns) and the notebook that ran it."""
    table = method_table(runs)
    notebooks = {run.label: run.notebook for run in runs}
    table["notebook"] = [notebooks[label] for label in table["method"]]
    return table
