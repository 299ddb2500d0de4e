"""DeepLab segmentation networks on any timm backbone (P-NOC section 6.3; official-code-facts 1.14).

Two heads (``DeepLabConfig.head``):

- ``"v2"``: DeepLab-v2's ASPP (Chen et al., TPAMI'17; ``deeplab-pytorch``, the network AMN, RIB and P-NOC's
  ResNet-101 rows train): one 3x3 convolution with bias *straight to the classes* per rate (6, 12, 18, 24),
  the branch logits summed. Weights ~ N(0, 0.01), biases 0.
- ``"v3+"``: DeepLab-v3+ as in the official P-NOC / Puzzle-CAM code (``core/deeplab_utils.py``): ASPP with a
  1x1 branch, three 3x3 atrous branches (rates 1, 6, 12, 18 at output stride 16; doubled at 8, as there) and
  image pooling, each conv (no bias) + norm + ReLU, 256 channels, concatenated and projected (1x1, norm, ReLU,
  dropout 0.5); the decoder reduces the stride-4 low-level features to 48 channels (1x1, norm, ReLU), concatenates
  them with the upsampled ASPP output and applies two 3x3 conv (256) + norm + ReLU (dropout 0.5 and 0.1) and a
  1x1 classifier. ``norm="group"``: GroupNorm(4) as the official code's ``use_group_norm``; ``"batch"``: BN.

The output is upsampled bilinearly to the input size (``align_corners=True`` as the official code). The
backbone's batch norm is frozen by default (official ``mode="fix"``; deeplab-pytorch freezes it too). Only the
head counts as "new" for the 10x / 20x learning-rate groups of ``models.backbone.param_groups``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone

__all__ = ["DeepLabConfig", "ASPPV2", "DeepLabV3PlusHead", "DeepLab", "create_deeplab", "head_label"]


@dataclass(frozen=True)
class DeepLabConfig:
    """Attributes:
        head: ``"v2"`` (DeepLab-v2 ASPP, summed class logits) or ``"v3+"`` (ASPP + decoder).
        rates: atrous rates; empty = the head's own: v2 (6, 12, 18, 24); v3+ (1, 6, 12, 18) at output stride 16,
            doubled at output stride 8 (official ``ASPP``).
        channels: ASPP / decoder channels of v3+ (256).
        low_level_channels: channels the v3+ decoder reduces the stride-4 features to (48).
        norm: v3+ head normalisation, ``"group"`` (official: GroupNorm with ``groups`` groups) or ``"batch"``.
        groups: GroupNorm groups (official: 4).
        dropout: the v3+ head's dropouts (0.5 after the ASPP projection and the first decoder conv, 0.1 after
            the second); ``False`` removes them.
        align_corners: of the bilinear upsampling inside the head and to the input size (official: True).
    """

    head: Literal["v2", "v3+"] = "v3+"
    rates: tuple[int, ...] = ()
    channels: int = 256
    low_level_channels: int = 48
    norm: Literal["group", "batch"] = "group"
    groups: int = 4
    dropout: bool = True
    align_corners: bool = True

    def __post_init__(self) -> None:
        if self.head not in ("v2", "v3+"):
            raise ValueError(f"DeepLab head must be 'v2' or 'v3+', got {self.head!r}")
        if self.norm not in ("group", "batch"):
            raise ValueError(f"DeepLab norm must be 'group' or 'batch', got {self.norm!r}")
        if self.head == "v3+" and (self.channels % self.groups or self.low_level_channels % self.groups):
            raise ValueError(f"channels {self.channels} and low_level_channels {self.low_level_channels} must be "
                             f"divisible by groups {self.groups}")

    def resolved_rates(self, output_stride: int) -> tuple[int, ...]:
        if self.rates:
            return tuple(int(r) for r in self.rates)
        if self.head == "v2":
            return (6, 12, 18, 24)
        return (1, 6, 12, 18) if output_stride >= 16 else (1, 12, 24, 36)


def head_label(head: str) -> str:
    """The paper's name of a head: ``"V2"`` or ``"V3+"`` (Tables 8 and 9, column "Seg.")."""
    return {"v2": "V2", "v3+": "V3+"}[head]


