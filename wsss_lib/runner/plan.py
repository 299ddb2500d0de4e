"""The real run's plan, derived from a dry run: what ``make reproduce PROFILE=<profile>`` will train, and what it costs.

A dry run executes every notebook with capped parameters (:mod:`wsss_lib.runner.dry_run`); each training stage it trains
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
  the stage's method, backbone and crop, ``images processed / images per s``, from the setting the stage trains with
  (its ``train.amp`` and ``train.channels_last``, without ``torch.compile``, which training does not use); a record
  or a CSV without those columns (older ones) takes the fastest measured setting; otherwise blank.

Per-image stages (``kind = "images"`` records: TTA CAMs, saliency maps, affinity labels, the random walk,
pseudo-masks, segmentation predictions, sweeps and scores, the VOC export) become :func:`build_image_plan`'s rows:
the real split's size (the dry run's fixtures are small), the profile's TTA scales restored from the caps
(:data:`IMAGE_SCALES`, with the same self-check: the capped value must be what the stage recorded), the profile's
backbone where ``--small-backbones`` swapped it (a ``*.backbone.name`` cap whose dry-run value the record holds), the runs (one per
seed where the notebook's ``seeds`` were capped), and the cost per image from ``make bench-per-image`` rows
(:data:`IMAGE_COSTS`: each stage is a sum of measured parts, e.g. a segmentation prediction = the DeepLab TTA
forward + one CRF) at the dataset's typical image size (:data:`TYPICAL_IMAGE`): CPU hours for the CPU-bound parts
(CRF, file IO), GPU hours for the device parts from ``cuda.csv`` and, beside them, what the device parts would take
on this CPU (``cpu.csv``), and the peak memory of the parts. A stage over an hour gets the ``--shard`` command that
spreads it.

The plan is written to ``reports/<profile>-dry/tables/plan.{csv,md}`` (training), ``plan_images.{csv,md}``
(per-image stages) and ``plan_hours.{csv,md}`` (CPU and GPU hours per notebook and in total), and printed at the end
of the dry run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsss_lib.data.coco import COCO_SPLIT_SIZES
from wsss_lib.data.voc import VOC_SPLIT_SIZES

__all__ = ["STAGE_PARAMETERS", "RECIPE_FIELDS", "IMAGE_SCALES", "IMAGE_NETWORKS", "IMAGE_COSTS", "TYPICAL_IMAGE",
           "build_plan", "build_image_plan", "hours_table", "write_plan"]

STAGE_PARAMETERS: dict[str, str] = {"classifier": "classifier", "c2am": "c2am", "detector": "detector",
                                    "affinity": "affinity", "segmentation": "segmentation", "amn": "amn"}
"""Training stage kind -> the notebook's stage dict it is built from (ACR's classifier: ``acr``)."""

RECIPE_FIELDS: dict[str, str] = {"epochs": "train.epochs", "batch_size": "train.batch_size",
                                 "accumulate_steps": "optim.accumulate_steps", "crop": "augment.crop_size",
                                 "backbone": "backbone.name", "max_steps": "iterations"}
"""Recipe field -> its path inside the stage dict."""

_SPLIT_SIZES = {"voc": {**VOC_SPLIT_SIZES, "test": 1456}, "coco": dict(COCO_SPLIT_SIZES)}

TYPICAL_IMAGE: dict[str, str] = {"voc": "500x375", "coco": "640x480"}
"""The image size per-image costs are measured at (``make bench-per-image PER_IMAGE_ARGS="--image W H"``): the most common VOC size,
and COCO's."""

IMAGE_SCALES: dict[str, str] = {"cams": "tta", "saliency": "tta", "seg_predictions": "inference"}
"""Per-image stage kind -> the notebook's stage dict whose ``scales`` its TTA ran with (the dry run caps them)."""

DEVICE_PARTS = ("tta", "seg", "affinity", "walk", "train")
"""Parts of a per-image stage that run on the device (GPU hours where one runs them); the others (``crf``, ``io``)
run on the CPU."""


def _tta_part(record: dict[str, Any]) -> tuple[str, dict[str, Any], float]:
    return "tta", {"backbone": record.get("backbone"), "scales": record.get("scales"), "flip": record.get("flip")}, 1.0


