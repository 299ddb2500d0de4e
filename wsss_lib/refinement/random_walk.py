"""Random walk propagation of CAMs with a boundary-derived affinity (IRN / P-NOC ``propagate_to_edge``).

On the stride-4 grid, with an edge map ``B`` in [0, 1] (the affinity network's boundary probability):

- affinity between pixels ``i`` and ``j`` closer than ``radius``: ``a_ij = 1 - max_{k on the segment i-j} B_k``
  (path pixels = grid points within distance < 1 of the segment, both ends included), ``a_ii = 1``;
- ``W = a ** beta`` (beta = 10), column-normalised ``T = W D^-1`` with ``D = diag(sum_i W_ij)``; since ``a`` is
  symmetric, ``T^T = D^-1 W`` is the row-stochastic transition matrix of the walk;
- ``rw = v T^t`` with ``v = cam * (1 - B)`` (one row per class, background included) and ``t = 2^exp_times``
  (official: 8 squarings, t = 256).

The official code builds the dense ``HW x HW`` matrix and squares it ``exp_times`` times, which needs
``O((HW)^2)`` memory (1 GiB in float32 for a 128 x 128 grid, and ``O((HW)^3)`` time per squaring).
:func:`random_walk` instead applies ``T`` to ``v`` ``t`` times through the ``K`` neighbour offsets of the
radius (a banded, shift-based sparse product): memory ``O(K HW + C HW)``, time ``O(t K C HW)``, with the same
result up to float rounding. :func:`dense_random_walk` is the official formulation, kept for tests and the
memory/time comparison.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = ["disc_offsets", "segment_offsets", "affinity_weights", "random_walk", "dense_transition",
           "dense_random_walk", "transition_bytes"]


@lru_cache(maxsize=None)
def disc_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """Every offset ``(dy, dx)`` with ``dy^2 + dx^2 < radius^2`` (the centre included), row-major."""
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    return tuple((dy, dx) for dy in range(-radius + 1, radius) for dx in range(-radius + 1, radius)
                 if dy * dy + dx * dx < radius * radius)


@lru_cache(maxsize=None)
def segment_offsets(dy: int, dx: int) -> tuple[tuple[int, int], ...]:
    """Grid points within distance < 1 of the segment from (0, 0) to ``(dy, dx)`` (both ends included)."""
    length2 = dy * dy + dx * dx
    points = []
    for y in range(min(0, dy) - 1, max(0, dy) + 2):
        for x in range(min(0, dx) - 1, max(0, dx) + 2):
            t = 0.0 if length2 == 0 else min(1.0, max(0.0, (y * dy + x * dx) / length2))
            if (y - t * dy) ** 2 + (x - t * dx) ** 2 < 1.0:
                points.append((y, x))
    return tuple(points)


def _shift(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``out[..., p] = x[..., p + (dy, dx)]`` (``fill`` outside the map)."""
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def affinity_weights(edge: torch.Tensor, radius: int = 5, beta: float = 10.0) -> torch.Tensor:
    """``(K, H, W)`` weights ``W(p, p + o_k) = a^beta`` for the offsets of :func:`disc_offsets` (0 where
    ``p + o_k`` is outside the map); ``edge`` is ``(H, W)`` in [0, 1]."""
    if edge.ndim != 2:
        raise ValueError(f"edge must be an (H, W) map, got shape {tuple(edge.shape)}")
    if not torch.isfinite(edge).all() or edge.min() < 0 or edge.max() > 1:
        raise ValueError("edge must hold probabilities in [0, 1]")
    weights = []
    inside = torch.ones_like(edge)
    for dy, dx in disc_offsets(radius):
        path_max = torch.stack([_shift(edge, y, x, 1.0) for y, x in segment_offsets(dy, dx)]).amax(dim=0)
        weights.append((1.0 - path_max).clamp_min(0) ** beta * _shift(inside, dy, dx, 0.0))
    return torch.stack(weights)


def random_walk(cams: torch.Tensor, edge: torch.Tensor, radius: int = 5, beta: float = 10.0,
                exp_times: int = 8) -> torch.Tensor:
    """``(C, H, W)`` propagated maps ``(cams * (1 - edge)) T^(2^exp_times)`` without the dense matrix."""
    if cams.ndim != 3 or cams.shape[1:] != edge.shape:
        raise ValueError(f"cams (C, H, W) {tuple(cams.shape)} must match edge (H, W) {tuple(edge.shape)}")
    weights = affinity_weights(edge.float(), radius, beta)
    degree = weights.sum(dim=0)  # column sums of W (W is symmetric)
    offsets = disc_offsets(radius)
    v = cams.float() * (1.0 - edge.float())
    for _ in range(2 ** exp_times):
        # out_j = sum_i v_i W_ij / D_j with i = j + o over the offsets o
        acc = torch.zeros_like(v)
        for k, (dy, dx) in enumerate(offsets):
            acc += _shift(v, dy, dx, 0.0) * weights[k]
        v = acc / degree
    return v


def dense_transition(edge: torch.Tensor, radius: int = 5, beta: float = 10.0) -> torch.Tensor:
    """The official dense ``(HW, HW)`` matrix ``T = W D^-1`` (columns sum to 1)."""
    h, w = edge.shape
    weights = affinity_weights(edge.float(), radius, beta)
    dense = torch.zeros(h * w, h * w, dtype=torch.float32)
    index = torch.arange(h * w).view(h, w)
    for k, (dy, dx) in enumerate(disc_offsets(radius)):
        valid = weights[k] > 0
        j = index[valid]
        i = (index + dy * w + dx)[valid]  # p + o, inside the map wherever the weight is non-zero
        dense[i, j] = weights[k][valid]
    return dense / dense.sum(dim=0, keepdim=True)


def dense_random_walk(cams: torch.Tensor, edge: torch.Tensor, radius: int = 5, beta: float = 10.0,
                      exp_times: int = 8) -> torch.Tensor:
    """The official formulation: ``T`` squared ``exp_times`` times, then ``v T`` (``O((HW)^2)`` memory)."""
    transition = dense_transition(edge, radius, beta)
    for _ in range(exp_times):
        transition = transition @ transition
    v = (cams.float() * (1.0 - edge.float())).flatten(1)
    return (v @ transition).view_as(cams)


def transition_bytes(height: int, width: int, radius: int = 5) -> dict[str, int]:
    """Float32 bytes held by the dense matrix and by the banded weights for an ``height x width`` grid."""
    k = len(disc_offsets(radius))
    return {"dense": 4 * (height * width) ** 2, "banded": 4 * k * height * width}

