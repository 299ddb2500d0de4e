"""The shape every training stage shares (classifiers, C²AM, the saliency detector, the affinity network, AMN,
DeepLab), as ``stages/inference.py`` is for the per-image stages.

A training stage is **one config class and two small functions**: a frozen dataclass deriving from
:class:`StageConfig` that names the stage folder (``stage``), its runs (``run_name``) and implements

- ``build(ctx, weights, upstream)``: the untrained method (``weights=None``: as configured, pretrained weights and seeded
  new layers; ``"none"``: the bare architecture a finished ``model.pt`` is loaded into, so loading needs no hub or
  offline weights);
- ``train_set(ctx, upstream, method)``: the training set, with the method's normalisation in its transform;

and, where it needs them, ``check(upstream)`` (the upstream stage it was configured with), ``eval_set(ctx)`` (the
per-epoch quick evaluation), ``max_steps`` (optimizer steps instead of epochs) and ``after(ctx, upstream, method,
sd)`` (files kept beside the weights, extra ``DONE.json`` fields). ``upstream`` is what the stage learns from (the
ordinary classifier, the hint CAMs, the pseudo-labels, ...) or ``None``. Then :func:`train_stage` trains, resumes
or reuses it, and :func:`load_trained` reloads it; both return a :class:`Trained`.

The stage key is the config without the training settings that change no weight (``TrainConfig`` fields marked
:data:`~wsss_lib.train.trainer.NOT_A_KEY`: device, processes, workers, the quick evaluation): :meth:`StageConfig.hashed`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, ClassVar, Generic, TypeVar

import pandas as pd

from wsss_lib import timing
from wsss_lib.artifacts import StageDir
from wsss_lib.methods.base import Method
from wsss_lib.provenance import code_state, machine
from wsss_lib.stages import planning
from wsss_lib.stages.context import RunContext
from wsss_lib.train import distributed
from wsss_lib.train.precision import resolve_device
from wsss_lib.train.trainer import fit, key_fields

__all__ = ["StageConfig", "Trained", "train_stage", "load_trained", "weights_key"]

C = TypeVar("C", bound="StageConfig")
M = TypeVar("M", bound=Method)


def weights_key(cfg: Any) -> dict[str, Any]:
    """What determines a training stage's weights: the stage config ``cfg`` as a dict without the training
    settings marked ``NOT_A_KEY`` (:func:`wsss_lib.train.trainer.key_fields`)."""
    return key_fields(cfg)


class StageConfig:
    """The base of every training stage's config (see the module docstring); subclasses are frozen dataclasses
    with ``dataset``, ``backbone``, ``train`` (a ``TrainConfig``), ``optim`` and ``train_split`` fields."""

    stage: ClassVar[str]
    """The stage folder under the work directory (``classifier``, ``c2am``, ``affinity``, ...)."""

    @property
    def run_name(self) -> str:
        raise NotImplementedError

    def hashed(self) -> dict[str, Any]:
        """The stage key's payload: :func:`weights_key` of the config."""
        return weights_key(self)

    def build(self, ctx: RunContext, weights: str | None, upstream: Any = None) -> Method:
        raise NotImplementedError

    def train_set(self, ctx: RunContext, upstream: Any, method: Method) -> Any:
        raise NotImplementedError

    def check(self, upstream: Any) -> None:
        """Raise if ``upstream`` is not the stage this config was bound to (nothing to check by default)."""

    def eval_set(self, ctx: RunContext) -> Any:
        """The set of the per-epoch quick evaluation (``None``: no evaluation)."""
        return None

    @property
    def max_steps(self) -> int:
        """Optimizer steps to train instead of ``train.epochs`` epochs (0: epochs)."""
        return 0

    def after(self, ctx: RunContext, upstream: Any, method: Method, sd: StageDir) -> dict[str, Any]:
        """Write what the stage keeps beside the weights; return extra ``DONE.json`` fields (none by default)."""
        return {}


