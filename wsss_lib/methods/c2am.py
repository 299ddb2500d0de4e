"""C²AM and C²AM-H losses (P-NOC eqs. 7 and 11; official-code-facts 1.12 and 4).

With ``s(a, b) = clamp(cos(a, b), sim_min, sim_max)`` over all ``N x N`` pairs of the batch::

    L_pos(V) = mean_ij  w_ij * -log s(v_i, v_j),   w_ij = exp(-alpha * (rank_i(j) - 1))
    L_neg    = mean_ij  -log(1 - s(v_bg_i, v_fg_j))
    L_c2am   = L_pos(V_fg) + L_neg + L_pos(V_bg)

``rank_i(j)`` is the 0-based position of ``j`` in row ``i`` sorted by similarity, descending (the diagonal gets
``e^alpha``, the nearest neighbour 1). C²AM-H adds ``hint_weight * L_h`` with
``L_h = mean_{p: hint_p >= hint_threshold} BCEWithLogits(z_p, 1 - hint_label_smoothing / 2)``: the pixels where
the priors' CAM (max over the image's classes, normalised) is confident are pushed to the first partition, which
anchors it as the foreground. Plain C²AM has no such anchor: :func:`border_is_background` is the original's
heuristic to decide which partition is the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.models.backbone import param_groups
from wsss_lib.models.c2am import C2AMNetwork

__all__ = ["C2AMConfig", "pairwise_similarity", "rank_weights", "positive_loss", "negative_loss", "c2am_loss",
           "hint_loss", "border_mean", "border_is_background", "C2AMMethod"]


@dataclass(frozen=True)
class C2AMConfig:
    alpha: float = 0.25
    """Rank-decay of the positive pairs' weights."""
    sim_min: float = 5e-4
    sim_max: float = 0.9995
    """Cosine similarities are clamped to [sim_min, sim_max] before the logarithms."""
    hint_weight: float = 1.0
    """lambda_h of eq. 11 (0 = plain C²AM, no hints)."""
    hint_threshold: float = 0.4
    """delta_fg: foreground hints where the priors' CAM >= this (official: 0.4 VOC, 0.3 COCO)."""
    hint_label_smoothing: float = 0.1
    """The hint target is 1 - a/2 (0.95 with the official a = 0.1)."""


def pairwise_similarity(a: torch.Tensor, b: torch.Tensor, cfg: C2AMConfig = C2AMConfig()) -> torch.Tensor:
    """``(N, M)`` clamped cosine similarities between the rows of ``a`` and of ``b``."""
    sim = F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).T
    return sim.clamp(cfg.sim_min, cfg.sim_max)


def rank_weights(sim: torch.Tensor, alpha: float) -> torch.Tensor:
    """``exp(-alpha * (rank - 1))`` with ``rank`` the 0-based descending position of each entry in its row."""
    order = sim.detach().argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)
    return torch.exp(-alpha * (rank.float() - 1))


def positive_loss(v: torch.Tensor, cfg: C2AMConfig = C2AMConfig()) -> torch.Tensor:
    """Rank-weighted ``-log s`` over all pairs of one partition's vectors (official ``SimMaxLoss``)."""
    sim = pairwise_similarity(v, v, cfg)
    return (-torch.log(sim) * rank_weights(sim, cfg.alpha)).mean()


def negative_loss(bg: torch.Tensor, fg: torch.Tensor, cfg: C2AMConfig = C2AMConfig()) -> torch.Tensor:
    """``-log(1 - s)`` over all background/foreground pairs (official ``SimMinLoss``)."""
    return -torch.log(1 - pairwise_similarity(bg, fg, cfg)).mean()


def c2am_loss(fg: torch.Tensor, bg: torch.Tensor, cfg: C2AMConfig = C2AMConfig()) -> dict[str, torch.Tensor]:
    """The three equally weighted terms of eq. 7."""
    return {"pos_fg": positive_loss(fg, cfg), "neg": negative_loss(bg, fg, cfg), "pos_bg": positive_loss(bg, cfg)}


def hint_loss(logits: torch.Tensor, hints: torch.Tensor, cfg: C2AMConfig = C2AMConfig()) -> torch.Tensor:
    """Weighted BCE pushing the head's logits towards the first partition where ``hints >= hint_threshold``.

    ``logits``: ``(B, 1, h, w)``; ``hints``: ``(B, 1, h, w)`` or ``(B, h, w)`` in [0, 1] at the same size (resize
    the priors' CAMs to the head's resolution first, bicubic as the official code). No hint pixel in the batch
    gives a zero loss (that keeps the graph connected).
    """
    hints = hints.reshape(logits.shape)
    fg = hints >= cfg.hint_threshold
    if not fg.any():
        return logits.sum() * 0.0
    target = torch.full_like(logits[fg], 1.0 - cfg.hint_label_smoothing / 2, dtype=torch.float32)
    return cfg.hint_weight * F.binary_cross_entropy_with_logits(logits[fg].float(), target)


def border_mean(probability: torch.Tensor, width: int = 4) -> float:
    """Mean of ``probability`` (``(..., H, W)``) over the ``width``-pixel frame along the image borders."""
    p = probability.float()
    border = torch.ones_like(p, dtype=torch.bool)
    border[..., width:p.shape[-2] - width, width:p.shape[-1] - width] = False
    return float(p[border].mean())


def border_is_background(probability: torch.Tensor, width: int = 4, threshold: float = 0.5) -> bool:
    """C²AM's heuristic: if the first partition's mean probability over the image borders (``width`` pixels)
    exceeds ``threshold``, the first partition is the background and the maps must be inverted."""
    return border_mean(probability, width) > threshold


class C2AMMethod(Method):
    """C²AM (eq. 7) or, when the batches carry a ``hint`` map, C²AM-H (eq. 11) on the shared trainer.

    Terms: ``pos_fg``, ``neg``, ``pos_bg`` and, with hints, ``hint`` (already weighted by ``hint_weight``). The
    hint maps (``(B, 1, crop, crop)``, the priors' normalised CAM transformed with the image) are resized
    **bicubic** to the head's resolution, as the official ``CAMsDataset`` pipeline does.

    Parameter groups: the official SGD groups (backbone 1x/2x, head 10x/20x), as P-NOC's ``train_hints.py``.
    CCAM's own script puts the head's convolution in the 1x group and never optimises the batch-norm affine
    parameters (a module-identity quirk, official-code-facts section 4); that quirk is not reproduced.
    """

    phases = ("main",)

    def __init__(self, network: C2AMNetwork, cfg: C2AMConfig = C2AMConfig()) -> None:
        super().__init__()
        self.network = network
        self.cfg = cfg

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        return param_groups(self.network, self.network.new_modules(), lr, weight_decay)

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        out = self.network(batch["image"])
        terms = c2am_loss(out.fg, out.bg, self.cfg)
        if "hint" in batch and self.cfg.hint_weight > 0:
            hints = F.interpolate(batch["hint"].float(), size=out.logits.shape[-2:], mode="bicubic", align_corners=False)
            terms["hint"] = hint_loss(out.logits, hints, self.cfg)
        return terms

    def cam_model(self) -> C2AMNetwork:
        return self.network

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.network.backbone.normalization
