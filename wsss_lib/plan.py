"""The real run's plan, derived from a dry run: what ``make reproduce PROFILE=<profile>`` will train, and what it costs.

A dry run executes every notebook with capped parameters (:mod:`wsss_lib.dry_run`); each training stage it trains
appends one record to ``work/<profile>-dry/plan-records.jsonl`` (its notebook, stage, key, method, backbone,
training split and capped recipe; ``wsss_lib.stages.training``). :func:`build_plan` turns every record back into
the stage the real run trains, with the profile's values from the dry run's manifest (``dry_run_caps``: each capped
parameter's profile and dry-run value):

- the notebook parameters that feed a stage's recipe (epochs, batch, accumulation, crop, backbone: the dry run may
  swap it for a small one) are named in :data:`RECIPE_PARAMETERS` (per stage kind; ACR's classifier reads its
  ``acr_overrides`` first). A self-check guards the table: each named parameter's *dry-run*
  value must equal what the stage recorded, otherwise the row says ``mapping check failed`` (a test runs it);
- images per epoch: the real size of the training split (``VOC_SPLIT_SIZES``, ``COCO_SPLIT_SIZES``; COCO counts
  every image of the split, including the few without annotations that the CAM stages skip);
- optimizer steps: ``epochs * (images // (batch_size * accumulate_steps))``, or DeepLab-v2's ``iterations``;
- runs: the dry run keeps the first seed only, so a stage trained with that seed in a notebook whose ``seeds`` were
  capped runs once per seed of the profile, except the ordinary classifier (``ordinary_seed``, RandAugment), trained
  once;
- GPU hours: where ``reports/bench/cuda.csv`` (``make gpu-check``, :mod:`wsss_lib.bench`) holds a training figure for
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

__all__ = ["RECIPE_PARAMETERS", "build_plan", "write_plan"]

_PRIORS = {"epochs": "epochs", "batch_size": "batch_size", "accumulate_steps": "accumulate_steps", "crop": "crop_size",
           "backbone": "backbone"}
RECIPE_PARAMETERS: dict[str, dict[str, str]] = {
    "classifier": _PRIORS,
    "c2am": _PRIORS,
    "detector": {"epochs": "detector_epochs", "batch_size": "detector_batch_size",
                 "accumulate_steps": "detector_accumulate_steps", "crop": "detector_crop_size",
                 "backbone": "detector_backbone"},
    "affinity": _PRIORS,
    "segmentation": {**_PRIORS, "max_steps": "iterations"},
    "amn": {"epochs": "amn_epochs", "batch_size": "amn_batch_size", "crop": "amn_crop_size", "backbone": "backbone"},
}
"""Stage kind -> recipe field -> the notebook parameter it comes from."""

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


def build_plan(records_path: Path, manifest: dict[str, Any], dataset: str, bench_csv: Path) -> pd.DataFrame:
    """One row per training stage of the real run (see the module docstring)."""
    sizes = _SPLIT_SIZES.get(dataset, {})
    figures = _gpu_figures(bench_csv)
    caps: dict[str, dict[str, list]] = manifest.get("dry_run_caps", {})
    rows = []
    for record in _records(records_path):
        nb = record["notebook"]
        dry = dict((manifest.get("notebooks", {}).get(nb) or {}).get("parameters", {}))
        real = {**dry, **{name: values[0] for name, values in caps.get(nb, {}).items()}}
        fields = dict(RECIPE_PARAMETERS.get(record["stage"], {}))
        checks = []
        recipe = {}
        overrides_dry, overrides_real = {}, {}
        if record["method"] == "acr":
            overrides_dry, overrides_real = dict(dry.get("acr_overrides") or {}), dict(real.get("acr_overrides") or {})
        for field, param in fields.items():
            recorded = record.get(field)
            name = "crop_size" if field == "crop" else field
            if name in overrides_dry or param in dry:
                dry_value = overrides_dry.get(name, dry.get(param))
                real_value = overrides_real.get(name, real.get(param))
                if field == "max_steps" and not recorded:
                    continue  # an epoch-based stage of a notebook that also has iterations
                if dry_value != recorded and not (field == "max_steps" and int(dry_value or 0) == recorded):
                    checks.append(f"{param}: dry run {dry_value!r}, stage {recorded!r}")
                recipe[field] = real_value
            else:
                recipe[field] = recorded  # not a notebook parameter here: the stage's own value, uncapped
        for field in ("epochs", "batch_size", "accumulate_steps", "crop", "backbone"):
            recipe.setdefault(field, record.get(field))
        recipe.setdefault("max_steps", record.get("max_steps", 0))
        if record["split"] not in sizes:
            checks.append(f"training split {record['split']!r} has no known size in {dataset!r}: the dry run's "
                          f"{record['images']} images are shown")
        images = sizes.get(record["split"], record["images"])
        step_images = int(recipe["batch_size"]) * int(recipe.get("accumulate_steps") or 1)
        steps_per_epoch = images // step_images
        steps = int(recipe["max_steps"]) if recipe.get("max_steps") else int(recipe["epochs"]) * steps_per_epoch
        seeds_cap = caps.get(nb, {}).get("seeds")
        ordinary = record["method"] == "cam" and record["randaugment"] and record["seed"] == real.get("ordinary_seed")
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
    from wsss_lib.stages.training import PLAN_RECORDS

    plan = build_plan(work_dir / PLAN_RECORDS, manifest, dataset, bench_csv)
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
