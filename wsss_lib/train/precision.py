"""Where and how a network runs: the device, the autocast dtype and the memory layout, for training and inference.

- :data:`AMP_DTYPES`: a config's ``amp`` (``off``, ``fp16``, ``bf16``) as the autocast dtype, on CUDA only (the CPU
  always runs in float32: bf16 autocast was 10x slower on the 2-core development CPU, which has no AVX-512 BF16);
- :class:`Precision`: a device, an autocast dtype and the layout (``channels_last``), made from a ``TrainConfig``
  (:meth:`Precision.of`); ``autocast()`` is the context the forward passes run in, ``prepare(model)`` moves a
  network there; the per-image loops take its ``kwargs()``;
- :func:`evaluating`: a network in ``eval()`` mode for the block, put back in the mode it was in afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

__all__ = ["AMP_DTYPES", "resolve_device", "autocast_dtype", "Precision", "evaluating"]

AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str, where=None) -> torch.device:
    """``name`` as a device; under several processes (``where.active``: a :class:`~wsss_lib.train.distributed.World`)
    ``cuda`` means this rank's GPU (``cuda:LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is None and where is not None and where.active:
        device = torch.device("cuda", where.local_rank)
    return device


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device`` (``None`` on the CPU, which runs in float32)."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    return AMP_DTYPES[amp] if device.type == "cuda" else None


@dataclass(frozen=True)
class Precision:
    """Where and how a network runs (a training config's device, AMP and layout)."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @classmethod
    def of(cls, cfg, where=None) -> "Precision":
        """The precision of a ``TrainConfig`` (its ``device``, ``amp`` and ``channels_last``)."""
        device = resolve_device(cfg.device, where)
        return cls(device, autocast_dtype(cfg.amp, device), cfg.channels_last)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def kwargs(self) -> dict:
        """``device``, ``autocast_dtype`` and ``channels_last`` keyword arguments of the per-image loops."""
        return {"device": self.device, "autocast_dtype": self.autocast_dtype, "channels_last": self.channels_last}


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` in ``eval()`` mode for the block, then back in the mode it was in (also after an error)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
