"""Training the affinity network on affinity labels (AffinityNet, Ahn & Kwak CVPR'18; IRN, Ahn et al. CVPR'19).

Pairs: every pixel ``p`` of the stride-4 grid and every search direction ``o`` of IRN's ``PathIndex(radius)``
(:func:`pair_offsets`: ``{(0, x): 1 <= x < r} U {(y, x): 1 <= y < r, |x| < r, x^2 + y^2 < r^2}``, each
unordered pair once; radius 10 in IRN / P-NOC, 5 in PSA's stride-8 grid). The labels are the affinity labels
downsampled (nearest) to the grid; a pair counts when both ends are inside the crop and not 255:

- ``pos_bg``: same label, background; ``pos_fg``: same label, a class; ``neg``: different labels.

Loss (IRN ``train_irn.py``; PSA ``train_aff.py`` is the same with its own affinity)::

    L = 1/4 mean_{pos_bg} -log(a + 1e-5) + 1/4 mean_{pos_fg} -log(a + 1e-5) + 1/2 mean_{neg} -log(1 + 1e-5 - a)

each mean taken over the whole batch (sum / (count + 1e-5)). ``a`` is the edge head's path affinity
``1 - max sigmoid(B)`` on the segment, or the feature head's ``exp(-mean_c |f_p - f_q|)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.models.affinity import AffinityNetwork
from wsss_lib.ops.random_walk import segment_offsets

__all__ = ["AffinityLossConfig", "pair_offsets", "pair_labels", "pair_affinities", "affinity_loss_terms",
           "AffinityMethod"]

IGNORE = 255
EPS = 1e-5


@dataclass(frozen=True)
class AffinityLossConfig:
    """Attributes:
        radius: pair search radius on the stride-4 grid (IRN / P-NOC: 10).
        head_lr_mult: learning-rate multiplier of the head (IRN trains its edge layers at 1x the base lr).
    """

    radius: int = 10
    head_lr_mult: float = 1.0

    def __post_init__(self) -> None:
        if self.radius < 2:
            raise ValueError(f"radius must be >= 2, got {self.radius}")


@lru_cache(maxsize=None)
def pair_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """IRN's search directions: one offset per unordered pair of pixels closer than ``radius``."""
    right = [(0, x) for x in range(1, radius)]
    below = [(y, x) for y in range(1, radius) for x in range(-radius + 1, radius) if x * x + y * y < radius * radius]
    return tuple(right + below)


def _shifted(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``out[..., p] = x[..., p + (dy, dx)]`` over the last two dimensions (``fill`` outside)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (abs(dx), abs(dx), abs(dy), abs(dy)), value=fill)
    return padded[..., abs(dy) + dy: abs(dy) + dy + h, abs(dx) + dx: abs(dx) + dx + w]


def pair_labels(labels: torch.Tensor, radius: int) -> dict[str, torch.Tensor]:
    """``{"pos_bg", "pos_fg", "neg"}`` float masks ``(B, D, h, w)`` of the pairs ``(p, p + o_d)`` for ``(B, h, w)``
    integer labels (255 = uncertain; targets outside the map are invalid)."""
    labels = labels.long()
    target = torch.stack([_shifted(labels.float(), dy, dx, IGNORE).long() for dy, dx in pair_offsets(radius)], dim=1)
    source = labels[:, None].expand_as(target)
    valid = (source != IGNORE) & (target != IGNORE)
    same = valid & (source == target)
    return {"pos_bg": (same & (source == 0)).float(), "pos_fg": (same & (source > 0)).float(),
            "neg": (valid & (source != target)).float()}


def pair_affinities(output: torch.Tensor, head: str, radius: int) -> torch.Tensor:
    """``(B, D, h, w)`` affinities of the pairs of :func:`pair_offsets` from the network's output."""
    offsets = pair_offsets(radius)
    if head == "edge":
        edge = torch.sigmoid(output.float())  # (B, 1, h, w)
        path_max = []
        for dy, dx in offsets:
            points = [_shifted(edge, y, x, 1.0) for y, x in segment_offsets(dy, dx)]
            path_max.append(torch.stack(points, dim=0).amax(dim=0))
        return 1.0 - torch.cat(path_max, dim=1)
    features = output.float()
    return torch.cat([torch.exp(-(features - _shifted(features, dy, dx, 0.0)).abs().mean(dim=1, keepdim=True))
                      for dy, dx in offsets], dim=1)


def affinity_loss_terms(affinity: torch.Tensor, pairs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weighted terms ``pos_bg`` (1/4), ``pos_fg`` (1/4) and ``neg`` (1/2) of the balanced affinity loss."""
    pos = -torch.log(affinity + EPS)
    neg = -torch.log(1.0 + EPS - affinity)

    def mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (values * mask).sum() / (mask.sum() + EPS)

    return {"pos_bg": 0.25 * mean(pos, pairs["pos_bg"]), "pos_fg": 0.25 * mean(pos, pairs["pos_fg"]),
            "neg": 0.5 * mean(neg, pairs["neg"])}


class AffinityMethod(Method):
    """Trains the head of an :class:`AffinityNetwork` on affinity labels (the batch's ``mask``)."""

    phases = ("main",)

    def __init__(self, network: AffinityNetwork, cfg: AffinityLossConfig = AffinityLossConfig()) -> None:
        super().__init__()
        self.network = network
        self.cfg = cfg

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        params = [p for p in self.network.head.parameters() if p.requires_grad]
        mult = self.cfg.head_lr_mult
        return [{"params": params, "lr": lr * mult, "lr_mult": mult, "weight_decay": weight_decay, "name": "head"}]

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        output = self.network(batch["image"])
        labels = F.interpolate(batch["mask"][:, None].float(), size=output.shape[-2:], mode="nearest")[:, 0]
        pairs = pair_labels(labels, self.cfg.radius)
        return affinity_loss_terms(pair_affinities(output, self.network.cfg.head, self.cfg.radius), pairs)

    def cam_model(self) -> AffinityNetwork:
        return self.network
