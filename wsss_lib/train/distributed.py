"""Data-parallel training on existing engines: ``torchrun`` starts one process per device, ``torch.distributed``
connects them (NCCL on CUDA, gloo on CPU) and ``DistributedDataParallel`` averages their gradients.

A training stage asks for it with ``TrainConfig.devices = N`` (a notebook's ``runtime.devices``, left out of
stage keys like ``num_workers``): :func:`launch` runs the stage under ``torchrun --standalone --nproc_per_node N``
as a subprocess (torchrun cannot run inside a Jupyter kernel), the ranks train, rank 0 writes the stage folder, and
the caller reads the finished stage back from the work directory.

**The recipe does not change with the number of devices.** ``batch_size`` (images per forward pass) and
``accumulate_steps`` (forward passes per optimizer step) state the recipe; an optimizer step always consumes
``batch_size * accumulate_steps`` images of the same permutation of the training set, whatever ``N`` is
(:func:`rank_split`):

- ``N`` divides ``accumulate_steps`` (the paper's 16 x 2 on 2 GPUs): each rank runs ``accumulate_steps / N`` of
  the step's micro-batches, each of ``batch_size`` images, exactly the micro-batches a single process runs. Batch
  norm statistics, Puzzle's tiling and every batch-global normalisation (the CAM max over the batch, OC-CSE's
  mask) see the same ``batch_size`` images as on one device, so no SyncBatchNorm is needed, and on a model
  without random loss draws the weights equal the single-process ones up to float summation order (tested).
- otherwise ``N`` must divide the step's images as ``accumulate_steps`` micro-batches split over ``N /
  accumulate_steps`` ranks each: every rank runs one forward pass of ``batch_size * accumulate_steps / N`` images.
  On CUDA, trainable batch norm then becomes SyncBatchNorm (timm's converter, which keeps the fused BN + activation
  layers; frozen BN stays frozen), whose statistics pool all ``N`` ranks' images of the step; batch-global
  normalisations see the rank's images only. Both differ from one device; the stage key stays the same because
  the recipe is the same, and the README says what changes.

The pitfalls, each handled here or in :func:`~wsss_lib.train.trainer.fit`:

- *data order*: the epoch's permutation comes from the trainer's loader generator, reseeded every epoch and
  identical on every rank (the role ``DistributedSampler.set_epoch`` plays); :class:`StepBatches` cuts it into the
  ranks' micro-batches without padding (``DistributedSampler`` pads with duplicates and cannot reproduce the
  single-process order); with ``N = 1`` it yields exactly the batches of ``DataLoader(shuffle=True,
  drop_last=True)``, so single-device results are unchanged;
- *gradient accumulation*: micro-batches that do not end an optimizer step run under ``no_sync()``; the loss is
  scaled (:attr:`RankSplit.divide_by`, :attr:`RankSplit.multiply_by`) so that DDP's mean over ranks gives the
  single-process gradient in both of the official accumulation modes (``mean`` and the official ``sum``);
- *learning rate*: stated against the step's ``batch_size * accumulate_steps`` images, which ``N`` does not change;
- *unused parameters*: multi-phase methods (P-NOC's generator and ordinary classifier, ACR) use a subset of the
  parameters in each forward pass: ``find_unused_parameters=True``; a phase that computes nothing in a step
  (P-NOC's OC between updates) is skipped before its forward pass (:meth:`Method.runs`);
- *seeds*: data augmentation draws from (seed, epoch, sample index), so it is the same whichever rank loads a
  sample; the loss's own random draws (OC-CSE's class choice, ...) are seeded per rank (rank 0 as one process);
- *writes*: rank 0 alone evaluates, checkpoints and writes the stage folder, the others wait at a barrier;
  every rank resumes from the same ``checkpoint.pt``;
- *the NaN guard*: the loss terms of every rank are gathered each micro-batch, so a non-finite term on one rank
  stops every rank with the same ``FloatingPointError`` naming the term, the step, the epoch and the rank.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import functools
import os
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from wsss_lib.io import atomic_path

__all__ = ["World", "world", "RankSplit", "rank_split", "usable_devices", "StepBatches", "process_group", "launch",
           "main", "all_sum", "barrier"]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that evaluates and writes."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process trains together."""
        return self.size > 1