class ASPPV2(nn.Module):
    """DeepLab-v2 ASPP: ``sum_r conv3x3_r(x)``, each branch mapping straight to the class logits."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r, bias=True)
                                      for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, mean=0.0, std=0.01)
            nn.init.constant_(conv.bias, 0.0)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        return sum(branch(x) for branch in self.branches)


def _conv_norm_relu(in_channels: int, out_channels: int, kernel: int, cfg: DeepLabConfig, dilation: int = 1) -> nn.Sequential:
    norm = nn.GroupNorm(cfg.groups, out_channels) if cfg.norm == "group" else nn.BatchNorm2d(out_channels)
    padding = 0 if kernel == 1 else dilation
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False),
                         norm, nn.ReLU(inplace=True))


class DeepLabV3PlusHead(nn.Module):
    """ASPP (+ image pooling) on the last stage and the decoder on the stride-4 stage (see the module docstring)."""

    def __init__(self, in_channels: int, low_channels: int, num_classes: int, rates: tuple[int, ...], cfg: DeepLabConfig):
        super().__init__()
        c = cfg.channels
        self.align_corners = cfg.align_corners
        self.branches = nn.ModuleList(_conv_norm_relu(in_channels, c, 1 if r == 1 else 3, cfg, dilation=r) for r in rates)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv_norm_relu(in_channels, c, 1, cfg))
        self.project = nn.Sequential(_conv_norm_relu(c * (len(rates) + 1), c, 1, cfg),
                                     nn.Dropout(0.5) if cfg.dropout else nn.Identity())
        self.reduce = _conv_norm_relu(low_channels, cfg.low_level_channels, 1, cfg)
        self.decoder = nn.Sequential(_conv_norm_relu(c + cfg.low_level_channels, c, 3, cfg),
                                     nn.Dropout(0.5) if cfg.dropout else nn.Identity(),
                                     _conv_norm_relu(c, c, 3, cfg),
                                     nn.Dropout(0.1) if cfg.dropout else nn.Identity(),
                                     nn.Conv2d(c, num_classes, 1))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low, x = features[0], features[-1]
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        x = self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        return self.decoder(torch.cat([x, self.reduce(low)], dim=1))


class DeepLab(nn.Module):
    """``forward(images) -> (B, num_classes, H, W)`` logits at the input size."""

    def __init__(self, backbone: Backbone, head: nn.Module, cfg: DeepLabConfig, num_classes: int):
        super().__init__()
        self.backbone, self.head, self.cfg, self.num_classes = backbone, head, cfg, num_classes

    def new_modules(self) -> list[nn.Module]:
        return [self.head]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone(images))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=self.cfg.align_corners)


def create_deeplab(backbone_cfg: BackboneConfig, cfg: DeepLabConfig, num_classes: int) -> DeepLab:
    """DeepLab ``cfg.head`` on the timm backbone ``backbone_cfg`` (its ``out_indices`` are set here: the last
    stage for v2, the stride-4 stage and the last one for v3+)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (background included), got {num_classes}")
    rates = cfg.resolved_rates(backbone_cfg.output_stride)
    if cfg.head == "v2":
        backbone = create_backbone(replace(backbone_cfg, out_indices=(-1,)))
        head: nn.Module = ASPPV2(backbone.channels[-1], num_classes, rates)
    else:
        backbone = create_backbone(replace(backbone_cfg, out_indices=(1, -1)))
        if backbone.reduction[0] != 4:
            raise ValueError(f"{backbone_cfg.name}: feature stage 1 has stride {backbone.reduction[0]}, the v3+ decoder "
                             "needs the stride-4 stage")
        head = DeepLabV3PlusHead(backbone.channels[-1], backbone.channels[0], num_classes, rates, cfg)
    return DeepLab(backbone, head, cfg, num_classes)
