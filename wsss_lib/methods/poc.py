"""P-OC (paper eq. 8): Puzzle-CAM + OC-CSE with a frozen ordinary classifier.

``L = l(GAP(A), y~) + l(GAP(A_re), y~) + lambda_re(t) |A - A_re|_1 + lambda_cse(t) l(OC(x * (1 - M_r)), (y \\ {r})~)``
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from wsss_lib.methods.base import StepInfo
from wsss_lib.methods.ordinary import ErasingConfig, FrozenOrdinaryMethod, erasing_term
from wsss_lib.methods.puzzle import ReconstructionConfig, puzzle_terms
from wsss_lib.models.cam import CAMClassifier
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["POCConfig", "POC"]


@dataclass(frozen=True)
class POCConfig:
    label_smoothing: float = 0.0
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)
    erasing: ErasingConfig = field(default_factory=ErasingConfig)


class POC(FrozenOrdinaryMethod):
    def __init__(self, generator: CAMClassifier, ordinary: CAMClassifier, cfg: POCConfig = POCConfig()):
        super().__init__(generator, ordinary, cfg)

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        images, labels = batch["image"], batch["label"]
        targets = smooth_multilabel(labels, self.cfg.label_smoothing)
        terms, out = puzzle_terms(self.generator, images, labels, targets, self.cfg.reconstruction, info)
        terms["cse"], _ = erasing_term(self.ordinary, images, out, labels, self.cfg.label_smoothing, self.cfg.erasing, info)
        return terms
