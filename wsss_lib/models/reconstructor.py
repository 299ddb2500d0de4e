"""ACR's reconstructor network (Kweon et al., CVPR'23; official ``networks/resnet38d.py: Net_recon``).

An encoder with a classification head of its own (``logits``, trained with BCE like the classifier) and a
*feature* output: 1×1 projections of the last three backbone stages (official: 64 + 128 + D channels from ResNet-38's
b4/b5/b7 outputs), resized to the last stage's grid and concatenated. ``decode(features)`` rebuilds the (normalised)
image from features already upsampled to the image size: the official decoder is a pix2pix ``GeneratorUNet``; this
one is a small U-Net of the same role (two scales, ``decoder_width`` channels), documented as a difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone

__all__ = ["ReconstructorConfig", "ReconstructorOutput", "Reconstructor", "create_reconstructor"]


@dataclass(frozen=True)
class ReconstructorConfig:
    dim: int = 256
    """D: channels projected from the last stage (official ``--D 256``)."""
    low_dims: tuple[int, int] = (64, 128)
    """Channels projected from the two stages before the last (official 64 and 128)."""
    decoder_width: int = 64


@dataclass
class ReconstructorOutput:
    logits: torch.Tensor
    cams: torch.Tensor
    features: torch.Tensor
    """``(B, low_dims + dim, h, w)`` at the last stage's stride."""


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _SmallUNet(nn.Module):
    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.inc = _block(cin, width)
        self.down = _block(width, 2 * width, stride=2)
        self.up = _block(2 * width, width)
        self.out = nn.Sequential(_block(2 * width, width), nn.Conv2d(width, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.inc(x)
        deep = self.up(self.down(skip))
        deep = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(torch.cat([skip, deep], dim=1))


class Reconstructor(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int, cfg: ReconstructorConfig = ReconstructorConfig()) -> None:
        super().__init__()
        if len(backbone.channels) < 3:
            raise ValueError("the reconstructor needs the last three backbone stages (out_indices (-3, -2, -1))")
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.channels[-1], num_classes, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)
        dims = (*cfg.low_dims, cfg.dim)
        self.projections = nn.ModuleList(nn.Conv2d(c, d, 1, bias=False) for c, d in zip(backbone.channels[-3:], dims))
        for conv in self.projections:
            nn.init.kaiming_normal_(conv.weight)
        self.decoder = _SmallUNet(sum(dims), cfg.decoder_width)

    def new_modules(self) -> list[nn.Module]:
        return [self.classifier, self.projections, self.decoder]

    def forward(self, x: torch.Tensor) -> ReconstructorOutput:
        stages = self.backbone(x)[-3:]
        cams = self.classifier(stages[-1])
        size = stages[-1].shape[-2:]
        features = torch.cat([F.interpolate(proj(s), size=size, mode="bilinear", align_corners=False)
                              for proj, s in zip(self.projections, stages)], dim=1)
        return ReconstructorOutput(logits=cams.mean(dim=(2, 3)), cams=cams, features=features)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """The reconstructed (normalised) image from features at the image's size (no output activation)."""
        return self.decoder(features)


def create_reconstructor(backbone_cfg: BackboneConfig, num_classes: int,
                         cfg: ReconstructorConfig = ReconstructorConfig()) -> Reconstructor:
    from dataclasses import replace

    return Reconstructor(create_backbone(replace(backbone_cfg, out_indices=(-3, -2, -1))), num_classes, cfg)
