"""Tables of notebook 10: the state of the art on VOC and COCO (Tables 8 and 9) and the COCO priors per epoch
and per class (Tables 4 and 5), in the paper's layout.

Literature rows come from ``reports/literature/`` and say so in their ``numbers from`` column; our rows come
from this profile's recorded runs (notebooks 01-05 and 09) and name the profile, dataset and split that produced
them. A row of the paper's own method with no run in this profile is listed with "no run yet" and no number.
Nothing measured elsewhere is ever written into one of our rows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from wsss_lib.data import dataset_family
from wsss_lib.evaluation.seeds import mean_sd
from wsss_lib.reporting.literature import load_literature
from wsss_lib.reporting.priors_report import class_iou_frame, epoch_table
from wsss_lib.stages.priors import PriorsRun
from wsss_lib.stages.segmentation import GROUND_TRUTH, RecordedSegmentation

__all__ = ["TABLE_DATASETS", "sota_table", "since_paper_table", "priors_epoch_table", "priors_class_table", "literature_epochs_wide",
           "literature_class_table"]

TABLE_DATASETS = {"table8": ("voc", "synthetic"), "table9": ("coco",)}
"""Which datasets' runs fill our rows of each table: Table 8 takes VOC and the synthetic benchmark (which has
VOC's layout and protocol, every preset; its rows name the preset), Table 9 takes COCO."""

_LITERATURE = {"table8": "pnoc_table8_voc_sota", "table9": "pnoc_table9_coco_sota"}


def _ours(records: Sequence[RecordedSegmentation], profile: str) -> dict[str, Any]:
    """Our row of one training source and model: the mean over its seeds' runs, with their SD and count."""
    record = records[0]
    mean, sd = mean_sd([r.miou for r in records])
    return {"method": record.source, "supervision": record.supervision, "backbone": record.backbone,
            "seg_model": record.model, "val": mean, "val SD": sd, "seeds": len(records), "test": np.nan,
            "numbers from": f"this code: profile {profile}, {record.dataset} {record.eval_split}",
            "note": (f"test split exported for the evaluation server ({record.test_export}); its score comes "
                     "from the server" if record.test_export else "")}


def _grouped(records: Sequence[RecordedSegmentation]) -> list[list[RecordedSegmentation]]:
    """Records by (source, model, dataset, evaluation split), in order of appearance: one row of ours each."""
    groups: dict[tuple, list[RecordedSegmentation]] = {}
    for r in records:
        groups.setdefault((r.source, r.model, r.dataset, r.eval_split), []).append(r)
    return list(groups.values())


def sota_table(table: str, records: Sequence[RecordedSegmentation], expected: Sequence[Sequence[str]],
               profile: str) -> pd.DataFrame:
    """Table 8 (``table="table8"``) or 9 (``"table9"``): the literature rows, then ours.

    ``records``: segmentation run records (``load_segmentation_runs``); only those of the table's datasets
    (:data:`TABLE_DATASETS`) are used, one row per training source and model: the mean over its seeds (``Val``),
    their SD (``Val SD``) and count (``seeds``). ``expected``: ``[training source, "V2" | "V3+"]`` pairs that should have a
    row of ours (the paper's own rows); those without a run are listed as "no run yet". Every other matching
    run is added after them.
    """
    if table not in _LITERATURE:
        raise ValueError(f"table must be one of {sorted(_LITERATURE)}, got {table!r}")
    literature = load_literature(_LITERATURE[table])
    rows = [{**{k: lit.get(k, np.nan) for k in ("method", "supervision", "backbone", "seg_model", "val", "test")},
             "numbers from": f"literature: {lit['source']}" + (f"; {lit['citation']}" if isinstance(lit.get("citation"), str) else ""),
             "note": " ".join(str(lit[k]) for k in ("pretraining", "server_report")
                              if k in lit and isinstance(lit[k], str))}
            for lit in literature.to_dict("records")]
    ours = _grouped([r for r in records if dataset_family(r.dataset) in TABLE_DATASETS[table]])
    used: set[int] = set()
    for source, model in expected:
        match = [i for i, g in enumerate(ours) if g[0].source == source and g[0].model == model]
        if match:
            used.update(match)
            rows.extend(_ours(ours[i], profile) for i in match)
        else:
            rows.append({"method": source, "supervision": "F" if source == GROUND_TRUTH else "I", "backbone": "",
                         "seg_model": model, "val": np.nan, "test": np.nan,
                         "numbers from": f"this code: no run yet in profile {profile}", "note": ""})
    rows.extend(_ours(g, profile) for i, g in enumerate(ours) if i not in used)
    frame = pd.DataFrame(rows)
    for column in ("val SD", "seeds"):  # ours only; literature rows have none
        if column not in frame:
            frame[column] = np.nan
    frame = frame[["method", "supervision", "backbone", "seg_model", "val", "val SD", "seeds", "test", "numbers from",
                   "note"]]
    return frame.rename(columns={"supervision": "Sup.", "seg_model": "Seg.", "val": "Val", "val SD": "Val SD",
                                 "test": "Test"})


