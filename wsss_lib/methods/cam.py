"""Vanilla CAM classifier (paper eq. 1): multi-label soft-margin loss on GAP of the class maps.

Loss: ``L = l_cls(GAP(A), y~)`` with ``l_cls`` the multi-label soft margin loss (mean over classes of
binary cross-entropy with logits) and ``y~`` the labels, smoothed when ``label_smoothing > 0``
(``(1 - a) y + a / 2``; the ordinary classifier of OC-CSE / P-NOC is trained with RandAugment and a = 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import SingleNetworkMethod, StepInfo
from wsss_lib.models.cam import CAMClassifier
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["CAMConfig", "CAMMethod"]


@dataclass(frozen=True)
class CAMConfig:
    label_smoothing: float = 0.0
    """Amount ``a`` of multi-label smoothing (0.1 for "+LS" runs and the ordinary classifier)."""


class CAMMethod(SingleNetworkMethod):
    def __init__(self, model: CAMClassifier, cfg: CAMConfig = CAMConfig()):
        super().__init__(model, cfg)

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"])
        targets = smooth_multilabel(batch["label"], self.cfg.label_smoothing)
        return {"cls": F.multilabel_soft_margin_loss(out.logits.float(), targets)}
