"""The CAM classifier (paper eq. 1), CAM normalisation ψ (eq. 2) and CAM → label maps.

Official ``Classifier(with_cam=True)``: backbone → 1×1 convolution without bias (``classifier``, C outputs,
Kaiming-normal init) giving the class maps ``A`` (pre-ReLU), then ``logits = GAP(A)``. Because the head is linear
without bias, ``GAP(classifier(F)) == classifier(GAP(F))``, so these logits equal the plain classifier's.
The paper's probability is ``p = σ(GAP(f(x)))``; the sigmoid lives in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone

__all__ = ["CAMOutput", "CAMClassifier", "create_cam_classifier", "psi", "cams_to_labels"]


@dataclass
class CAMOutput:
    """Output of :class:`CAMClassifier`.

    Attributes:
        logits: ``(B, C)`` = spatial mean of ``cams``.
        cams: ``(B, C, h, w)`` class activation maps ``A`` before any ReLU (eq. 1), at the backbone's stride.
        features: the backbone's stage maps (``out_indices``; default the last two), or ``None`` unless asked.
    """

    logits: torch.Tensor
    cams: torch.Tensor
    features: list[torch.Tensor] | None = None


class CAMClassifier(nn.Module):
    """Backbone + bias-free 1×1 convolution to ``num_classes`` class maps; logits = GAP of the maps.

    Works unchanged with ``channels_last`` (``model.to(memory_format=torch.channels_last)`` and a channels-last
    input): all reductions use dims, never ``view``.
    """

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"CAMClassifier: num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.classifier = nn.Conv2d(backbone.channels[-1], num_classes, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(self.classifier.weight)  # official ABC_Model.initialize

    def new_modules(self) -> list[nn.Module]:
        """Modules trained from scratch (10×/20× learning rate in :func:`wsss_lib.models.param_groups`)."""
        return [self.classifier]

    def forward(self, x: torch.Tensor, with_features: bool = False) -> CAMOutput:
        features = self.backbone(x)
        cams = self.classifier(features[-1])
        logits = cams.mean(dim=(2, 3))
        return CAMOutput(logits=logits, cams=cams, features=features if with_features else None)


def create_cam_classifier(backbone_cfg: BackboneConfig, num_classes: int) -> CAMClassifier:
    """Build ``CAMClassifier(create_backbone(backbone_cfg), num_classes)``."""
    return CAMClassifier(create_backbone(backbone_cfg), num_classes)


def psi(cams: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """ψ of eq. 2 (official ``make_cam``): ``ReLU(A) / (max_hw ReLU(A) + eps)`` per image and class.

    ``cams`` is ``(..., h, w)``; the maximum is taken over the last two dims. Values lie in [0, 1); a map's
    maximum becomes ``m / (m + eps)`` (1 up to ``eps/m``) and an all-non-positive map becomes all zeros.
    """
    if cams.ndim < 2:
        raise ValueError(f"psi: expected a tensor (..., h, w), got shape {tuple(cams.shape)}")
    positive = torch.relu(cams)
    return positive / (positive.amax(dim=(-2, -1), keepdim=True) + eps)


def cams_to_labels(cams: torch.Tensor, labels: torch.Tensor, bg_threshold: float) -> torch.Tensor:
    """Label maps from normalised CAMs: 0 = background, ``c + 1`` = class ``c``.

    A constant background score ``bg_threshold`` is prepended and the argmax taken over
    ``[bg, cams of the classes present in the image]``; absent classes (``labels == 0``) can never win.
    Ties go to the background (first channel), as with the official ``np.pad(..., constant_values=t)`` + argmax.

    Args:
        cams: ``(B, C, h, w)`` normalised CAMs (e.g. :func:`psi`).
        labels: ``(B, C)`` 0/1 image-level labels.
        bg_threshold: background score.

    Returns:
        ``(B, h, w)`` int64 label maps.
    """
    if cams.ndim != 4 or labels.shape != cams.shape[:2]:
        raise ValueError(f"cams_to_labels: expected cams (B, C, h, w) and labels (B, C), "
                         f"got {tuple(cams.shape)} and {tuple(labels.shape)}")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("cams_to_labels: labels must be 0/1")
    present = labels.to(torch.bool)[:, :, None, None]
    scores = cams.float().masked_fill(~present, float("-inf"))
    background = scores.new_full((cams.shape[0], 1, *cams.shape[2:]), float(bg_threshold))
    return torch.cat([background, scores], dim=1).argmax(dim=1)