def _costs(record: dict[str, Any]) -> list[tuple[str, dict[str, Any], float]]:
    stage, crf, crfs = record["stage"], record.get("crf") or "", float(record.get("crfs") or 0)
    if stage == "cams" and record.get("rib_steps"):  # RIB: per image, steps of (batch + the image) trained at crop
        return [_tta_part(record), ("train", {"method": "cam", "backbone": record.get("backbone"),
                                              "crop": record.get("crop")},
                                    float(record["rib_steps"]) * (float(record.get("rib_batch") or 0) + 1))]
    if stage in ("cams", "saliency"):
        return [_tta_part(record), ("io", {}, 1.0)]
    if stage == "rw":
        return [("affinity", {"backbone": record.get("backbone"), "flip": record.get("flip")}, 1.0),
                ("walk", {"radius": record.get("radius"), "exp_times": record.get("exp_times")}, 1.0), ("io", {}, 1.0)]
    if stage == "seg_predictions":
        return ([("seg", {"backbone": record.get("backbone"), "head": record.get("head"), "scales": record.get("scales"),
                          "flip": record.get("flip")}, 1.0), ("io", {}, 1.0)]
                + ([("crf", {"crf": crf}, crfs)] if crf else []))
    if stage == "sweeps":
        return [("io", {}, 1.0)] + ([("crf", {"crf": crf}, float(record.get("thresholds") or 1))] if crf else [])
    if crf and crfs:  # affinity labels, pseudo-masks, pseudo-saliency
        return [("io", {}, 1.0), ("crf", {"crf": crf}, crfs)]
    return [("io", {}, 1.0)]  # scores, regions, the VOC export, a CRF-free labelling


IMAGE_COSTS = _costs
"""``IMAGE_COSTS(record)``: the parts of a per-image stage, each ``(bench part, the fields its bench row must match,
how many per image)``."""


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


def _same_setting(figures: pd.DataFrame, record: dict[str, Any]) -> pd.DataFrame:
    """The figures measured in the setting the stage trains with: its precision and layout, no ``torch.compile``
    (training has no such switch). Unchanged where the record or the CSV does not say (older files): the caller then
    takes the fastest."""
    columns = ("amp", "channels_last", "compile")
    if record.get("amp") is None or record.get("channels_last") is None or not set(columns) <= set(figures):
        return figures
    wanted = {"amp": record["amp"], "channels_last": bool(record["channels_last"]), "compile": False}
    keep = np.ones(len(figures), dtype=bool)
    for column, value in wanted.items():
        keep &= (figures[column].map(_as_text) == _as_text(value)).to_numpy()
    return figures[keep]


def _used_keys(path: Path | None) -> list[str] | None:
    """The stage keys the dry run used, in order (``None`` without the file: every record counts)."""
    if path is None or not path.is_file():
        return None
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]
    return list(dict.fromkeys(keys))


def _used_records(records_path: Path, used_path: Path | None) -> list[dict[str, Any]]:
    """The records of the stages the dry run used (``used_path``), in order; every record without that file."""
    records = _records(records_path)
    used = _used_keys(used_path)
    if used is None:
        return records
    by_key = {r["key"]: r for r in records}
    missing = [k for k in used if k not in by_key]
    if missing:
        raise ValueError(f"{records_path}: no record of the stage(s) {missing} this dry run used; delete "
                         f"{records_path.parent} and run the dry run again")
    return [by_key[k] for k in used]


def build_plan(records_path: Path, manifest: dict[str, Any], dataset: str, bench_csv: Path,
               used_path: Path | None = None) -> pd.DataFrame:
    """One row per training stage of the real run (see the module docstring): the records of the stages the dry
    run used (``used_path``; a record of a stage it did not use, left by an earlier dry run, is not planned)."""
    sizes = _SPLIT_SIZES.get(dataset, {})
    figures = _gpu_figures(bench_csv)
    caps: dict[str, dict[str, list]] = manifest.get("dry_run_caps", {})
    rows = []
    records = [r for r in _used_records(records_path, used_path) if r.get("kind", "training") == "training"]
    for record in records:
        nb = record["notebook"]
        nb_caps = caps.get(nb, {})
        param = record.get("parameter") or ("acr" if record["method"] == "acr"
                                            else STAGE_PARAMETERS.get(record["stage"], record["stage"]))
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
            match = _same_setting(match, record)
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


def _bench_rows(path: Path) -> pd.DataFrame:
    """The per-image rows of a bench CSV (``make bench-per-image``; column ``part``), or none."""
    if not path.is_file():
        return pd.DataFrame(columns=["part"])
    frame = pd.read_csv(path)
    return frame[frame["part"].notna()] if "part" in frame else frame.iloc[:0].assign(part=[])


