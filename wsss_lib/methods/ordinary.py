"""The ordinary classifier (OC) of OC-CSE / P-OC / P-NOC and the class-specific erasing term.

The OC has the generator's architecture with **frozen batch norm** (official ``mode="fix"``) and is
initialised from the vanilla classifier trained with RandAugment + label smoothing (notebook 01). In
OC-CSE and P-OC it is frozen entirely; in P-NOC its weights are trained adversarially (``pnoc.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.methods.erasing import class_maps, remove_classes, sample_classes, soft_erasure_mask
from wsss_lib.models.backbone import BackboneConfig, param_groups
from wsss_lib.models.cam import CAMClassifier, CAMOutput, create_cam_classifier
from wsss_lib.models.norm import freeze_batch_norm
from wsss_lib.ops.schedules import linear_schedule
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["ErasingConfig", "FrozenOrdinaryMethod", "build_ordinary_classifier", "erasing_term"]


@dataclass(frozen=True)
class ErasingConfig:
    """OC-CSE term: ``lambda_cse(t) * l(OC(x * (1 - M_r)), y \\ {r})`` (paper eqs. 4-6)."""

    weight_start: float = 0.3
    weight_end: float = 1.0
    schedule_fraction: float = 1.0
    """lambda_cse rises linearly from ``weight_start`` to ``weight_end`` over this fraction of training."""
    mask_per_image: bool = False
    """False (official OC-CSE / P-NOC): divide the soft mask by its maximum over the whole batch."""
    relu_before_upsample: bool = True
    """True (P-NOC code): ReLU then bilinear upsampling; False: the original OC-CSE order."""


def build_ordinary_classifier(backbone: BackboneConfig, num_classes: int,
                              state_dict: dict[str, torch.Tensor] | None) -> CAMClassifier:
    """A CAM classifier with frozen batch norm, loaded from ``state_dict`` (a ``CAMMethod`` or
    ``CAMClassifier`` state dict); ``None`` keeps the backbone's own initialisation (benchmarks only)."""
    model = create_cam_classifier(replace(backbone, frozen_bn=False, weights="none" if state_dict else backbone.weights),
                                  num_classes)
    if state_dict is not None:
        state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state_dict.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise KeyError(f"ordinary classifier checkpoint does not match the backbone {backbone.name!r}: "
                           f"missing {missing[:10]} ({len(missing)}), unexpected {unexpected[:10]} ({len(unexpected)})")
    return freeze_batch_norm(model)


def erasing_term(ordinary: CAMClassifier, images: torch.Tensor, out: CAMOutput, labels: torch.Tensor,
                 label_smoothing: float, cfg: ErasingConfig, info: StepInfo,
                 classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weighted OC-CSE loss, sampled classes r)``; gradients reach the generator through the mask."""
    if classes is None:
        classes = sample_classes(labels)
    mask = soft_erasure_mask(class_maps(out.cams, classes), images.shape[-2:], cfg.mask_per_image,
                             cfg.relu_before_upsample)
    logits = ordinary(images * (1.0 - mask.to(images.dtype))).logits
    targets = smooth_multilabel(remove_classes(labels, classes), label_smoothing)
    weight = linear_schedule(info.step, info.total_steps, cfg.weight_start, cfg.weight_end, cfg.schedule_fraction)
    return weight * F.multilabel_soft_margin_loss(logits.float(), targets), classes


class FrozenOrdinaryMethod(Method):
    """A generator trained against a frozen ordinary classifier (OC-CSE, P-OC); subclasses state ``losses``."""

    phases = ("main",)

    def __init__(self, generator: CAMClassifier, ordinary: CAMClassifier, cfg):
        super().__init__()
        self.generator = generator
        self.ordinary = ordinary.requires_grad_(False)
        self.cfg = cfg

    def set_train_mode(self) -> None:
        self.generator.train()
        self.ordinary.eval()

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        return param_groups(self.generator, self.generator.new_modules(), lr, weight_decay)

    def cam_model(self) -> CAMClassifier:
        return self.generator
