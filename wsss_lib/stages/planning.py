"""What a dry run records for the real run's plan (:mod:`wsss_lib.runner.plan`): one JSON line per stage it computed.

In a dry run (``RunContext.dry_run``) every stage appends to the dry run's work directory:

- ``plan-records.jsonl``: when a stage is computed, what it did: its notebook (the run context's ``notebook``),
  stage kind, key, the split and its size, and the recipe the plan needs. A training stage: method, backbone,
  crop, epochs, batch and accumulation, DeepLab-v2's steps, the seed (:func:`record_training`). A per-image stage
  (``kind = "images"``): what its cost per image depends on: the backbone that runs, the TTA scales and flip, the
  CRF preset, the thresholds of a sweep (:func:`record_images`);
- ``plan-used.jsonl``: which stage keys each notebook used, computed or reused (the runner clears a notebook's entries
  when it runs it again), so the plan holds those stages only.
"""

from __future__ import annotations

import contextlib
import json
from contextvars import ContextVar
from typing import Any, Iterator

from wsss_lib.artifacts import StageDir
from wsss_lib.stages.context import RunContext

__all__ = ["PLAN_RECORDS", "PLAN_USED", "note_used", "record_training", "record_images", "built_from"]

PLAN_RECORDS = "plan-records.jsonl"
PLAN_USED = "plan-used.jsonl"


def _append(ctx: RunContext, name: str, record: dict[str, Any]) -> None:
    with (ctx.work_dir / name).open("a") as out:
        out.write(json.dumps(record, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return str(value)


_PARAMETER: ContextVar[str] = ContextVar("wsss_plan_parameter", default="")


@contextlib.contextmanager
def built_from(parameter: str) -> Iterator[None]:
    """The training stages of the block are built from the notebook parameter at ``parameter`` (a dotted path such as
    ``segmentation_variants.DeepLabV2``) rather than their kind's own dict: the plan restores their recipe from it."""
    token = _PARAMETER.set(parameter)
    try:
        yield
    finally:
        _PARAMETER.reset(token)


def note_used(ctx: RunContext, sd: StageDir) -> None:
    """In a dry run: the running notebook used the stage ``sd`` (computed or reused)."""
    if ctx.dry_run:
        _append(ctx, PLAN_USED, {"notebook": ctx.notebook, "key": sd.key})


def _split_of(dataset: Any) -> str:
    while not hasattr(dataset, "split") and hasattr(dataset, "base"):  # pseudo-masks, hints, ... over a split
        dataset = dataset.base
    return str(getattr(dataset, "split", ""))


def record_training(ctx: RunContext, sd: StageDir, dataset: Any, *, epochs: int, batch_size: int,
                    accumulate_steps: int, max_steps: int, seed: int) -> None:
    """In a dry run: a training stage it trained: its method, backbone, crop, precision and memory layout (from its
    stored config), training split and size, and capped recipe."""
    if not ctx.dry_run:
        return
    key = sd.config().get("config", {})
    _append(ctx, PLAN_RECORDS, {
        "notebook": ctx.notebook, "kind": "training", "stage": sd.stage, "name": sd.path.name,
        "key": sd.key, "method": key.get("method", ""),
        "randaugment": bool((key.get("augment") or {}).get("randaugment", False)),
        "backbone": (key.get("backbone") or {}).get("name", ""), "crop": (key.get("augment") or {}).get("crop_size"),
        "amp": (key.get("train") or {}).get("amp"), "channels_last": (key.get("train") or {}).get("channels_last"),
        "split": _split_of(dataset), "images": len(dataset), "epochs": epochs, "batch_size": batch_size,
        "accumulate_steps": accumulate_steps, "max_steps": int(max_steps), "seed": seed,
        **({"parameter": _PARAMETER.get()} if _PARAMETER.get() else {}),
    })


def record_images(ctx: RunContext, sd: StageDir, split: str, images: int, **recipe: Any) -> None:
    """In a dry run: the per-image stage ``sd`` of ``split`` (``images`` of them) was used; recorded with what its
    cost per image depends on (``recipe``: ``backbone``, ``scales``, ``flip``, ``crf``, ``thresholds``, ...)."""
    if not ctx.dry_run:
        return
    note_used(ctx, sd)
    _append(ctx, PLAN_RECORDS, {"notebook": ctx.notebook, "kind": "images", "stage": sd.stage,
                                "name": sd.path.name, "key": sd.key, "split": split, "images": int(images), **recipe})