def world() -> World:
    """The current process group's view (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return World()


@dataclass(frozen=True)
class RankSplit:
    """How one rank runs an optimizer step of ``batch_size * accumulate_steps`` images."""

    micro_batch: int
    """Images per forward pass on this rank."""
    accumulate: int
    """Forward passes per optimizer step on this rank."""
    divide_by: int
    """The local loss is divided by this (``mean`` accumulation: the rank's forward passes per step)."""
    multiply_by: float
    """... and multiplied by this (``sum`` accumulation: ``N * micro_batch / batch_size``), so that DDP's mean over
    the ranks is the single-process gradient."""


def rank_split(batch_size: int, accumulate_steps: int, accumulate_mode: str, devices: int) -> RankSplit:
    """The per-rank share of a step (see the module docstring); raises ``ValueError`` naming the three numbers
    when ``devices`` cannot share the step's micro-batches evenly."""
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    if accumulate_steps % devices == 0:
        micro, accumulate = batch_size, accumulate_steps // devices
    elif devices % accumulate_steps == 0 and batch_size % (devices // accumulate_steps) == 0:
        micro, accumulate = batch_size // (devices // accumulate_steps), 1
    else:
        raise ValueError(
            f"{devices} devices cannot share an optimizer step of accumulate_steps={accumulate_steps} micro-batches "
            f"of batch_size={batch_size} images evenly: devices must divide accumulate_steps, or be a multiple of it "
            f"that divides batch_size * accumulate_steps into equal forward passes (e.g. 16 x 2 runs on 1, 2, 4, 8, "
            f"16 or 32 devices)")
    if accumulate_mode not in ("mean", "sum"):
        raise ValueError(f"accumulate_mode must be 'mean' or 'sum', got {accumulate_mode!r}")
    if accumulate_mode == "mean":
        return RankSplit(micro, accumulate, accumulate, 1.0)
    return RankSplit(micro, accumulate, 1, devices * micro / batch_size)


def usable_devices(batch_size: int, accumulate_steps: int, accumulate_mode: str, devices: int) -> int:
    """The most devices, up to ``devices``, that can share this recipe's step (:func:`rank_split`). A stage whose
    step cannot be shared by all of them trains on fewer rather than changing its recipe (C²AM-H's detector, 1 x 10,
    runs on 5 of 8 GPUs); the stage says so."""
    for n in range(max(1, devices), 0, -1):
        try:
            rank_split(batch_size, accumulate_steps, accumulate_mode, n)
            return n
        except ValueError:
            continue
    return 1


class StepBatches(Sampler[list[int]]):
    """The micro-batches of one rank for one epoch (a ``batch_sampler``).

    Each epoch draws one permutation of the ``n`` samples from ``generator`` (the trainer reseeds it per epoch; the
    same on every rank), cuts it into ``n // (batch_size * accumulate_steps)`` optimizer steps (the remainder is
    dropped, as ``drop_last`` does), each step's images into ``world.size * split.accumulate`` consecutive chunks of
    ``split.micro_batch``, and yields rank ``r``'s chunks ``r * a ... r * a + a - 1`` (``a = split.accumulate``) of
    every step. No index is padded or repeated; with one rank this is ``DataLoader(shuffle=True, drop_last=True,
    generator=generator)``'s sequence (the permutation is drawn when iteration starts, after the DataLoader's
    own draw from the same generator, as ``RandomSampler`` does).
    """

    def __init__(self, n: int, batch_size: int, accumulate_steps: int, split: RankSplit, where: World,
                 generator: torch.Generator):
        self.n, self.split, self.where, self.generator = int(n), split, where, generator
        self.step_images = batch_size * accumulate_steps
        self.steps = (self.n // batch_size) // accumulate_steps

    def __len__(self) -> int:
        return self.steps * self.split.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        a, b = self.split.accumulate, self.split.micro_batch
        for step in range(self.steps):
            for j in range(a):
                start = step * self.step_images + (self.where.rank * a + j) * b
                yield order[start:start + b]


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks (itself with one process)."""
    if world().active:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every rank (nothing with one process)."""
    if world().active:
        dist.barrier()


@contextlib.contextmanager
def process_group(backend: str) -> Iterator[World]:
    """Join the process group torchrun's environment describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...),
    pin CUDA to ``LOCAL_RANK`` for NCCL, and leave the group on exit. The timeout (``WSSS_DIST_TIMEOUT_MIN``,
    120 min by default) covers rank 0's evaluation while the others wait."""
    timeout = dt.timedelta(minutes=float(os.environ.get("WSSS_DIST_TIMEOUT_MIN", "120")))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timeout)
    try:
        yield world()
    finally:
        dist.destroy_process_group()


def _error_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"launch-error-rank{rank}.pkl"


def launch(fn: Callable[[], object], devices: int, *, backend: str, label: str = "", progress: bool = True) -> None:
    """Run ``fn()`` in ``devices`` processes started by ``torchrun --standalone`` and wait for them.

    ``fn`` (a ``functools.partial`` of a module-level function, closures allowed) travels as a cloudpickle file in
    a temporary folder (not in the stage folder, whose manifest lists what the stage made), removed afterwards. The ranks' output is relayed to ``sys.stdout`` as it comes (a notebook shows it
    in the cell). If a rank fails, its exception is raised here (the same type and message, e.g. the NaN guard's
    ``FloatingPointError``; the first written when several ranks failed), chained to a ``RuntimeError`` with
    torchrun's last output; torchrun has stopped the other ranks by then."""
    with tempfile.TemporaryDirectory(prefix="wsss-launch-") as folder:
        _launch(fn, devices, Path(folder), backend, label or f"{devices} processes", progress)


def _launch(fn: Callable[[], object], devices: int, run_dir: Path, backend: str, label: str, progress: bool) -> None:
    import cloudpickle

    payload = run_dir / "launch.pkl"
    payload.write_bytes(cloudpickle.dumps(fn))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
    env.setdefault("TQDM_MININTERVAL", "5")  # the relayed progress bars update every 5 s, not 10 times a second
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}",
               "-m", "wsss_lib.train.distributed", str(payload), backend]
    if progress:
        print(f"{label}: torchrun, {devices} processes ({backend})", flush=True)
    tail = b""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end inside a character
    try:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as proc:
            assert proc.stdout is not None
            for chunk in iter(functools.partial(proc.stdout.read1, 65536), b""):
                tail = (tail + chunk)[-8000:]
                if progress:
                    sys.stdout.write(decoder.decode(chunk))
                    sys.stdout.flush()
            code = proc.wait()
    finally:
        payload.unlink(missing_ok=True)
    if code == 0:
        return
    failure = RuntimeError(f"{label}: torchrun with {devices} processes exited with {code}; its last "
                           f"output:\n{tail.decode(errors='replace')}")
    # the first error written is the cause; the other ranks' errors (a closed connection) follow from it
    errors = sorted((p for p in (_error_file(run_dir, r) for r in range(devices)) if p.is_file()),
                    key=lambda p: p.stat().st_mtime_ns)
    try:
        exc = cloudpickle.loads(errors[0].read_bytes()) if errors else None
    except Exception:  # noqa: BLE001 - an unreadable error file: torchrun's output says the rest
        exc = None
    finally:
        for error in errors:
            error.unlink(missing_ok=True)
    if exc is not None:
        raise exc from failure
    raise failure


def main(argv: list[str] | None = None) -> None:
    """One rank of :func:`launch`: ``python -m wsss_lib.train.distributed PAYLOAD BACKEND`` under torchrun."""
    import cloudpickle

    payload, backend = (argv if argv is not None else sys.argv[1:])
    payload = Path(payload)
    fn = cloudpickle.loads(payload.read_bytes())
    with process_group(backend) as where:
        try:
            fn()
        except BaseException as exc:
            try:
                data = cloudpickle.dumps(exc)
            except Exception:  # noqa: BLE001 - an exception that does not pickle travels as its text
                data = cloudpickle.dumps(RuntimeError("".join(traceback.format_exception(exc))))
            with atomic_path(_error_file(payload.parent, where.rank)) as tmp:
                tmp.write_bytes(data)
            raise


if __name__ == "__main__":
    main()
