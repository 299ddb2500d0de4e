"""The real run's plan, derived from a dry run: what ``make reproduce PROFILE=<profile>`` will train, and what it costs.

A dry run executes every notebook with capped parameters (:mod:`wsss_lib.dry_run`); each training stage it trains
appends one record to ``work/<profile>-dry/plan-records.jsonl`` (its notebook, stage, key, method, backbone,
training split and capped recipe; ``wsss_lib.stages.training``). :func:`build_plan` turns every record back into
the stage the real run trains, with the profile's values from the dry run's manifest (``dry_run_caps``: each capped
parameter's profile and dry-run value):

- the stage dict that feeds a training stage's recipe is named by :data:`STAGE_PARAMETERS` (per stage kind; ACR's
  classifier: ``acr``), the recipe's fields by :data:`RECIPE_FIELDS` (epochs, batch, accumulation, crop, backbone:
  the dry run may swap it for a small one), as paths inside that dict. A field the dry run capped takes the
  profile's value; a self-check guards the table: the capped *dry-run* value must equal what the stage recorded,
  otherwise the row's check names the path (a test runs it);
- images per epoch: the real size of the training split (``VOC_SPLIT_SIZES``, ``COCO_SPLIT_SIZES``; COCO counts
  every image of the split, including the few without annotations that the CAM stages skip);
- optimizer steps: ``epochs * (images // (batch_size * accumulate_steps))``, or DeepLab-v2's ``iterations``;
- runs: the dry run keeps the first seed only, so a stage trained with that seed in a notebook whose ``seeds`` were
  capped runs once per seed of the profile, except the ordinary classifier (a CAM classifier with RandAugment), trained
  once;
- GPU hours: where ``reports/bench/cuda.csv`` (``make gpu-check``, :mod:`wsss_lib.bench.throughput`) holds a training figure for
  the stage's method, backbone and crop, ``images processed / images per s``, from the fastest measured setting;
  otherwise blank. Only the training stages are planned; per-image stages (TTA, CRF, random walk) are not.

The plan is written to ``reports/<profile>-dry/tables/plan.{csv,md}`` and printed at the end of the dry run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from wsss_lib.data.coco import COCO_SPLIT_SIZES
from wsss_lib.data.voc import VOC_SPLIT_SIZES

__all__ = ["STAGE_PARAMETERS", "RECIPE_FIELDS", "build_plan", "write_plan"]

STAGE_PARAMETERS: dict[str, str] = {"classifier": "classifier", "c2am": "c2am", "detector": "detector",
                                    "affinity": "affinity", "segmentation": "segmentation", "amn": "amn"}
"""Training stage kind -> the notebook's stage dict it is built from (ACR's classifier: ``acr``)."""

RECIPE_FIELDS: dict[str, str] = {"epochs": "train.epochs", "batch_size": "train.batch_size",
                                 "accumulate_steps": "optim.accumulate_steps", "crop": "augment.crop_size",
                                 "backbone": "backbone.name", "max_steps": "iterations"}
"""Recipe field -> its path inside the stage dict."""

_SPLIT_SIZES = {"voc": dict(VOC_SPLIT_SIZES), "coco": dict(COCO_SPLIT_SIZES)}


def _records(path: Path) -> list[dict[str, Any]]:
    """The records of ``path``, the latest per stage key, in the order the stages were first trained."""
    latest: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {number}: not a JSON plan record ({exc})") from exc
                latest[record["key"]] = record
    return list(latest.values())


def _gpu_figures(bench_csv: Path) -> pd.DataFrame:
    if not bench_csv.is_file():
        return pd.DataFrame(columns=["method", "backbone", "crop", "train_images_per_s"])
    frame = pd.read_csv(bench_csv)
    return frame[frame["train_images_per_s"].notna()] if "train_images_per_s" in frame else frame.iloc[:0]


def _used_keys(path: Path | None) -> list[str] | None:
    """The stage keys the dry run used, in order (``None`` without the file: every record counts)."""
    if path is None or not path.is_file():
        return None
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]
    return list(dict.fromkeys(keys))


def build_plan(records_path: Path, manifest: dict[str, Any], dataset: str, bench_csv: Path,
               used_path: Path | None = None) -> pd.DataFrame:
    """One row per training stage of the real run (see the module docstring): the records of the stages the dry
    run used (``used_path``; a record of a stage it did not use, left by an earlier dry run, is not planned)."""
    sizes = _SPLIT_SIZES.get(dataset, {})
    figures = _gpu_figures(bench_csv)
    caps: dict[str, dict[str, list]] = manifest.get("dry_run_caps", {})
    rows = []
    records = _records(records_path)
    used = _used_keys(used_path)
    if used is not None:
        by_key = {r["key"]: r for r in records}
        missing = [k for k in used if k not in by_key]
        if missing:
            raise ValueError(f"{records_path}: no record of the stage(s) {missing} this dry run used; delete "
                             f"{records_path.parent} and run the dry run again")
        records = [by_key[k] for k in used]
    for record in records:
        nb = record["notebook"]
        nb_caps = caps.get(nb, {})
        param = "acr" if record["method"] == "acr" else STAGE_PARAMETERS.get(record["stage"], record["stage"])
        checks = []
        recipe = {}
        for field, sub in RECIPE_FIELDS.items():
            recorded = record.get(field)
            path = f"{param}.{sub}"
            if path not in nb_caps:
                recipe[field] = recorded  # not capped: the real run trains with the stage's own value
                continue
            real_value, dry_value = nb_caps[path]
            if field == "max_steps" and not recorded:
                recipe[field] = 0  # an epoch-based stage whose config also has iterations
                continue
            if dry_value != recorded:
                checks.append(f"{path}: dry run {dry_value!r}, stage {recorded!r}")
            recipe[field] = real_value
        recipe["max_steps"] = recipe.get("max_steps") or 0
        if record["split"] not in sizes:
            checks.append(f"training split {record['split']!r} has no known size in {dataset!r}: the dry run's "
                          f"{record['images']} images are shown")
        images = sizes.get(record["split"], record["images"])
        step_images = int(recipe["batch_size"]) * int(recipe.get("accumulate_steps") or 1)
        steps_per_epoch = images // step_images
        steps = int(recipe["max_steps"]) if recipe.get("max_steps") else int(recipe["epochs"]) * steps_per_epoch
        seeds_cap = nb_caps.get("seeds")
        ordinary = record["method"] == "cam" and record["randaugment"]  # the ordinary classifier: trained once
        runs = len(seeds_cap[0]) if seeds_cap and record["seed"] == seeds_cap[1][0] and not ordinary else 1
        processed = steps * step_images * runs
        match = figures.iloc[:0]  # the bench times the priors methods' training steps only
        if record["stage"] == "classifier" and len(figures):
            match = figures[(figures["method"] == record["method"]) & (figures["backbone"] == recipe["backbone"])
                            & (figures["crop"] == recipe["crop"])]
        rate = float(match["train_images_per_s"].max()) if len(match) else float("nan")
        rows.append({
            "notebook": nb, "stage": record["stage"], "runs": runs,
            "run": record["name"].rsplit("-", 1)[0].replace(f"-{record['backbone']}-", f"-{recipe['backbone']}-"),
            "backbone": recipe["backbone"], "crop": recipe["crop"], "split": record["split"], "images": images,
            "epochs": recipe["epochs"] if not recipe.get("max_steps") else "", "batch": step_images,
            "steps_per_run": steps, "images_processed": processed,
            "gpu_images_per_s": rate, "gpu_hours": processed / rate / 3600 if rate == rate else float("nan"),
            "check": "; ".join(checks) or "ok",
        })
    return pd.DataFrame(rows)


def write_plan(work_dir: Path, reports_dir: Path, manifest: dict[str, Any], dataset: str,
               bench_csv: Path) -> pd.DataFrame:
    """Build the plan of a dry run and write ``reports_dir/tables/plan.{csv,md}``; returns it."""
    from wsss_lib.stages.training import PLAN_RECORDS, PLAN_USED

    plan = build_plan(work_dir / PLAN_RECORDS, manifest, dataset, bench_csv, work_dir / PLAN_USED)
    tables = reports_dir / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    plan.to_csv(tables / "plan.csv", index=False)
    hours = plan["gpu_hours"].sum(min_count=1) if len(plan) else float("nan")
    caption = (f"The real run's training plan, derived from this dry run (wsss_lib.plan): {len(plan)} training "
               f"stages, {int(plan['runs'].sum()) if len(plan) else 0} runs, "
               f"{int(plan['images_processed'].sum()) if len(plan) else 0:,} images processed. GPU hours: "
               + (f"{hours:.1f} where {bench_csv.name} has a figure" if hours == hours else
                  f"no GPU figure in {bench_csv} (run make gpu-check on a GPU machine)")
               + ". Per-image stages are not planned.")
    (tables / "plan.md").write_text(f"{caption}\n\n{plan.to_markdown(index=False, floatfmt='.2f')}\n")
    return plan
