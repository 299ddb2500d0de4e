"""SGD (or Adam) with polynomial decay per optimizer step, and the switches the official code makes implicit.

Adam is used by the saliency detector (PoolNet trains with Adam, lr 5e-5, wd 5e-4, no decay within its 9
epochs: ``poly_power = 0`` keeps the rate constant) and, later, AMN.

Momentum: the official P-NOC code uses plain SGD (``momentum = 0``, explicit); its ancestors (PSA, IRN,
Puzzle-CAM, OC-CSE, C²AM) *ask* for momentum 0.9 but pass ``weight_decay`` positionally into SGD's
``momentum`` slot, so they effectively train without momentum too (official-code-facts 2, psa#28).
``momentum = 0.0`` therefore reproduces every one of them; ``0.9`` is what their scripts intended.

Gradient accumulation: the official CAM scripts call ``backward()`` on each micro-batch loss without
dividing by the number of accumulation steps, so the micro-batch gradients are *summed*
(``accumulate_mode = "sum"``, an effective learning-rate doubling for 16 x 2 compared with a true batch
of 32); ``"mean"`` divides each micro-batch loss by the number of steps (a true large-batch gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from wsss_lib.ops.schedules import poly_lr_factor

__all__ = ["OptimConfig", "PolySGD", "PolyAdam", "build_optimizer"]


@dataclass(frozen=True)
class OptimConfig:
    algorithm: Literal["sgd", "adam"] = "sgd"
    """``sgd`` (every CAM method, C²AM) or ``adam`` (PoolNet-style saliency detector; ``momentum`` is unused)."""
    lr: float = 0.1
    """Base learning rate of the pretrained weights (new layers get 10x / 20x through their groups)."""
    momentum: float = 0.0
    """0 = official behaviour (see the module docstring); 0.9 = what the ancestors' scripts intended."""
    nesterov: bool = False
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    accumulate_steps: int = 1
    """Micro-batches per optimizer step (the paper trains ResNeSt-269 with 16 x 2)."""
    accumulate_mode: Literal["sum", "mean"] = "sum"
    """``sum``: official (micro-batch gradients added); ``mean``: losses divided by ``accumulate_steps``."""


class _PolySchedule:
    """Mixin: group learning rates ``base_lr * lr_mult * (1 - t / T) ** power`` at optimizer step ``t``."""

    def _init_schedule(self, cfg: OptimConfig, total_steps: int) -> None:
        self.base_lr = cfg.lr
        self.power = cfg.poly_power
        self.total_steps = int(total_steps)
        self.global_step = 0
        self._apply_schedule()

    def _apply_schedule(self) -> None:
        factor = poly_lr_factor(min(self.global_step, self.total_steps), self.total_steps, self.power)
        for group in self.param_groups:
            group["lr"] = self.base_lr * group["lr_mult"] * factor

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        self.global_step += 1
        self._apply_schedule()
        return loss

    def state_dict(self):
        state = super().state_dict()
        state["global_step"] = self.global_step
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self.global_step = int(state_dict.pop("global_step", 0))
        super().load_state_dict(state_dict)
        self._apply_schedule()


def _with_lr_mult(param_groups: list[dict], lr: float) -> list[dict]:
    for group in param_groups:
        group.setdefault("lr_mult", 1.0)
        group["lr"] = lr * group["lr_mult"]
    return param_groups


class PolySGD(_PolySchedule, torch.optim.SGD):
    """SGD with the poly schedule of :class:`_PolySchedule`."""

    def __init__(self, param_groups: list[dict], cfg: OptimConfig, total_steps: int):
        torch.optim.SGD.__init__(self, _with_lr_mult(param_groups, cfg.lr), lr=cfg.lr, momentum=cfg.momentum,
                                 nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        self._init_schedule(cfg, total_steps)


class PolyAdam(_PolySchedule, torch.optim.Adam):
    """Adam (L2 weight decay added to the gradient, as ``torch.optim.Adam``) with the same poly schedule."""

    def __init__(self, param_groups: list[dict], cfg: OptimConfig, total_steps: int):
        torch.optim.Adam.__init__(self, _with_lr_mult(param_groups, cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self._init_schedule(cfg, total_steps)


def build_optimizer(param_groups: list[dict], cfg: OptimConfig, total_steps: int) -> PolySGD | PolyAdam:
    if cfg.accumulate_steps < 1:
        raise ValueError(f"accumulate_steps must be >= 1, got {cfg.accumulate_steps}")
    if cfg.accumulate_mode not in ("sum", "mean"):
        raise ValueError(f"accumulate_mode must be 'sum' or 'mean', got {cfg.accumulate_mode!r}")
    if not param_groups:
        raise ValueError("no trainable parameters were given to the optimizer")
    if cfg.algorithm == "adam":
        return PolyAdam(param_groups, cfg, total_steps)
    if cfg.algorithm != "sgd":
        raise ValueError(f"optimizer algorithm must be 'sgd' or 'adam', got {cfg.algorithm!r}")
    return PolySGD(param_groups, cfg, total_steps)
