"""Training a segmentation network (DeepLab) on pseudo-masks or ground truth: one loss, pixel-wise cross-entropy.

    L = sum_{p : y_p != 255} CE(logits_p, y_p) / max(#{p : y_p != 255}, 1)

i.e. ``F.cross_entropy(ignore_index=255)``'s mean over the labelled pixels, except that a batch whose crops
are entirely void (possible with padded crops of small pseudo-masks) gives 0 instead of NaN. Optional label
smoothing (the official P-NOC code at HEAD and for COCO uses 0.1; the paper-time VOC recipe none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsss_lib.formats.masks import IGNORE_INDEX
from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.models.deeplab import DeepLab

__all__ = ["SegmentationLossConfig", "segmentation_loss", "SegmentationMethod"]


@dataclass(frozen=True)
class SegmentationLossConfig:
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing (paper-time VOC: 0; official HEAD / COCO: 0.1)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not 255 (0 when there are none)."""
    masks = masks.long()
    valid = masks != IGNORE_INDEX
    total = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX, reduction="sum",
                            label_smoothing=label_smoothing)
    return total / valid.sum().clamp(min=1)


class SegmentationMethod(Method):
    """One network, one phase, one loss term ``ce``."""

    phases = ("main",)

    def __init__(self, model: DeepLab, cfg: SegmentationLossConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        from wsss_lib.models.backbone import param_groups

        return param_groups(self.model, self.model.new_modules(), lr, weight_decay)

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        logits = self.model(batch["image"])
        return {"ce": segmentation_loss(logits, batch["mask"], self.cfg.label_smoothing)}

    def cam_model(self) -> DeepLab:
        """The network the inference stages run (named after the base class's hook)."""
        return self.model

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.model.backbone.normalization
