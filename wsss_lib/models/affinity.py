"""Affinity networks on a frozen timm backbone, evaluated on the stride-4 grid of the CAMs.

Two heads (``AffinityNetConfig.head``):

- ``"edge"``: the network the official P-NOC pipeline calls AffinityNet, IRN's *boundary branch* (Ahn et al.,
  CVPR'19). Each backbone stage goes through a 1x1 convolution to ``width`` (32) channels without bias, group
  norm (``groups`` = 4) and ReLU, is resampled to the stride-4 grid, and the concatenation goes through a 1x1
  convolution (with bias) to one boundary logit ``B``. Affinity of two pixels = 1 - the maximum boundary
  probability on the segment between them (``wsss_lib.ops.random_walk.edge_affinity``).
- ``"feature"``: the original AffinityNet head of the seed document (Ahn & Kwak, CVPR'18, ``resnet38_aff``):
  1x1 convolutions without bias of the three deepest stages to 64 / 128 / 256 channels with ELU, concatenated,
  then a 1x1 convolution (448 -> 448) with ELU; affinity ``a_ij = exp(-mean_c |f_i - f_j|)``. PSA evaluates it
  on its stride-8 grid; here it is resampled to the stride-4 grid of this pipeline.

IRN takes five stages of a ResNet (strides 4, 4, 8, 16, 16 with output stride 16: its first "stage" is the stem
after max-pooling); here every stage timm returns is used, finer ones average-pooled and coarser ones
bilinearly upsampled to the stride-4 grid (``ceil(H/4) x ceil(W/4)``, the CAM files' ``cam`` grid). The backbone
is frozen (batch norm in eval mode, features detached, as IRN), so only the head learns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone

__all__ = ["AffinityNetConfig", "EdgeHead", "FeatureHead", "AffinityNetwork", "create_affinity_network", "grid_shape"]


@dataclass(frozen=True)
class AffinityNetConfig:
    """Head of the affinity network.

    Attributes:
        head: ``"edge"`` (IRN boundary branch, the official P-NOC choice) or ``"feature"`` (AffinityNet, PSA).
        width: channels per stage of the edge head (IRN: 32).
        groups: group-norm groups of the edge head (IRN: 4).
        feature_widths: channels of the feature head's three stage projections (PSA: 64, 128, 256).
    """

    head: Literal["edge", "feature"] = "edge"
    width: int = 32
    groups: int = 4
    feature_widths: tuple[int, int, int] = (64, 128, 256)

    def __post_init__(self) -> None:
        if self.head not in ("edge", "feature"):
            raise ValueError(f"head must be 'edge' or 'feature', got {self.head!r}")
        if self.width % self.groups:
            raise ValueError(f"width {self.width} must be divisible by groups {self.groups}")


def grid_shape(height: int, width: int) -> tuple[int, int]:
    """The stride-4 grid of an ``height x width`` image (the CAM files' ``cam`` size)."""
    return math.ceil(height / 4), math.ceil(width / 4)


def _to_grid(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == shape:
        return x
    if x.shape[-2] >= shape[0] and x.shape[-1] >= shape[1]:
        return F.adaptive_avg_pool2d(x, shape)
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)


class EdgeHead(nn.Module):
    """IRN's boundary branch: per-stage 1x1 conv + GN + ReLU, resampled to the grid, fused to one logit."""

    def __init__(self, channels: list[int], cfg: AffinityNetConfig) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, cfg.width, 1, bias=False), nn.GroupNorm(cfg.groups, cfg.width))
            for c in channels)
        self.fuse = nn.Conv2d(cfg.width * len(channels), 1, 1, bias=True)

    def forward(self, features: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
        # IRN upsamples after the group norm and applies ReLU last
        maps = [F.relu(_to_grid(stage(f), shape)) for stage, f in zip(self.stages, features)]
        return self.fuse(torch.cat(maps, dim=1))


class FeatureHead(nn.Module):
    """AffinityNet's feature head on the three deepest stages (1x1 conv + ELU each, fused by 1x1 conv + ELU)."""

    def __init__(self, channels: list[int], cfg: AffinityNetConfig) -> None:
        super().__init__()
        if len(channels) < 3:
            raise ValueError(f"the feature head needs three backbone stages, got {len(channels)}")
        self.stages = nn.ModuleList(nn.Conv2d(c, w, 1, bias=False) for c, w in zip(channels[-3:], cfg.feature_widths))
        total = sum(cfg.feature_widths)
        self.fuse = nn.Conv2d(total, total, 1, bias=False)

    def forward(self, features: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
        maps = [_to_grid(F.elu(stage(f)), shape) for stage, f in zip(self.stages, features[-3:])]
        return F.elu(self.fuse(torch.cat(maps, dim=1)))


class AffinityNetwork(nn.Module):
    """Frozen backbone + affinity head; ``forward(x)`` returns the head's map on the stride-4 grid of ``x``:
    ``(B, 1, h, w)`` boundary logits (edge head) or ``(B, D, h, w)`` features (feature head)."""

    def __init__(self, backbone: Backbone, cfg: AffinityNetConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        head = EdgeHead if cfg.head == "edge" else FeatureHead
        self.head = head(backbone.channels, cfg)

    def train(self, mode: bool = True) -> "AffinityNetwork":
        super().train(mode)
        self.backbone.eval()  # frozen: batch norm statistics never move
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = [f.detach() for f in self.backbone(x)]
        return self.head(features, grid_shape(x.shape[-2], x.shape[-1]))


def create_affinity_network(backbone: BackboneConfig, cfg: AffinityNetConfig = AffinityNetConfig()) -> AffinityNetwork:
    """An affinity network on the backbone ``backbone`` (all stages: use ``out_indices=(0, 1, 2, 3, 4)``)."""
    return AffinityNetwork(create_backbone(backbone), cfg)
