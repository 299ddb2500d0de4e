"""OC-CSE (paper eqs. 4-6): a generator trained so that erasing its class-r map hides r from a frozen
ordinary classifier. ``L = l(GAP(A), y~) + lambda_cse(t) * l(OC(x * (1 - M_r)), (y \\ {r})~)``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import StepInfo
from wsss_lib.methods.ordinary import ErasingConfig, FrozenOrdinaryMethod, erasing_term
from wsss_lib.models.cam import CAMClassifier
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["OCCSEConfig", "OCCSE"]


@dataclass(frozen=True)
class OCCSEConfig:
    label_smoothing: float = 0.0
    erasing: ErasingConfig = field(default_factory=ErasingConfig)


class OCCSE(FrozenOrdinaryMethod):
    def __init__(self, generator: CAMClassifier, ordinary: CAMClassifier, cfg: OCCSEConfig = OCCSEConfig()):
        super().__init__(generator, ordinary, cfg)

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        images, labels = batch["image"], batch["label"]
        out = self.generator(images)
        cse, _ = erasing_term(self.ordinary, images, out, labels, self.cfg.label_smoothing, self.cfg.erasing, info)
        return {"cls": F.multilabel_soft_margin_loss(out.logits.float(), smooth_multilabel(labels, self.cfg.label_smoothing)),
                "cse": cse}
