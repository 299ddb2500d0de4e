"""What a training strategy provides to the shared trainer (``wsss_lib.train.trainer.fit``).

A method is an ``nn.Module`` that owns its networks and states its losses. Training alternates over the
method's ``phases`` (one optimizer each): for every micro-batch the trainer calls, in order,
``losses(phase, batch, info, cache)``, back-propagates the sum of the returned (already weighted) terms,
and, at the end of each accumulation window, steps that phase's optimizer (unless ``should_step`` says
otherwise; gradients then keep accumulating); with ``step_after_each_phase`` each phase steps right after its
own backward pass instead. A phase that returns no terms back-propagates nothing. ``cache`` is a dict shared by
the phases of one micro-batch (P-NOC reuses the generator's maps in the ordinary classifier's phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["StepInfo", "Method", "SingleNetworkMethod"]


@dataclass(frozen=True)
class StepInfo:
    step: int
    """Optimizer steps taken so far (the schedules' ``t``)."""
    total_steps: int
    epoch: int

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


class Method(nn.Module):
    """Base class of every training strategy (CAM, Puzzle-CAM, OC-CSE, P-OC, P-NOC, ...)."""

    phases: tuple[str, ...] = ("main",)
    step_after_each_phase: bool = False
    """False: every phase's optimizer steps at the end of the accumulation window, after all phases ran (P-NOC);
    True: a phase's optimizer steps right after its backward pass, so the next phase sees the updated network
    (ACR's alternating updates)."""

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        """SGD parameter groups (with ``lr_mult``) of the networks ``phase`` updates."""
        raise NotImplementedError

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        """The weighted loss terms of ``phase`` on ``batch``; the trainer back-propagates their sum."""
        raise NotImplementedError

    def should_step(self, phase: str, info: StepInfo) -> bool:
        """Whether ``phase``'s optimizer steps at the end of this step (P-NOC updates its OC every k steps)."""
        return True

    def runs(self, phase: str, info: StepInfo) -> bool:
        """Whether ``phase`` computes anything at this step; the trainer skips it otherwise, before its forward pass
        (under ``DistributedDataParallel`` every forward pass must be followed by a backward pass)."""
        return True

    def forward(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        """:meth:`losses`: the trainer calls the method (or its ``DistributedDataParallel`` wrapper, whose gradient
        hooks need the call to go through it) as ``method(phase, batch, info, cache)``."""
        return self.losses(phase, batch, info, cache)

    def cam_model(self) -> nn.Module:
        """The CAM generator evaluated during training and used for inference (returns ``CAMOutput``)."""
        raise NotImplementedError

    def set_train_mode(self) -> None:
        """Put the networks in the mode they train in (a frozen ordinary classifier stays in eval)."""
        self.train()

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.cam_model().backbone.normalization


class SingleNetworkMethod(Method):
    """A method that trains one CAM classifier (``self.model``) with one optimizer (CAM, Puzzle-CAM)."""

    phases = ("main",)

    def __init__(self, model: nn.Module, cfg):
        super().__init__()
        self.model = model
        self.cfg = cfg

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        from wsss_lib.models.backbone import param_groups

        return param_groups(self.model, self.model.new_modules(), lr, weight_decay)

    def cam_model(self) -> nn.Module:
        return self.model
