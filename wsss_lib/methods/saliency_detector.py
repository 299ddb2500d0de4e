"""Training the saliency detector on pseudo-saliency masks: per-pixel binary cross-entropy.

The batch's ``mask`` holds 1 (salient), 0 (not salient) and 255 (padding of the crop, ignored). PoolNet's
official loss is the *summed* BCE divided by the batch size (``iter_size`` 10, batch 1); here it is the mean
over the valid pixels, which only rescales the learning rate (``OptimConfig.lr`` is a profile field).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsss_lib.formats.masks import IGNORE_INDEX
from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.models.backbone import param_groups
from wsss_lib.models.saliency import PoolNetDetector

__all__ = ["saliency_bce", "SaliencyDetectorMethod"]


def saliency_bce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits of ``logits`` ``(B, 1, H, W)`` against ``mask`` ``(B, H, W)`` in {0, 1, 255=ignored}."""
    valid = mask != IGNORE_INDEX
    if not valid.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[:, 0][valid].float(), mask[valid].float())


class SaliencyDetectorMethod(Method):
    """One network, one term (``bce``); parameter groups: backbone 1x/2x, new layers 10x/20x of ``lr``."""

    phases = ("main",)

    def __init__(self, network: PoolNetDetector, head_lr_mult: bool = False) -> None:
        super().__init__()
        self.network = network
        self.head_lr_mult = head_lr_mult

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        groups = param_groups(self.network, self.network.new_modules(), lr, weight_decay)
        if not self.head_lr_mult:  # PoolNet: one learning rate for every parameter
            for group in groups:
                group["lr_mult"], group["lr"] = 1.0, lr
        return groups

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        return {"bce": saliency_bce(self.network(batch["image"]), batch["mask"])}

    def cam_model(self) -> PoolNetDetector:
        return self.network

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.network.backbone.normalization
