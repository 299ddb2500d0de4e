"""Puzzle-CAM (paper eq. 3; official-code-facts 1.3): full image + its 2x2 tiles, merged back.

Losses (``l`` = multi-label soft margin, ``y~`` the possibly smoothed labels, ``y`` the raw labels)::

    cls    = l(GAP(A), y~)                    A    = f(x), the class maps before ReLU
    re_cls = l(GAP(A_re), y~)                 A_re = merge(f(tile(x)))
    re     = mean_{b,c,h,w} |A - A_re| * y    (L1 masked by the *unsmoothed* labels, mean over all entries)
    L_P    = cls + re_cls + alpha(t) * re     alpha: linear 0 -> 4 over the first half of training

``tile`` splits the height then the width in halves and stacks the 4 tiles along the batch axis (row-major:
top-left, top-right, bottom-left, bottom-right); ``merge`` inverts it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import SingleNetworkMethod, StepInfo
from wsss_lib.models.cam import CAMClassifier, CAMOutput
from wsss_lib.ops.schedules import linear_schedule
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["ReconstructionConfig", "PuzzleConfig", "PuzzleCAM", "tile", "merge", "masked_reconstruction_loss",
           "puzzle_terms"]


@dataclass(frozen=True)
class ReconstructionConfig:
    """Weight of the masked L1 term between full-image and merged tile maps (lambda_re / alpha_p)."""

    weight_start: float = 0.0
    weight_end: float = 4.0
    schedule_fraction: float = 0.5
    """Fraction of training over which the weight rises linearly (official: the first half)."""


@dataclass(frozen=True)
class PuzzleConfig:
    label_smoothing: float = 0.0
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)


def tile(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (4B, C, H/2, W/2)``: the four quadrants stacked along the batch axis."""
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(f"Puzzle-CAM tiling needs an even image size, got {height}x{width}")
    top, bottom = x.split(height // 2, dim=2)
    return torch.cat([*top.split(width // 2, dim=3), *bottom.split(width // 2, dim=3)], dim=0)


def merge(tiles: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of :func:`tile`: ``(4B, C, h, w) -> (B, C, 2h, 2w)``."""
    tl, tr, bl, br = tiles.split(batch, dim=0)
    return torch.cat([torch.cat([tl, tr], dim=3), torch.cat([bl, br], dim=3)], dim=2)


def masked_reconstruction_loss(cams: torch.Tensor, merged: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``mean |A - A_re| * y`` over all B*C*H*W entries (zeros of absent classes included, as official)."""
    if cams.shape != merged.shape:
        raise ValueError(f"full-image maps {tuple(cams.shape)} and merged tile maps {tuple(merged.shape)} differ: "
                         "use a crop size divisible by twice the output stride")
    return (torch.abs(cams - merged) * labels[:, :, None, None]).mean()


def puzzle_terms(model: CAMClassifier, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                 cfg: ReconstructionConfig, info: StepInfo) -> tuple[dict[str, torch.Tensor], CAMOutput]:
    """The three weighted Puzzle-CAM terms and the full-image output (reused by P-OC / P-NOC)."""
    out = model(x)
    merged = merge(model(tile(x)).cams, x.shape[0])
    alpha = linear_schedule(info.step, info.total_steps, cfg.weight_start, cfg.weight_end, cfg.schedule_fraction)
    terms = {
        "cls": F.multilabel_soft_margin_loss(out.logits.float(), targets),
        "re_cls": F.multilabel_soft_margin_loss(merged.float().mean(dim=(2, 3)), targets),
        "re": alpha * masked_reconstruction_loss(out.cams.float(), merged.float(), labels),
    }
    return terms, out


class PuzzleCAM(SingleNetworkMethod):
    def __init__(self, model: CAMClassifier, cfg: PuzzleConfig = PuzzleConfig()):
        super().__init__(model, cfg)

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        targets = smooth_multilabel(batch["label"], self.cfg.label_smoothing)
        terms, _ = puzzle_terms(self.model, batch["image"], batch["label"], targets, self.cfg.reconstruction, info)
        return terms
