"""The one training loop every method uses: ``fit(method, train_set, eval_set, cfg, optim, out_dir)``.

Read top to bottom: per epoch, reseed (so a resumed run replays the same data order and augmentation),
iterate micro-batches; per micro-batch, for each phase of the method compute its loss terms under autocast,
check they are finite, back-propagate; every ``accumulate_steps`` micro-batches step each phase's optimizer
(poly learning rate) and clear its gradients. At the end of each epoch: the quick CAM mIoU on the
evaluation split, a row appended to ``history.csv`` (the epoch's losses, quick mIoU and wall time ``seconds``) and
an atomic checkpoint.

- Device and precision: CUDA if available (``device="auto"``), AMP (``bf16``, or ``fp16`` with a
  ``GradScaler`` per phase) on CUDA only, CPU always trains in float32; ``channels_last`` on both (on the
  2-core CPU it made a Lite0 step at crop 128 16 % faster: 0.385 s against 0.460 s, ``wsss_lib.bench``).
- ``resume=True`` continues from ``checkpoint.pt`` in ``out_dir`` at the next epoch boundary and reaches the
  same final weights as an uninterrupted run (per-epoch reseeding + saved optimizer/scaler states).
- Results do not depend on the worker count: every random draw of data loading and augmentation comes from
  the sample's own seed, derived from (``seed``, epoch, sample index) (:class:`SeededSamples`), and the loss's
  own draws from the main process's generator, reseeded each epoch and untouched by data loading. So
  ``num_workers`` 0, 2 or 16 give bit-identical weights, and ``num_workers`` rightly stays out of stage keys.
- Several devices (``devices=N``, inside ``torchrun``; :mod:`wsss_lib.train.distributed` says how the step's
  images are shared and which pitfalls are handled where): the method is wrapped in ``DistributedDataParallel``,
  each rank runs its share of every optimizer step, rank 0 alone evaluates and writes. ``devices`` also stays out
  of stage keys: the recipe (images per step, per forward pass where ``N`` divides ``accumulate_steps``) is the same.
- A NaN or infinite loss term, gradient (when no fp16 ``GradScaler`` is there to skip the step) or parameter
  raises ``FloatingPointError`` naming the step, the epoch and the term or parameter. Parameters and
  optimizer states are checked before every checkpoint, so ``checkpoint.pt`` is finite by construction and
  the last good checkpoint (previous epoch) stays on disk.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from wsss_lib.config import to_dict
from wsss_lib.evaluation.quick import QuickEvalConfig, quick_cam_miou
from wsss_lib.io import atomic_path, reading
from wsss_lib.io.progress import tqdm
from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.timing import scope, section
from wsss_lib.train.distributed import StepBatches, World, all_sum, barrier, rank_split, world
from wsss_lib.train.optim import OptimConfig, build_optimizer
from wsss_lib.train.precision import Precision, resolve_device

__all__ = ["TrainConfig", "NOT_A_KEY", "key_fields", "TrainResult", "fit", "seed_everything", "resolve_device", "SeededSamples", "sample_seed"]


NOT_A_KEY = {"key": False}
"""Field metadata of a training setting that does not change the trained weights: left out of every stage key
(:func:`key_fields`)."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 16
    """Micro-batch size; the effective batch is ``batch_size * optim.accumulate_steps``."""
    num_workers: int = field(default=4, metadata=NOT_A_KEY)
    """DataLoader workers: every random draw comes from the sample's own seed, so the weights do not depend on it."""
    seed: int = 0
    device: str = field(default="auto", metadata=NOT_A_KEY)
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    amp: Literal["off", "fp16", "bf16"] = "fp16"
    """Mixed precision on CUDA (the official code trains with fp16 autocast); ignored on CPU."""
    channels_last: bool = True
    """NHWC memory layout: measured faster on CPU; on an H200 (``reports/bench/gpu-check-cuda.md``, three runs of
    ResNeSt-269 in fp16) no speed-up over the official NCHW (CAM 1.18x, 0.85x, 0.81x; P-NOC 0.80x, 0.97x, 1.04x)."""
    eval: QuickEvalConfig = field(default_factory=QuickEvalConfig, metadata=NOT_A_KEY)
    """The per-epoch quick evaluation (measures, changes no weight)."""
    eval_every: int = field(default=1, metadata=NOT_A_KEY)
    """Quick CAM mIoU every ``eval_every`` epochs (0 = never)."""
    devices: int = field(default=1, metadata=NOT_A_KEY)
    """Processes training together (``torchrun`` + DDP, one per GPU, or gloo processes on a CPU); the stage launches
    them (:func:`wsss_lib.train.distributed.launch`). Not part of stage keys: the recipe is the same."""


