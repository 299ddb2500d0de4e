"""The shape every per-image inference stage shares (CAMs, saliency maps, random walks)."""

from __future__ import annotations

from typing import Any, Callable

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.methods.base import Method
from wsss_lib.stages import planning
from wsss_lib.stages.context import RunContext
from wsss_lib.train.precision import Precision
from wsss_lib.train.trainer import TrainConfig

__all__ = ["inference_stage"]


def inference_stage(ctx: RunContext, stage: str, key: Any, name: str, method: Method, train: TrainConfig,
                    dataset_cfg: DatasetConfig, split: str, infer: Callable[..., dict[str, int]],
                    progress: bool = True, recipe: dict[str, Any] | None = None) -> StageDir:
    """Run (or resume, or reuse) the stage ``stage`` keyed by ``key``: the method's inference network, on the
    device, autocast dtype and memory layout of its training config, goes through
    ``infer(network, dataset, stage_dir, mean, std, progress=..., device=..., autocast_dtype=...,
    channels_last=...)``, which writes one file per image and returns ``{"computed", "skipped"}``.

    ``recipe``: what the stage's cost per image depends on (backbone, TTA scales and flip, CRF, ...), recorded for the
    real run's plan in a dry run (:mod:`wsss_lib.stages.planning`)."""
    sd = ctx.store.stage(stage, key, name=name)
    dataset = open_dataset(dataset_cfg, split, work_dir=ctx.work_dir, progress=progress)
    with sd.computing(sharded=True) as todo, timing.scope(stage):
        if todo:
            setup = Precision.of(train)
            mean, std = method.normalization
            counts = infer(setup.prepare(method.cam_model()), dataset, sd, mean, std, progress=progress,
                           **setup.kwargs())
            sd.finish_images(len(dataset), counts)
    planning.record_images(ctx, sd, split, len(dataset), **(recipe or {}))
    return sd
