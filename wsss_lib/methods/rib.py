"""RIB, reducing the information bottleneck (Lee et al., NeurIPS'21; official ``obtain_RIB_CAM.py``): the losses
and the batch sampler of its per-image fine-tuning. The loop itself is ``wsss_lib.inference.rib``.

RIB fine-tunes a trained CAM classifier separately for every image, without the final sigmoid: the loss maximises
the raw (pooled) logits of the present classes, ``L = -sum(logits * labels)`` over the target image's views and a
batch of other images, so that the non-discriminative parts of the object, which the saturated sigmoid had stopped
rewarding, are activated too.

- Pooling (``gndp``, "global non-discriminative region pooling", official ``misc/torchutils.gndp2d``): for a present
  class the mean over all pixels of the map times ``1[map / max(map) < score_th]`` (the most activated pixels are
  left out, so only the rest is pushed up); absent classes are average-pooled. ``pooling="gap"`` is plain GAP.
- The other images of the batch share **none** of the target image's classes (``p_disjoint = 1``): they keep the
  network's other classes working while the target's are pushed.
- Early stops: the target's part of the loss exceeds ``stop_threshold`` in magnitude (600), or, from the second
  step on, more than ``explode_ratio`` (0.7) of the reference view's pixels have some present class above
  ``explode_threshold`` (0.3) of its maximum ("explosion").

Official parameters: 10 steps, SGD lr 8e-6 (10x on the classifier head), wd 1e-4, poly schedule over the 10 steps,
20 other images per batch (crop 512, long side 320-640, flip), score_th 0.4, scales (1.0, 0.5, 1.5, 2.0) + flips
with scale 0.5 left out of the loss; the CAMs of every step (before its update) are summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch

__all__ = ["RIBConfig", "gndp_pool", "rib_loss", "exploded", "disjoint_batches"]


@dataclass(frozen=True)
class RIBConfig:
    steps: int = 10
    lr: float = 8e-6
    head_lr_multiplier: float = 10.0
    weight_decay: float = 1e-4
    batch_size: int = 20
    """Other images per step (official ``RIB_batch`` 20)."""
    p_disjoint: float = 1.0
    """Probability that an image of the batch must share no class with the target (official 1)."""
    pooling: Literal["gndp", "gap"] = "gndp"
    score_threshold: float = 0.4
    stop_threshold: float = 600.0
    explode_threshold: float = 0.3
    explode_ratio: float = 0.7
    loss_excluded_scales: tuple[float, ...] = (0.5,)
    """Scales of the target image left out of the loss (their maps are still accumulated)."""
    crop_size: int = 512
    resize_long_side: tuple[int, int] = (320, 640)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"RIB steps must be >= 1, got {self.steps}")
        if self.pooling not in ("gndp", "gap"):
            raise ValueError(f"RIB pooling must be 'gndp' or 'gap', got {self.pooling!r}")
        if not 0.0 <= self.p_disjoint <= 1.0:
            raise ValueError(f"p_disjoint must be in [0, 1], got {self.p_disjoint}")


def gndp_pool(cams: torch.Tensor, present: torch.Tensor, score_threshold: float, pooling: str = "gndp") -> torch.Tensor:
    """``(B, C)`` pooled logits of raw maps ``(B, C, h, w)``; ``present`` is ``(B, C)`` 0/1 (see module docstring)."""
    if pooling == "gap":
        return cams.mean(dim=(2, 3))
    with torch.no_grad():
        normalised = cams / cams.amax(dim=(2, 3), keepdim=True)
        normalised = torch.where(present[:, :, None, None] > 0, normalised, torch.full_like(normalised, -1.0))
        keep = (normalised < score_threshold).to(cams.dtype)
    return (cams * keep).mean(dim=(2, 3))


def rib_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-sum(logits * labels)``: the raw logits of the present classes, maximised (no sigmoid)."""
    return -(logits * labels).sum()


def exploded(maps: torch.Tensor, threshold: float, ratio: float) -> bool:
    """Whether more than ``ratio`` of the pixels have some map (``(K, h, w)``, ReLU'd) above ``threshold`` × its max."""
    if maps.shape[0] == 0:
        return False
    high = (maps / (maps.amax(dim=(1, 2), keepdim=True) + 1e-5)) > threshold
    return bool(high.any(dim=0).float().mean() > ratio)


def disjoint_batches(labels: np.ndarray, target: np.ndarray, batch_size: int, p_disjoint: float,
                     generator: np.random.Generator, exclude: int | None = None) -> Iterator[np.ndarray]:
    """Endless batches of indices into ``labels`` (``(N, C)`` 0/1): each slot, with probability ``p_disjoint``, an
    image sharing no class with ``target``, otherwise any image (``exclude``: the target's own index, never drawn);
    without repetition within a batch while the pool is large enough (official: a shuffled loader of the pool).

    Raises ``ValueError`` if disjointness is required and no image qualifies."""
    labels = np.asarray(labels) > 0
    allowed = np.ones(len(labels), bool)
    if exclude is not None:
        allowed[exclude] = False
    disjoint = np.flatnonzero(allowed & ~(labels & (np.asarray(target) > 0)).any(axis=1))
    anyone = np.flatnonzero(allowed)
    if p_disjoint > 0 and len(disjoint) == 0:
        raise ValueError(f"no image shares none of the classes {np.flatnonzero(target).tolist()}; RIB's disjoint-class "
                         "batch cannot be built (lower p_disjoint)")
    while True:
        strict = generator.random(batch_size) < p_disjoint
        picks = np.empty(batch_size, np.int64)
        for mask, pool in ((strict, disjoint), (~strict, anyone)):
            count = int(mask.sum())
            if count:
                picks[mask] = generator.choice(pool, count, replace=count > len(pool))
        yield picks
