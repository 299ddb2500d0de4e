"""A PoolNet-style saliency detector (Liu et al., CVPR'19) on any timm backbone.

The paper trains PoolNet on C²AM-H's pseudo-saliency masks (P-NOC section 6.2). PoolNet's design, kept here:

- a **global guidance module** (GGM): a pyramid pooling module on the deepest stage (adaptive average pooling to
  1, 3 and 5 bins plus the identity branch, 3x3 convolutions, summed), whose output is upsampled and added to
  every level of the top-down path, so that coarse "where is the object" information reaches every scale;
- **feature aggregation modules** (FAM) after each top-down merge: average pooling at 2, 4 and 8, a 3x3
  convolution per branch, upsampling, summed with the input, then a fusing 3x3 convolution;
- a top-down feature pyramid over the backbone's stages (1x1 lateral convolutions to ``width`` channels);
- a 1x1 convolution to one saliency logit at the finest level (stride 4 on the default backbones), upsampled
  bilinearly to the input size.

Simplifications against the official ResNet-50 PoolNet (say so where results are reported): one ``width`` for
all levels (PoolNet uses 128-512), no edge branch (PoolNet's joint edge training is optional there too), and
the backbone is any timm ``features_only`` model with its own ImageNet weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone

__all__ = ["DetectorConfig", "GlobalGuidance", "FeatureAggregation", "PoolNetDetector", "create_saliency_detector"]


@dataclass(frozen=True)
class DetectorConfig:
    width: int = 128
    """Channels of every pyramid level."""
    guidance_bins: tuple[int, ...] = (1, 3, 5)
    """Adaptive pooling sizes of the global guidance module (PoolNet's PPM)."""
    pool_scales: tuple[int, ...] = (2, 4, 8)
    """Average-pooling factors of each feature aggregation module."""


def _conv3x3(cin: int, cout: int) -> nn.Sequential:
    # no batch norm in the head, as PoolNet: it trains with batch 1, and batch statistics of crops differ from the
    # full images seen at inference (with BN here the eval-mode outputs saturated at 1 on the smoke benchmark)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class GlobalGuidance(nn.Module):
    """Pyramid pooling on the deepest features: identity + pooled branches, each 3x3 conv, summed."""

    def __init__(self, channels: int, width: int, bins: tuple[int, ...]) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.identity = _conv3x3(channels, width)
        self.branches = nn.ModuleList(_conv3x3(channels, width) for _ in self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        out = self.identity(x)
        for b, branch in zip(self.bins, self.branches):
            out = out + F.interpolate(branch(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear", align_corners=False)
        return out


class FeatureAggregation(nn.Module):
    """PoolNet's FAM: ``fuse(relu(x + sum_s up(conv(avgpool_s(x)))))``."""

    def __init__(self, width: int, scales: tuple[int, ...]) -> None:
        super().__init__()
        self.scales = tuple(scales)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in self.scales)
        self.fuse = _conv3x3(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        out = x
        for s, conv in zip(self.scales, self.convs):
            pooled = F.avg_pool2d(x, kernel_size=s, stride=s, ceil_mode=True)
            out = out + F.interpolate(conv(pooled), size=size, mode="bilinear", align_corners=False)
        return self.fuse(F.relu(out))


class PoolNetDetector(nn.Module):
    """Backbone stages -> lateral 1x1 -> top-down path with global guidance and FAMs -> one logit map."""

    def __init__(self, backbone: Backbone, cfg: DetectorConfig = DetectorConfig()) -> None:
        super().__init__()
        if len(backbone.channels) < 2:
            raise ValueError("PoolNetDetector needs a backbone returning several stages (BackboneConfig.out_indices)")
        self.backbone = backbone
        self.cfg = cfg
        self.laterals = nn.ModuleList(nn.Conv2d(c, cfg.width, 1) for c in backbone.channels)
        self.guidance = GlobalGuidance(backbone.channels[-1], cfg.width, cfg.guidance_bins)
        self.aggregations = nn.ModuleList(FeatureAggregation(cfg.width, cfg.pool_scales)
                                          for _ in backbone.channels[:-1])
        self.classifier = nn.Conv2d(cfg.width, 1, 1)

    def new_modules(self) -> list[nn.Module]:
        return [self.laterals, self.guidance, self.aggregations, self.classifier]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` saliency logits at the input size."""
        feats = self.backbone(x)
        guide = self.guidance(feats[-1])
        top = self.laterals[-1](feats[-1]) + guide
        for level in range(len(feats) - 2, -1, -1):
            size = feats[level].shape[-2:]
            up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
            top = self.aggregations[level](self.laterals[level](feats[level]) + up(top) + up(guide))
        logits = self.classifier(top)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def create_saliency_detector(backbone: BackboneConfig, cfg: DetectorConfig = DetectorConfig()) -> PoolNetDetector:
    """A detector on ``backbone`` (its ``out_indices`` should name the stages to use, e.g. ``(1, 2, 3, 4)``)."""
    return PoolNetDetector(create_backbone(backbone), cfg)