@dataclass(frozen=True)
class Trained(Generic[C, M]):
    """A finished training stage: its config, its folder, the method rebuilt from ``model.pt`` (on the CPU) and its
    training history."""

    config: C
    stage: StageDir
    method: M
    history: pd.DataFrame


def load_trained(ctx: RunContext, sd: StageDir, cfg: C, upstream: Any = None) -> Trained[C, Method]:
    """The finished stage ``sd`` of ``cfg``: ``cfg.build(ctx, "none")`` with ``model.pt`` (every weight) loaded
    strictly."""
    if not sd.done:
        raise FileNotFoundError(f"{sd.path}: {cfg.stage} stage is unfinished; rerun the notebook that trains it")
    method = cfg.build(ctx, "none", upstream)
    sd.load_into(method)
    return Trained(cfg, sd, method, sd.read_frame("history.csv"))


def train_stage(ctx: RunContext, cfg: C, upstream: Any = None, *, progress: bool = True) -> Trained[C, Method]:
    """Train (or resume, or reuse) the stage of ``cfg`` learning from ``upstream``; see the module docstring.

    ``cfg.train.devices > 1``: the training runs as ``torchrun`` processes (:func:`~wsss_lib.train.distributed.launch`;
    the config and the upstream travel pickled), rank 0 writes the stage, and this process then loads it like a
    finished one. The weights are saved from the CPU, and the method returned is always the one loaded back from
    ``model.pt``: a stage trained now and the same stage reused later give the same object.
    """
    cfg.check(upstream)
    sd = ctx.store.stage(cfg.stage, cfg.hashed(), name=cfg.run_name)
    planning.note_used(ctx, sd)
    with sd.computing() as todo:
        if todo:
            train, optim = cfg.train, cfg.optim
            launching = train.devices > 1 and not distributed.world().active
            if launching:
                devices = distributed.usable_devices(train.batch_size, optim.accumulate_steps, optim.accumulate_mode,
                                                     train.devices)
                if devices < train.devices:
                    print(f"{cfg.stage} {sd.path.name}: {devices} of devices={train.devices} processes train (an optimizer "
                          f"step of {optim.accumulate_steps} x {train.batch_size} images cannot be shared by "
                          f"{train.devices}; the recipe stays as it is)", flush=True)
                cfg = replace(cfg, train=replace(train, devices=devices))
                launching = devices > 1
            run = functools.partial(_train_and_finish, ctx, sd, cfg, upstream, progress)
            if launching:
                backend = "nccl" if resolve_device(cfg.train.device).type == "cuda" else "gloo"
                distributed.launch(run, cfg.train.devices, backend=backend, label=f"{cfg.stage} {sd.path.name}",
                                   progress=progress)
                if not sd.done:
                    raise RuntimeError(f"{sd.path}: torchrun finished without DONE.json; rerun the stage")
            else:
                with timing.scope(cfg.stage):
                    run()
    return load_trained(ctx, sd, cfg, upstream)


def _train_and_finish(ctx: RunContext, sd: StageDir, cfg: StageConfig, upstream: Any, progress: bool) -> None:
    """Train ``sd`` to the end (in this process, or as one rank of ``torchrun``); rank 0 runs ``cfg.after`` and
    writes ``model.pt`` and ``DONE.json`` last (with where the weights came from), while the other ranks wait."""
    where = distributed.world()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    method = cfg.build(ctx, None, upstream)
    dataset = cfg.train_set(ctx, upstream, method)
    train, optim, max_steps = cfg.train, cfg.optim, cfg.max_steps
    result = fit(method, dataset, cfg.eval_set(ctx), train, optim, sd.path, resume=True,
                 progress=progress and where.main, max_steps=max_steps)
    if where.main:
        planning.record_training(ctx, sd, dataset, epochs=train.epochs, batch_size=train.batch_size,
                                 accumulate_steps=optim.accumulate_steps, max_steps=max_steps, seed=train.seed)
        extra = cfg.after(ctx, upstream, method, sd)
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
