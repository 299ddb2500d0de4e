"""The C²AM network (Xie et al., CVPR'22; P-NOC section 2.4.4): a class-agnostic foreground/background
disentangling head on the concatenation of the backbone's last two stages.

Official ``Disentangler`` (``core/ccam.py`` of P-NOC, ``WSSS/core/model.py`` of CCAM): ``z = BN(conv3x3(x))``
(one channel, no convolution bias), ``P = sigmoid(z)`` the probability that a pixel belongs to the first
partition, and the per-image partition vectors ``v_fg = (1/HW) sum_p P_p x_p``, ``v_bg = (1/HW) sum_p (1 - P_p) x_p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone

__all__ = ["C2AMOutput", "Disentangler", "C2AMNetwork", "create_c2am_network"]


@dataclass
class C2AMOutput:
    """``logits``: ``(B, 1, h, w)`` head output z before the sigmoid; ``fg``/``bg``: ``(B, C)`` partition vectors."""

    logits: torch.Tensor
    fg: torch.Tensor
    bg: torch.Tensor

    @property
    def probability(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class Disentangler(nn.Module):
    """3x3 convolution (no bias) + batch norm to one channel; partition vectors weighted by its sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> C2AMOutput:
        z = self.bn(self.conv(x))
        p = torch.sigmoid(z.float()).flatten(2)  # (B, 1, HW)
        feats = x.float().flatten(2)  # (B, C, HW)
        hw = feats.shape[-1]
        fg = (feats * p).sum(dim=2) / hw
        bg = (feats * (1 - p)).sum(dim=2) / hw
        return C2AMOutput(logits=z, fg=fg, bg=bg)


class C2AMNetwork(nn.Module):
    """Backbone (last two stages, equal stride at OS16) -> concatenation -> :class:`Disentangler`."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        if len(backbone.channels) < 2:
            raise ValueError("C2AMNetwork needs a backbone returning (at least) its last two stages")
        self.backbone = backbone
        self.head = Disentangler(sum(backbone.channels[-2:]))

    def new_modules(self) -> list[nn.Module]:
        return [self.head]

    def forward(self, x: torch.Tensor) -> C2AMOutput:
        low, high = self.backbone(x)[-2:]
        if low.shape[-2:] != high.shape[-2:]:
            high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([high, low], dim=1))


def create_c2am_network(cfg: BackboneConfig) -> C2AMNetwork:
    return C2AMNetwork(create_backbone(cfg))
