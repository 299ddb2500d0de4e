"""The shape every training stage shares (classifiers, C²AM, the saliency detector, the affinity network, AMN,
DeepLab), as ``stages/inference.py`` is for the per-image stages."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable

import pandas as pd

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.methods.base import Method
from wsss_lib.provenance import code_state, machine
from wsss_lib.stages import planning
from wsss_lib.stages.context import RunContext
from wsss_lib.train import distributed
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, fit, resolve_device

__all__ = ["TrainedStage", "train_stage", "load_trained"]

@dataclass(frozen=True)
class TrainedStage:
    """A finished training stage: its folder, the method rebuilt from ``model.pt`` (on the CPU) and its history."""

    stage: StageDir
    method: Method
    history: pd.DataFrame


def load_trained(sd: StageDir, build: Callable[[str | None], Method]) -> TrainedStage:
    """The finished stage ``sd``: ``build("none")`` (the architecture without pretrained weights: ``model.pt`` holds
    every weight and is loaded strictly, so loading needs no hub or offline weights)."""
    method = build("none")
    sd.load_into(method)
    return TrainedStage(sd, method, sd.read_frame("history.csv"))


def train_stage(ctx: RunContext, stage: str, key: Any, name: str, build: Callable[[str | None], Method],
                train_set: Callable[[Method], Any], train: TrainConfig, optim: OptimConfig, *, eval_set: Any = None,
                max_steps: int = 0, after: Callable[[Method, StageDir], dict[str, Any]] | None = None,
                progress: bool = True) -> TrainedStage:
    """Train (or resume, or reuse) the stage ``stage`` keyed by ``key``.

    - ``build(weights)`` makes the method: ``weights=None`` as configured (pretrained weights, seeded new layers),
      ``"none"`` the bare architecture that a finished stage's ``model.pt`` is loaded into;
    - ``train_set(method)`` opens the training set (with the method's normalisation in its transform); it is called
      only when there is something to train;
    - :func:`~wsss_lib.train.trainer.fit` resumes from the stage's checkpoint; ``max_steps`` counts optimizer steps
      instead of epochs (DeepLab-v2);
    - ``after(method, sd)`` writes what the stage keeps beside the weights and returns extra ``DONE.json`` fields;
    - ``train.devices > 1``: the training runs as ``torchrun`` processes (:func:`~wsss_lib.train.distributed.launch`;
      the closures travel pickled), rank 0 writes the stage, and this process then loads it like a finished one.

    The weights are saved from the CPU, and the method returned is always the one loaded back from ``model.pt``:
    a stage trained now and the same stage reused later give the same object.
    """
    sd = ctx.store.stage(stage, key, name=name)
    planning.note_used(ctx, sd)
    if not sd.done:
        plan = ctx if ctx.dry_run else None
        launching = train.devices > 1 and not distributed.world().active
        if launching:
            devices = distributed.usable_devices(train.batch_size, optim.accumulate_steps, optim.accumulate_mode,
                                                 train.devices)
            if devices < train.devices:
                print(f"{stage} {sd.path.name}: {devices} of devices={train.devices} processes train (an optimizer "
                      f"step of {optim.accumulate_steps} x {train.batch_size} images cannot be shared by "
                      f"{train.devices}; the recipe stays as it is)", flush=True)
            train = replace(train, devices=devices)
            launching = devices > 1
        run = functools.partial(_train_and_finish, sd, build, train_set, train, optim, eval_set, max_steps, after,
                                progress, plan)
        if launching:
            backend = "nccl" if resolve_device(train.device).type == "cuda" else "gloo"
            distributed.launch(run, train.devices, backend=backend, label=f"{stage} {sd.path.name}",
                               progress=progress)
            if not sd.done:
                raise RuntimeError(f"{sd.path}: torchrun finished without DONE.json; rerun the stage")
        else:
            with timing.scope(stage):
                run()
    return load_trained(sd, build)


def _train_and_finish(sd: StageDir, build: Callable[[str | None], Method], train_set: Callable[[Method], Any],
                      train: TrainConfig, optim: OptimConfig, eval_set: Any, max_steps: int,
                      after: Callable[[Method, StageDir], dict[str, Any]] | None, progress: bool,
                      plan: RunContext | None = None) -> None:
    """Train ``sd`` to the end (in this process, or as one rank of ``torchrun``); rank 0 runs ``after`` and
    writes ``model.pt`` and ``DONE.json`` last, while the other ranks wait. ``plan``: a dry run's context, whose
    plan records the stage (:mod:`wsss_lib.stages.planning`)."""
    where = distributed.world()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    method = build(None)
    dataset = train_set(method)
    result = fit(method, dataset, eval_set, train, optim, sd.path, resume=True,
                 progress=progress and where.main, max_steps=max_steps)
    if where.main and plan is not None:
        planning.record_training(plan, sd, dataset, epochs=train.epochs, batch_size=train.batch_size,
                                 accumulate_steps=optim.accumulate_steps, max_steps=max_steps, seed=train.seed)
    if where.main:
        extra = after(method, sd) if after is not None else {}
        epochs = int(result.history["epoch"].max()) if len(result.history) else train.epochs
        steps = {"steps": int(max_steps)} if max_steps else {}
        seconds = round(result.seconds, 1) if math.isfinite(result.seconds) else None  # None: untimed epochs
        # where the weights came from: the code's commit, this session's start and end (a resumed training names
        # the epoch it resumed after), the machine (results on a CPU are bit-identical only on the same kind)
        provenance = {**code_state(), "started": started, "resumed_after_epoch": result.start_epoch,
                      "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
        sd.finish_training(method.cpu().state_dict(), seconds=seconds, epochs=epochs, **steps, **extra,
                           provenance=provenance)
    distributed.barrier()
