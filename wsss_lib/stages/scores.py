"""Confusion matrices of a stage's outputs against a split's ground truth, computed once and cached."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.io import atomic_save_npz
from wsss_lib.stages import planning
from wsss_lib.stages.context import RunContext

__all__ = ["cached_confusion"]


def cached_confusion(ctx: RunContext, stage: str, key: dict[str, Any], dataset,
                     compute: Callable[[], ConfusionMatrix]) -> ConfusionMatrix:
    """``compute()`` once per ``key`` (plus the dataset's cache key) in stage ``stage``; its counts are stored in
    ``counts.npz`` and later calls load them."""
    def run(sd: StageDir) -> ConfusionMatrix:
        with timing.scope(stage):
            confusion = compute()
        atomic_save_npz(sd.file("counts.npz"), counts=np.asarray(confusion.counts))
        planning.record_images(ctx, sd, str(getattr(dataset, "split", "")), len(dataset))
        return confusion

    def load(sd: StageDir) -> ConfusionMatrix:
        planning.record_images(ctx, sd, str(getattr(dataset, "split", "")), len(dataset))
        return ConfusionMatrix(dataset.num_classes).add_counts(sd.load_npz("counts.npz", ("counts",))["counts"])

    return ctx.store.cached(stage, {**key, "dataset_key": dataset.cache_key()}, run, load)
