"""AMN's label-conditioned per-pixel classifier (Lee et al., CVPR'22; official ``net/resnet50_amn.py``).

The image labels ``y`` (``(B, C)``, foreground classes) are embedded by a linear layer into the channels of the
last backbone stage and multiplied into its features channel-wise (*label conditioning*); a classifier of four
3×3 convolutions with dilations 6/12/18/24, summed (DeepLab-v2's ASPP, after a 0.1 dropout), maps the
conditioned features to ``C + 1`` per-pixel logits (background first). Changing the labels changes the output:
that is how AMN keeps the activations of absent classes down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone

__all__ = ["AMNNetConfig", "AMNNetwork", "create_amn_network"]


@dataclass(frozen=True)
class AMNNetConfig:
    dilations: tuple[int, ...] = (6, 12, 18, 24)
    """Dilations of the summed 3×3 convolutions of the classifier (official: 6, 12, 18, 24)."""
    dropout: float = 0.1


class AMNNetwork(nn.Module):
    """``forward(x, labels)`` -> ``(B, C + 1, h, w)`` logits at the backbone's output stride."""

    def __init__(self, backbone: Backbone, num_classes: int, cfg: AMNNetConfig = AMNNetConfig()) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"AMNNetwork: num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        self.num_classes = num_classes
        channels = backbone.channels[-1]
        self.label_encoder = nn.Linear(num_classes, channels)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.ModuleList(nn.Conv2d(channels, num_classes + 1, 3, padding=d, dilation=d)
                                        for d in cfg.dilations)
        for conv in self.classifier:  # DeepLab-v2 ASPP initialisation, as the official _ASPP
            nn.init.normal_(conv.weight, mean=0.0, std=0.01)
            nn.init.zeros_(conv.bias)

    def new_modules(self) -> list[nn.Module]:
        return [self.label_encoder, self.classifier]

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.shape != (x.shape[0], self.num_classes):
            raise ValueError(f"AMNNetwork: labels must be (B, {self.num_classes}) for {x.shape[0]} images, got "
                             f"{tuple(labels.shape)}")
        features = self.backbone(x)[-1]
        features = features * self.label_encoder(labels.to(features.dtype))[:, :, None, None]
        features = self.dropout(features)
        return sum(conv(features) for conv in self.classifier)


def create_amn_network(backbone_cfg: BackboneConfig, num_classes: int, cfg: AMNNetConfig = AMNNetConfig()) -> AMNNetwork:
    return AMNNetwork(create_backbone(backbone_cfg), num_classes, cfg)