def key_fields(cfg: Any) -> dict[str, Any]:
    """``cfg`` (a dataclass) as a dict without its fields marked :data:`NOT_A_KEY`, recursively: what of it
    determines trained weights."""
    out = {}
    for f in fields(cfg):
        if f.metadata.get("key", True):
            value = getattr(cfg, f.name)
            out[f.name] = key_fields(value) if is_dataclass(value) and not isinstance(value, type) else to_dict(value)
    return out


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    history: pd.DataFrame
    seconds: float
    """Wall time of the training: the sum of the history's per-epoch ``seconds`` (resumed sessions included; NaN
    when an epoch of a history written before that column existed is untimed)."""
    start_epoch: int = 0
    """The epoch this call resumed after (0: it trained from the start)."""


def _stop_workers(batches) -> None:
    """Shut down a DataLoader iterator's worker processes (a no-op without workers)."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rank_seed(seed: int, epoch: int, rank: int) -> int:
    """The loss's random draws in ``epoch``: rank 0 as a single process, the other ranks their own streams."""
    if rank == 0:
        return _epoch_seed(seed, epoch)
    return int(np.random.SeedSequence([seed, epoch, rank, 7919]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _timed_batches(batches, device: torch.device, channels_last: bool):
    """``batches`` moved to ``device`` (the image in ``channels_last`` layout when asked), the wait for each one and
    its transfer charged to the ``data`` scope (:mod:`wsss_lib.timing`; reading the images is ``data/read`` when
    there are no loader workers)."""
    while True:
        with scope("data"):
            batch = next(batches, None)
            if batch is None:
                return
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            if channels_last:
                batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        yield batch


def _collate(samples: list[dict]) -> dict:
    """Tensors are stacked (``image``, ``mask``, ``label`` and extras such as C²AM-H's ``hint``), the rest listed."""
    return {key: torch.stack([s[key] for s in samples]) if torch.is_tensor(samples[0][key]) else [s[key] for s in samples]
            for key in samples[0]}


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s draws in ``epoch`` of a run seeded ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SeededSamples(torch.utils.data.Dataset):
    """``dataset`` whose ``__getitem__(index)`` draws its randomness (torch's CPU generator, ``random``, numpy's
    legacy global generator, the ones torchvision and most augmentations use) from :func:`sample_seed` of
    (``seed``, ``epoch``, ``index``), and leaves the calling process's generators as they were.

    Whether a sample is loaded in the main process or in worker 3 of 16 therefore changes nothing.
    Set ``epoch`` before each epoch's iteration (workers are forked per epoch and see the new value).
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        seed = sample_seed(self.seed, self.epoch, int(index))
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA's stream stays the loss's
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def _nonfinite(named: list[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the tensors in ``named`` holding a NaN or an infinity (one synchronisation per device). The tensors
    may live on several devices: on CUDA, Adam keeps its ``step`` counters on the CPU beside the GPU's moments."""
    floats = [(n, t) for n, t in named if torch.is_tensor(t) and t.is_floating_point()]
    by_device: dict[torch.device, list[int]] = {}
    for index, (_, tensor) in enumerate(floats):
        by_device.setdefault(tensor.device, []).append(index)
    finite = [True] * len(floats)
    for indices in by_device.values():
        flags = torch.stack([torch.isfinite(floats[i][1]).all() for i in indices]).cpu()
        for i, ok in zip(indices, flags.tolist()):
            finite[i] = ok
    return [n for (n, _), ok in zip(floats, finite) if not ok]


def _optimizer_tensors(phase: str, optimizer: torch.optim.Optimizer, names: dict[int, str]) -> list[tuple[str, torch.Tensor]]:
    out = []
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value):
                out.append((f"optimizer {phase}: {key} of {names.get(id(param), 'a parameter')}", value))
    return out


class NonFiniteGuard:
    """Stops a training on a NaN or an infinity before it is checkpointed or called good: a loss term of any rank
    (every rank raises the same error), a gradient where no fp16 GradScaler skips the step, or a parameter, buffer or
    optimizer state at the end of an epoch. Each ``FloatingPointError`` names the step, the epoch, the term or tensor
    (and the rank) and the last good checkpoint."""

    def __init__(self, out_dir: Path, where: World, param_names: dict[int, str]):
        self.name, self.where, self.param_names = out_dir.name, where, param_names
        self.last_good = "the last good checkpoint is none yet"

    @staticmethod
    def _at(info: StepInfo) -> str:
        return f"at step {info.step} (epoch {info.epoch + 1})"

    def terms(self, phase: str, terms: dict[str, torch.Tensor], info: StepInfo) -> None:
        values = torch.stack([value.detach().float().reshape(()) for value in terms.values()])
        if self.where.active:
            table = torch.zeros(self.where.size, len(terms), device=values.device)
            table[self.where.rank] = values
            values_by_rank = all_sum(table).cpu()
        else:
            values_by_rank = values.cpu()[None]
        bad = (~torch.isfinite(values_by_rank)).nonzero().tolist()
        if bad:
            rank, index = bad[0]
            name = list(terms)[index]
            on_rank = f" on rank {rank} of {self.where.size}" if self.where.active else ""
            raise FloatingPointError(
                f"{self.name}: loss term {phase}/{name} is {values_by_rank[rank, index].item()} {self._at(info)}"
                f"{on_rank}; {self.last_good}")

    def gradients(self, phase: str, optimizer: torch.optim.Optimizer, info: StepInfo) -> None:
        grads = [(self.param_names.get(id(p), "?"), p.grad) for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None]
        bad = _nonfinite(grads)
        if bad:
            raise FloatingPointError(f"{self.name}: the gradient of {phase} parameter(s) {bad[:5]} is NaN or infinite "
                                     f"{self._at(info)}; {self.last_good}")

    def state(self, method: Method, optimizers: dict[str, torch.optim.Optimizer], epoch: int, info: StepInfo) -> None:
        with section("checks"):
            bad = _nonfinite(list(method.state_dict().items())
                             + [t for p, o in optimizers.items() for t in _optimizer_tensors(p, o, self.param_names)])
        if bad:
            raise FloatingPointError(
                f"{self.name}: {len(bad)} tensor(s) hold NaN or infinite values at the end of epoch {epoch + 1} "
                f"(step {info.step}), e.g. {bad[:5]}; not checkpointed. The {self.last_good.removeprefix('the ')}")


@dataclass
class _Run:
    """One training's fixed parts (:func:`_setup`), shared by the epochs."""

    method: Method
    model: torch.nn.Module
    """The method, or its ``DistributedDataParallel`` wrapper (every forward pass goes through it)."""
    cfg: TrainConfig
    optim: OptimConfig
    out_dir: Path
    where: World
    precision: Precision
    split: Any
    samples: SeededSamples
    loader: DataLoader
    loader_generator: torch.Generator
    steps_per_epoch: int
    total_steps: int
    epochs: int
    optimizers: dict[str, torch.optim.Optimizer]
    scalers: dict[str, torch.amp.GradScaler]
    guard: NonFiniteGuard

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def window_ends(self, micro_done: int) -> bool:
        """Whether the micro-batch after ``micro_done`` others ends an optimizer step."""
        return (micro_done + 1) % self.split.accumulate == 0


def fit(method: Method, train_set, eval_set, cfg: TrainConfig, optim: OptimConfig, out_dir: str | Path, *,
        resume: bool = True, progress: bool = True, max_steps: int = 0) -> TrainResult:
    """Train ``method`` on ``train_set`` (a dataset with a training transform); see the module docstring.

    ``max_steps > 0`` trains for that many optimizer steps instead of ``cfg.epochs`` epochs (DeepLab-v2's
    recipe counts iterations): the poly schedule spans ``max_steps`` and the last epoch stops early."""
    run = _setup(method, train_set, cfg, optim, Path(out_dir), max_steps)
    start_epoch, history = _resume(run, progress) if resume else (0, [])
    _start(run)
    for epoch in range(start_epoch, run.epochs):
        started = time.perf_counter()
        sums, micro, info = _train_epoch(run, epoch, progress)
        row = _end_epoch(run, epoch, sums, micro, info, eval_set)
        row["seconds"] = time.perf_counter() - started  # the epoch's wall time, its evaluation included
        history.append(row)
        _checkpoint(run, epoch, history, progress)
    # every epoch's wall time, those of earlier (resumed) sessions included; unknown (NaN) when a history written
    # before this column existed leaves an epoch untimed
    seconds = float(sum(row.get("seconds", float("nan")) for row in history))
    return TrainResult(out_dir=run.out_dir, history=pd.DataFrame(history), seconds=seconds, start_epoch=start_epoch)


def _setup(method: Method, train_set, cfg: TrainConfig, optim: OptimConfig, out_dir: Path, max_steps: int) -> _Run:
    """Processes, device and precision, the seeded loader of the step's batches, one optimizer and one GradScaler
    per phase, the non-finite guard; the method moved to the device (and wrapped in DDP under several processes)."""
    where = world()
    if where.size != cfg.devices and (where.active or cfg.devices > 1):
        raise RuntimeError(f"{out_dir.name}: devices={cfg.devices} but {where.size} process(es) run this training; "
                           "a stage with devices > 1 is started by wsss_lib.train.distributed.launch (torchrun)")
    split = rank_split(cfg.batch_size, optim.accumulate_steps, optim.accumulate_mode, where.size)
    if where.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    precision = Precision.of(cfg, where)
    cuda = precision.device.type == "cuda"
    if where.active and cuda and split.micro_batch < cfg.batch_size:
        from timm.layers import convert_sync_batchnorm  # forward passes split a micro-batch: pool BN over ranks

        method = convert_sync_batchnorm(method)
    method.to(precision.device)
    if cfg.channels_last:
        method.to(memory_format=torch.channels_last)

    loader_generator = torch.Generator()
    samples = SeededSamples(train_set, cfg.seed)
    batches_of = StepBatches(len(samples), cfg.batch_size, optim.accumulate_steps, split, where, loader_generator)
    loader = DataLoader(samples, batch_sampler=batches_of, collate_fn=_collate, num_workers=cfg.num_workers,
                        generator=loader_generator, pin_memory=cuda, persistent_workers=False)
    if batches_of.steps < 1:
        raise ValueError(f"{len(train_set)} training images give {len(train_set) // cfg.batch_size} batches of "
                         f"{cfg.batch_size}; need at least accumulate_steps={optim.accumulate_steps}")
    steps_per_epoch = batches_of.steps
    total_steps = max_steps if max_steps > 0 else cfg.epochs * steps_per_epoch
    optimizers = {phase: build_optimizer(method.param_groups(phase, optim.lr, optim.weight_decay), optim, total_steps)
                  for phase in method.phases}
    scalers = {phase: torch.amp.GradScaler("cuda", enabled=precision.autocast_dtype == torch.float16)
               for phase in method.phases}
    guard = NonFiniteGuard(out_dir, where, {id(p): n for n, p in method.named_parameters()})
    # several processes: DDP averages the gradients (the model every forward pass goes through); rank 0's initial
    # (or resumed) state is broadcast to the others when the wrapper is made, after the resume
    return _Run(method, method, cfg, optim, out_dir, where, precision, split, samples, loader, loader_generator,
                steps_per_epoch, total_steps, -(-total_steps // steps_per_epoch), optimizers, scalers, guard)


def _resume(run: _Run, progress: bool) -> tuple[int, list[dict]]:
    """The epoch to start at and the history so far: from ``checkpoint.pt`` (the method's, optimizers' and scalers'
    states) when there is one, else epoch 0."""
    start_epoch, history = 0, []
    checkpoint = run.checkpoint
    if checkpoint.is_file():
        hint = f"delete it to restart the training from scratch (rm {checkpoint})"
        with reading(checkpoint, "a training checkpoint", hint):
            state = torch.load(checkpoint, map_location=run.precision.device, weights_only=True)
            run.method.load_state_dict(state["method"])
            for phase in run.method.phases:
                run.optimizers[phase].load_state_dict(state["optimizers"][phase])
                run.scalers[phase].load_state_dict(state["scalers"][phase])
            start_epoch = int(state["epoch"])
        if (run.out_dir / "history.csv").is_file():
            with reading(run.out_dir / "history.csv", "the training history (CSV)", hint):
                history = pd.read_csv(run.out_dir / "history.csv").to_dict("records")
        history = [row for row in history if row["epoch"] <= start_epoch]
        if progress:
            tqdm.write(f"resuming {run.out_dir.name} after epoch {start_epoch}/{run.epochs}")
    return start_epoch, history


def _start(run: _Run) -> None:
    """What the first epoch starts from: the last good checkpoint's name (for the guard's errors) and, under several
    processes, the DDP wrapper (made here, after the resume: it broadcasts rank 0's state to the others)."""
    run.guard.last_good = f"the last good checkpoint is {run.checkpoint if run.checkpoint.is_file() else 'none yet'}"
    if run.where.active:
        run.model = DistributedDataParallel(run.method, find_unused_parameters=True)


def _train_epoch(run: _Run, epoch: int, progress: bool) -> tuple[dict[str, float], int, StepInfo]:
    """One epoch: reseeded (so a resumed run replays the same data order and augmentation), then per micro-batch
    each phase's forward pass, loss check and backward pass, and every ``accumulate`` micro-batches each phase's
    optimizer step. Returns the sums of the loss terms, the micro-batches run and the last step's info."""
    method, cfg, split = run.method, run.cfg, run.split
    seed_everything(_rank_seed(cfg.seed, epoch, run.where.rank))
    run.loader_generator.manual_seed(_epoch_seed(cfg.seed, epoch))
    run.samples.epoch = epoch
    method.set_train_mode()
    sums: dict[str, float] = {}
    micro = 0
    info = StepInfo(step=epoch * run.steps_per_epoch, total_steps=run.total_steps, epoch=epoch)
    epoch_steps = min(run.steps_per_epoch, run.total_steps - epoch * run.steps_per_epoch)
    # one iterator per epoch, made here: tqdm.auto's asyncio class calls iter() on an iterable it is given, which
    # for a DataLoader starts (and drops) a second set of workers and draws from loader_generator
    batches = iter(run.loader)
    bar = tqdm(_timed_batches(batches, run.precision.device, cfg.channels_last), total=len(run.loader),
               desc=f"epoch {epoch + 1}/{run.epochs}", disable=not (progress and run.where.main), leave=False)
    try:
        for batch in bar:
            info = StepInfo(step=epoch * run.steps_per_epoch + micro // split.accumulate, total_steps=run.total_steps,
                            epoch=epoch)
            shown = _micro_batch(run, batch, info, micro, sums)
            micro += 1
            if not method.step_after_each_phase and micro % split.accumulate == 0:
                for phase in method.phases:
                    _step_phase(run, phase, info)
            if micro >= epoch_steps * split.accumulate:
                break
            bar.set_postfix(loss=f"{float(shown):.4f}", refresh=False)
    finally:
        # stop this epoch's loader workers now: the loop leaves the iterator on its last batch, and an abandoned
        # iterator keeps its workers (and makes a later step wait for them) until the garbage collector frees the
        # progress bar that refers to it
        bar.close()
        _stop_workers(batches)
    return sums, micro, info


def _micro_batch(run: _Run, batch: dict, info: StepInfo, micro: int, sums: dict[str, float]) -> torch.Tensor:
    """Every phase's forward pass (under autocast), loss check and backward pass on one micro-batch; the loss
    terms are added to ``sums``. Returns the sum of the last phase's terms (the progress bar shows it)."""
    method, optim, split = run.method, run.optim, run.split
    cache: dict = {}
    shown = torch.zeros(())
    # gradients are averaged over the ranks only on the micro-batch that ends the optimizer step
    sync = run.model.no_sync() if run.where.active and not run.window_ends(micro) else contextlib.nullcontext()
    with sync:
        for phase in method.phases:
            if not method.runs(phase, info):
                continue
            with section("forward"), run.precision.autocast():
                terms = run.model(phase, batch, info, cache)
            if not terms:
                if run.where.active:
                    raise RuntimeError(f"{type(method).__name__}.losses({phase!r}) returned no terms at step "
                                       f"{info.step}: under DDP a phase that computes nothing must say so in "
                                       "Method.runs, before its forward pass")
                continue
            with section("checks"):
                run.guard.terms(phase, terms, info)
                for name, value in terms.items():
                    sums[f"{phase}/{name}"] = sums.get(f"{phase}/{name}", 0.0) + float(value.detach())
            total = sum(terms.values())
            shown = total.detach()  # the progress bar shows the terms' sum, before the scaling below
            if optim.accumulate_mode == "mean":
                total = total / split.divide_by
            elif split.multiply_by != 1.0:
                total = total * split.multiply_by
            with section("backward"):
                run.scalers[phase].scale(total).backward()
            if method.step_after_each_phase and run.window_ends(micro):
                _step_phase(run, phase, info)
    return shown


def _step_phase(run: _Run, phase: str, info: StepInfo) -> None:
    """``phase``'s optimizer step (unless the method skips it this step), its gradients checked first where no fp16
    GradScaler skips non-finite steps by design; then its gradients are cleared."""
    if not run.method.should_step(phase, info):
        return
    with section("optimizer"):
        optimizer, scaler = run.optimizers[phase], run.scalers[phase]
        if not scaler.is_enabled():
            run.guard.gradients(phase, optimizer, info)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)


def _end_epoch(run: _Run, epoch: int, sums: dict[str, float], micro: int, info: StepInfo, eval_set) -> dict:
    """The epoch's history row: the mean of each loss term (over every rank's micro-batches), the learning rate and,
    on rank 0, the quick CAM mIoU; the parameters and optimizer states checked first (nothing non-finite is
    evaluated, checkpointed or called good)."""
    where = run.where
    if where.active:  # the history shows the mean over every rank's micro-batches
        names = list(sums)
        means = all_sum(torch.tensor([sums[n] for n in names], dtype=torch.float64, device=run.precision.device)).cpu()
        sums = {n: float(v) / where.size for n, v in zip(names, means)}
    row = {"epoch": epoch + 1, **{k: v / max(micro, 1) for k, v in sums.items()},
           "lr": run.optimizers[run.method.phases[0]].param_groups[0]["lr"]}
    run.guard.state(run.method, run.optimizers, epoch, info)
    if where.main and eval_set is not None and run.cfg.eval_every and (epoch + 1) % run.cfg.eval_every == 0:
        mean, std = run.method.normalization
        try:
            with scope("eval"):
                quick = quick_cam_miou(run.method.cam_model(), eval_set, mean, std, run.cfg.eval,
                                       device=run.precision.device, autocast_dtype=run.precision.autocast_dtype)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{run.out_dir.name}: quick evaluation after epoch {epoch + 1}: {exc}") from exc
        row.update({"quick_miou": quick["miou"], "quick_threshold": quick["threshold"]})
    return row


def _checkpoint(run: _Run, epoch: int, history: list[dict], progress: bool) -> None:
    """Rank 0 writes ``history.csv`` and ``checkpoint.pt`` (atomically), the other ranks wait; the epoch's line."""
    if run.where.main:
        with section("checkpoint"), atomic_path(run.out_dir / "history.csv") as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)
        with section("checkpoint"), atomic_path(run.checkpoint) as tmp:
            torch.save({"epoch": epoch + 1, "method": run.method.state_dict(),
                        "optimizers": {p: o.state_dict() for p, o in run.optimizers.items()},
                        "scalers": {p: s.state_dict() for p, s in run.scalers.items()},
                        "train_config": to_dict(run.cfg), "optim_config": to_dict(run.optim)}, tmp)
    barrier()  # the other ranks wait for rank 0's evaluation and checkpoint
    run.guard.last_good = f"the last good checkpoint is {run.checkpoint}"
    if progress and run.where.main:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in history[-1].items() if k != "epoch")
        tqdm.write(f"{run.out_dir.name} epoch {epoch + 1}/{run.epochs}: {shown}")