_SINCE = {"table8": ("voc_val", "voc_test"), "table9": ("coco_val",)}


def since_paper_table(table: str) -> pd.DataFrame:
    """The methods published since the P-NOC paper (``reports/literature/wsss_since_pnoc.csv``), in the layout of
    Table 8 (VOC 2012 val/test) or 9 (COCO 2014 val): literature only, each row with its source, backbone,
    segmentation model and pretraining (CLIP, DINOv2, ImageNet-21k rows are not comparable with ImageNet-1k ones);
    rows without a number for the table are left out. Kept apart from Tables 8 and 9 and from every measured row."""
    if table not in _SINCE:
        raise ValueError(f"table must be one of {sorted(_SINCE)}, got {table!r}")
    lit = load_literature("wsss_since_pnoc")
    columns = list(_SINCE[table])
    lit = lit[lit[columns].notna().any(axis=1)]
    names = {"voc_val": "Val", "voc_test": "Test", "coco_val": "Val"}
    frame = lit[["method", "supervision", "backbone", "seg_model", *columns, "pretraining", "venue"]].copy()
    frame["numbers from"] = "literature: " + lit["source"] + "; " + lit["citation"]
    return frame.rename(columns={**names, "supervision": "Sup.", "seg_model": "Seg."}).reset_index(drop=True)


def priors_epoch_table(runs: Sequence[PriorsRun], dataset: str, profile: str) -> pd.DataFrame:
    """Table 4's layout for this profile's priors runs: quick mIoU (%) after each epoch and the TTA mIoU."""
    table = epoch_table(runs)
    splits = {r.label: r.split for r in runs}
    table["numbers from"] = [f"this code: profile {profile}, {dataset}; TTA on {splits[m]}" for m in table["method"]]
    return table


def literature_epochs_wide() -> pd.DataFrame:
    """Table 4 as printed (COCO 2014: epochs on train, TTA on val; literature), one row per strategy."""
    lit = load_literature("pnoc_table4_coco_epochs")
    wide = lit.pivot_table(index="strategy", columns="epoch", values="miou", sort=False)
    epochs = sorted((c for c in wide.columns if c != "TTA"), key=int)
    wide = wide[epochs + ["TTA"]].rename(columns={c: f"E{c}" for c in epochs})
    wide["numbers from"] = "literature: " + lit.groupby("strategy", sort=False)["source"].first()
    return wide.reset_index().rename(columns={"strategy": "method"})


def priors_class_table(runs: Sequence[PriorsRun]) -> pd.DataFrame:
    """Table 5's layout: per-class IoU (%) of each priors method at its oracle threshold, and the overall mean."""
    frame = class_iou_frame(runs)
    overall = {"class": "overall", **{c: float(np.nanmean(frame[c])) for c in frame.columns if c != "class"}}
    return pd.concat([frame, pd.DataFrame([overall])], ignore_index=True)


def literature_class_table() -> pd.DataFrame:
    """Table 5 as printed (COCO 2014 val per-class IoU of the priors; literature)."""
    return load_literature("pnoc_table5_coco_class_iou")