def _as_text(value: Any) -> str:
    """A recipe or bench value as compared (``scales`` "0.5,1,1.5,2", a number "5", a flag "True"): the bench CSV
    holds numbers, flags and lists as text or floats, the records as JSON values."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{float(v):g}" for v in value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return "" if value is None or value != value else str(value)


def _figure(rows: pd.DataFrame, part: str, match: dict[str, Any], image: str) -> dict[str, float] | None:
    """The fastest bench row of ``part`` at ``image`` whose fields equal ``match`` (``None`` without one)."""
    if part == "train":  # RIB's training steps: the training throughput rows of make bench / gpu-check
        return None
    found = rows[(rows["part"] == part) & (rows["image"].astype(str) == image)] if len(rows) else rows
    for field, value in match.items():
        if field in found:
            found = found[found[field].map(_as_text) == _as_text(value)]
        elif value not in (None, ""):
            return None
    if not len(found):
        return None
    best = found.sort_values("seconds_per_image").iloc[0]
    return {"seconds": float(best["seconds_per_image"]), "peak_mb": float(best.get("peak_memory_mb", float("nan")))}


def _train_rate(figures: pd.DataFrame, match: dict[str, Any]) -> float:
    found = figures
    for field in ("method", "backbone", "crop"):
        if field in found and len(found):
            found = found[found[field].astype(str) == str(match.get(field))]
    return float(found["train_images_per_s"].max()) if len(found) else float("nan")


IMAGE_NETWORKS: dict[str, tuple[str, ...]] = {"cams": ("classifier", "acr", "amn"), "saliency": ("detector", "c2am"),
                                              "rw": ("affinity",), "seg_predictions": ("segmentation",)}
"""Per-image stage kind -> the stage dicts whose network it runs (where its backbone's cap is looked up)."""


def _profile_backbone(record: dict[str, Any], nb_caps: dict[str, list],
                      caps: dict[str, dict[str, list]]) -> tuple[str, str]:
    """The profile's backbone of a per-image record whose network the dry run built with another (a
    ``--small-backbones`` dry run swaps ResNeSt-269 for ResNeSt-14d): the profile value of a capped ``*.backbone.name``
    whose dry-run value is the record's, among the stage dicts of :data:`IMAGE_NETWORKS` (``segmentation`` covers
    ``segmentation_variants``), in the record's notebook, then in any notebook (notebook 08 runs the detector notebook
    07 trained); unchanged when no cap swapped it. Returns it and a problem (empty when none): two profile backbones
    behind one dry-run backbone in the first place that names any."""
    backbone, networks = record["backbone"], IMAGE_NETWORKS.get(record["stage"])
    everywhere = [(p, c) for nb in caps.values() for p, c in nb.items()]
    for scope in (list(nb_caps.items()), everywhere):
        found = {c[0] for p, c in scope if p.endswith("backbone.name") and c[1] == backbone
                 and (not networks or p.startswith(networks))}
        if len(found) == 1:
            return found.pop(), ""
        if found:
            return backbone, f"backbone {backbone!r} stands for {sorted(found)} in the dry run: costs of {backbone!r}"
    return backbone, ""


def build_image_plan(records_path: Path, manifest: dict[str, Any], dataset: str, cpu_csv: Path, cuda_csv: Path,
                     used_path: Path | None = None, profile: str = "") -> pd.DataFrame:
    """One row per per-image stage of the real run (see the module docstring)."""
    sizes = _SPLIT_SIZES.get(dataset, {})
    image = TYPICAL_IMAGE.get(dataset, "")
    caps: dict[str, dict[str, list]] = manifest.get("dry_run_caps", {})
    cpu, cuda = _bench_rows(cpu_csv), _bench_rows(cuda_csv)
    cpu_train, cuda_train = _gpu_figures(cpu_csv), _gpu_figures(cuda_csv)
    rows = []
    for record in _used_records(records_path, used_path):
        if record.get("kind") != "images":
            continue
        nb = record["notebook"]
        nb_caps = caps.get(nb, {})
        checks = []
        record = dict(record)
        if record["stage"] in IMAGE_SCALES and record.get("scales") is not None:
            path = f"{IMAGE_SCALES[record['stage']]}.scales"
            capped = nb_caps.get(path) or next((c for n, c in caps.items() for p, c in c.items()
                                                if p.endswith(".scales") and list(c[1]) == list(record["scales"])), None)
            if capped is not None:
                if list(capped[1]) != list(record["scales"]):
                    checks.append(f"{path}: dry run {capped[1]!r}, stage {record['scales']!r}")
                record["scales"] = capped[0]
        if record.get("backbone"):
            record["backbone"], problem = _profile_backbone(record, nb_caps, caps)
            checks += [problem] if problem else []
        if record["split"] not in sizes:
            checks.append(f"split {record['split']!r} has no known size in {dataset!r}: the dry run's "
                          f"{record['images']} images are shown")
        images = sizes.get(record["split"], record["images"])
        seeds_cap = nb_caps.get("seeds")
        runs = len(seeds_cap[0]) if seeds_cap else 1
        cpu_s = gpu_s = device_cpu_s = 0.0
        peak_cpu = peak_gpu = float("nan")
        missing_cpu, missing_gpu = [], []
        for part, match, count in IMAGE_COSTS(record):
            on_device = part in DEVICE_PARTS
            if part == "train":
                rate_cpu, rate_gpu = _train_rate(cpu_train, match), _train_rate(cuda_train, match)
                cpu_fig = {"seconds": 1 / rate_cpu, "peak_mb": float("nan")} if rate_cpu == rate_cpu else None
                gpu_fig = {"seconds": 1 / rate_gpu, "peak_mb": float("nan")} if rate_gpu == rate_gpu else None
            else:
                cpu_fig, gpu_fig = _figure(cpu, part, match, image), _figure(cuda, part, match, image)
            label = " ".join([part] + [_as_text(v) for v in match.values() if v not in (None, "")])
            if cpu_fig is None:
                missing_cpu.append(label)
            else:
                peak_cpu = max(peak_cpu, cpu_fig["peak_mb"]) if peak_cpu == peak_cpu else cpu_fig["peak_mb"]
                if on_device:
                    device_cpu_s += count * cpu_fig["seconds"]
                else:
                    cpu_s += count * cpu_fig["seconds"]
            if on_device:
                if gpu_fig is None:
                    missing_gpu.append(label)
                else:
                    gpu_s += count * gpu_fig["seconds"]
                    peak_gpu = max(peak_gpu, gpu_fig["peak_mb"]) if peak_gpu == peak_gpu else gpu_fig["peak_mb"]
        total = images * runs / 3600
        device = any(p in DEVICE_PARTS for p, _, _ in IMAGE_COSTS(record))
        missing_cpu_parts = [m for m in missing_cpu if m.split()[0] not in DEVICE_PARTS]
        missing_device_cpu = [m for m in missing_cpu if m.split()[0] in DEVICE_PARTS]
        cpu_hours = float("nan") if missing_cpu_parts else cpu_s * total
        gpu_hours = (float("nan") if missing_gpu else gpu_s * total) if device else 0.0
        without_gpu = (float("nan") if missing_device_cpu else device_cpu_s * total) if device else 0.0
        longest = max((h for h in (cpu_hours, gpu_hours) if h == h), default=float("nan"))
        if device and gpu_hours != gpu_hours:  # no GPU figure: the CPU figure says how long it can take
            longest = max(longest if longest == longest else 0.0, without_gpu if without_gpu == without_gpu else 0.0)
        shards = math.ceil(longest) if longest == longest and longest > 1 else 1
        notes = ([f"no CPU figure: {', '.join(missing_cpu)}"] if missing_cpu else []) + (
            [f"no GPU figure: {', '.join(missing_gpu)}"] if missing_gpu else [])
        rows.append({
            "notebook": nb, "stage": record["stage"], "run": record["name"].rsplit("-", 1)[0], "runs": runs,
            "split": record["split"], "images": images, "image": image,
            "parts": " + ".join(f"{c:g} {p}" if c != 1 else p for p, _, c in IMAGE_COSTS(record)),
            "cpu_hours": cpu_hours, "gpu_hours": gpu_hours, "cpu_hours_without_gpu": without_gpu,
            "peak_mb_cpu": peak_cpu, "peak_mb_gpu": peak_gpu,
            "shard": (f"--shard auto, SLURM array of {shards}: python -m wsss_lib.reproduce --profile {profile} "
                      f"--only {nb} --shard auto" if shards > 1 else ""),
            "cost": "; ".join(notes) or "measured", "check": "; ".join(checks) or "ok",
        })
    return pd.DataFrame(rows)


def hours_table(plan: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """CPU and GPU hours per notebook and in total: training (GPU), per-image stages (CPU-bound parts, device parts
    on a GPU, and the device parts on this CPU when no GPU runs them)."""
    notebooks = list(dict.fromkeys(list(plan.get("notebook", [])) + list(images.get("notebook", []))))
    rows = []
    for nb in notebooks:
        train = plan[plan["notebook"] == nb] if len(plan) else plan
        per_image = images[images["notebook"] == nb] if len(images) else images
        rows.append({"notebook": nb,
                     "training GPU h": train["gpu_hours"].sum(min_count=1) if len(train) else 0.0,
                     "per-image GPU h": per_image["gpu_hours"].sum(min_count=1) if len(per_image) else 0.0,
                     "per-image CPU h": per_image["cpu_hours"].sum(min_count=1) if len(per_image) else 0.0,
                     "device parts on this CPU h": (per_image["cpu_hours_without_gpu"].sum(min_count=1)
                                                    if len(per_image) else 0.0),
                     "unmeasured rows": int((train["gpu_hours"].isna()).sum() if len(train) else 0)
                     + int((per_image["cost"] != "measured").sum() if len(per_image) else 0)})
    frame = pd.DataFrame(rows)
    if len(frame):
        total = {"notebook": "total", **{c: frame[c].sum(min_count=1) for c in frame.columns if c != "notebook"}}
        frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    return frame


def write_plan(work_dir: Path, reports_dir: Path, manifest: dict[str, Any], dataset: str,
               bench_dir: Path, profile: str = "") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Build the plan of a dry run and write ``reports_dir/tables/plan{,_images,_hours}.{csv,md}``; returns the three
    tables (training, per-image stages, hours per notebook). ``bench_dir`` holds ``cpu.csv`` and ``cuda.csv``."""
    from wsss_lib.stages.planning import PLAN_RECORDS, PLAN_USED

    cpu_csv, cuda_csv = bench_dir / "cpu.csv", bench_dir / "cuda.csv"
    plan = build_plan(work_dir / PLAN_RECORDS, manifest, dataset, cuda_csv, work_dir / PLAN_USED)
    images = build_image_plan(work_dir / PLAN_RECORDS, manifest, dataset, cpu_csv, cuda_csv, work_dir / PLAN_USED,
                              profile=profile)
    hours = hours_table(plan, images)
    tables = reports_dir / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    plan.to_csv(tables / "plan.csv", index=False)
    images.to_csv(tables / "plan_images.csv", index=False)
    hours.to_csv(tables / "plan_hours.csv", index=False)
    gpu = plan["gpu_hours"].sum(min_count=1) if len(plan) else float("nan")
    caption = (f"The real run's training plan, derived from this dry run (wsss_lib.runner.plan): {len(plan)} training "
               f"stages, {int(plan['runs'].sum()) if len(plan) else 0} runs, "
               f"{int(plan['images_processed'].sum()) if len(plan) else 0:,} images processed. GPU hours: "
               + (f"{gpu:.1f} where {cuda_csv.name} has a figure" if gpu == gpu else
                  f"no GPU figure in {cuda_csv} (run make gpu-check on a GPU machine)") + ".")
    (tables / "plan.md").write_text(f"{caption}\n\n{plan.to_markdown(index=False, floatfmt='.2f')}\n")
    image_caption = (f"The real run's per-image stages, derived from this dry run (wsss_lib.runner.plan): {len(images)} "
                     f"stages at the real split sizes, cost per image at {TYPICAL_IMAGE.get(dataset, '?')} px from "
                     f"{cpu_csv.name} (CPU) and {cuda_csv.name} (GPU; make bench-per-image, make gpu-check); "
                     "blank where no figure was measured.")
    (tables / "plan_images.md").write_text(f"{image_caption}\n\n{images.to_markdown(index=False, floatfmt='.2f')}\n")
    hours_caption = ("CPU and GPU hours per notebook of the real run (wsss_lib.runner.plan): training on the GPU, the per-image "
                     "stages' CPU-bound parts (CRF, file IO), their device parts on a GPU, and those device parts on "
                     "this CPU where no GPU runs them. Each sum covers the rows that have a figure; `unmeasured "
                     "rows` counts the rows missing one in some column (plan_images.md names what is missing), so "
                     "beside a nonzero count a sum is a lower bound, and 0.00 GPU hours means no GPU figure yet, not "
                     "no GPU work. Blank: no row has a figure.")
    (tables / "plan_hours.md").write_text(f"{hours_caption}\n\n{hours.to_markdown(index=False, floatfmt='.2f')}\n")
    return plan, images, hours
