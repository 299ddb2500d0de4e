"""Random walk propagation of CAMs over pixel affinities (AffinityNet / IRN / P-NOC ``propagate_to_edge``).

On the stride-4 grid, for every pixel ``i`` and every offset ``o`` of the disc of ``radius`` (centre included,
:func:`disc_offsets`) an affinity ``a(i, i+o)`` in [0, 1] is given:

- from a boundary map ``B`` (IRN's edge branch, the official P-NOC pipeline; :func:`edge_affinity`):
  ``a_ij = 1 - max_{k on the segment i-j} B_k`` (path pixels = grid points within distance < 1 of the segment,
  both ends included), so ``a_ii = 1 - B_i`` ... as in IRN, where the self-loop is the path of length 0;
- from pixel features ``f`` (the original AffinityNet head, :func:`feature_affinity`):
  ``a_ij = exp(-mean_c |f_i - f_j|)``.

``W = a ** beta`` (beta = 10) is symmetric; the walk uses the column-normalised ``T = W D^-1`` with
``D = diag(sum_i W_ij)`` and computes ``rw = v T^t`` with ``t = 2^exp_times`` (official: 8 squarings,
t = 256). ``v`` is one row per class; :func:`propagate_to_edge` damps it by ``(1 - B)`` first, as IRN does.

The official code builds the dense ``HW x HW`` matrix and squares it ``exp_times`` times: ``O((HW)^2)`` memory
(1 GiB in float32 for the 128 x 128 grid of a 512 crop) and ``O((HW)^3)`` time per squaring. Here ``T`` is a
sparse CSR matrix with ``K * HW`` entries (K = 69 offsets at radius 5) and ``v`` is multiplied by it ``t``
times: memory ``O(K HW + C HW)``, time ``O(t K C HW)``, the same result up to float rounding (tested against
:func:`dense_random_walk`, the official formulation, which is kept for the tests and the benchmark).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F

from wsss_lib.timing import timed

__all__ = ["disc_offsets", "segment_offsets", "edge_affinity", "feature_affinity", "affinity_weights",
           "transition_matrix", "random_walk", "propagate_to_edge", "dense_transition", "dense_random_walk",
           "transition_bytes"]


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


@lru_cache(maxsize=None)
def _path_table(radius: int) -> torch.Tensor:
    """``(K, L)`` indices into the ``(2r+1)^2`` window around a pixel (row-major, centre at ``r, r``) of the path
    points of each disc offset, padded with the centre (which every path contains)."""
    side = 2 * radius + 1
    paths = [[(y + radius) * side + (x + radius) for y, x in segment_offsets(dy, dx)] for dy, dx in disc_offsets(radius)]
    longest = max(len(p) for p in paths)
    centre = radius * side + radius
    return torch.tensor([p + [centre] * (longest - len(p)) for p in paths], dtype=torch.long)


def _check_map(edge: torch.Tensor, name: str) -> None:
    if edge.ndim != 2:
        raise ValueError(f"{name} must be an (H, W) map, got shape {tuple(edge.shape)}")
    if not torch.isfinite(edge).all() or edge.min() < 0 or edge.max() > 1:
        raise ValueError(f"{name} must hold probabilities in [0, 1]")


def _inside(h: int, w: int, radius: int, device) -> torch.Tensor:
    """``(K, H, W)`` bool: ``p + o_k`` lies inside the map."""
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    off = torch.tensor(disc_offsets(radius), device=device)
    dy, dx = off[:, 0].view(-1, 1, 1), off[:, 1].view(-1, 1, 1)
    return (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)


def edge_affinity(edge: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """``(K, H, W)`` affinities ``1 - max(edge on the path p -> p + o_k)`` (1 for the centre offset), 0 where
    ``p + o_k`` is outside the map."""
    _check_map(edge, "edge")
    h, w = edge.shape
    side = 2 * radius + 1
    # every pixel's (2r+1)^2 window, padded with 1 (a wall) outside the map: (side^2, H*W)
    window = F.unfold(edge.float()[None, None], side, padding=radius).squeeze(0)
    pad_mask = F.unfold(torch.ones(1, 1, h, w, device=edge.device), side, padding=radius).squeeze(0) == 0
    window = window.masked_fill(pad_mask, 1.0)
    table = _path_table(radius).to(edge.device)
    path_max = window[table].amax(dim=1)  # (K, H*W)
    affinity = (1.0 - path_max).clamp_min(0).view(-1, h, w)
    affinity[disc_offsets(radius).index((0, 0))] = 1.0  # self-loops of weight 1, as IRN's affinity_sparse2dense
    return affinity * _inside(h, w, radius, edge.device)


def feature_affinity(features: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """``(K, H, W)`` affinities ``exp(-mean_c |f_p - f_{p+o_k}|)`` of ``(C, H, W)`` features, 0 outside the map."""
    if features.ndim != 3:
        raise ValueError(f"features must be (C, H, W), got shape {tuple(features.shape)}")
    c, h, w = features.shape
    side = 2 * radius + 1
    window = F.unfold(features.float()[None], side, padding=radius).view(c, side * side, h * w)
    index = torch.tensor([(dy + radius) * side + (dx + radius) for dy, dx in disc_offsets(radius)],
                         device=features.device)
    distance = (window[:, index] - features.float().view(c, 1, h * w)).abs().mean(dim=0)  # (K, H*W)
    return torch.exp(-distance).view(-1, h, w) * _inside(h, w, radius, features.device)


def affinity_weights(edge: torch.Tensor, radius: int = 5, beta: float = 10.0) -> torch.Tensor:
    """``(K, H, W)`` walk weights ``W(p, p + o_k) = a^beta`` of :func:`edge_affinity` (0 outside the map)."""
    return edge_affinity(edge, radius) ** beta


def transition_matrix(weights: torch.Tensor, radius: int) -> torch.Tensor:
    """Sparse CSR ``(HW, HW)`` matrix ``M = T^T`` (``M[j, i] = W_ij / D_j``) from ``(K, H, W)`` weights, so that
    one step of the walk is ``v <- M v`` for ``v`` of shape ``(HW, C)``."""
    k, h, w = weights.shape
    offsets = disc_offsets(radius)
    if k != len(offsets):
        raise ValueError(f"weights have {k} offsets, radius {radius} has {len(offsets)}")
    degree = weights.sum(dim=0)  # D_j = sum_i W_ij (W symmetric: the sum over j's neighbours)
    if (degree <= 0).any():
        raise ValueError("every pixel needs a positive self-affinity (degree > 0); check the affinity map")
    index = torch.arange(h * w, device=weights.device).view(h, w)
    delta = torch.tensor([dy * w + dx for dy, dx in offsets], device=weights.device).view(k, 1, 1)
    valid = weights > 0
    rows = index.expand(k, h, w)[valid]  # j
    cols = (index + delta)[valid]  # i = j + o_k (inside the map wherever the weight is non-zero)
    values = (weights / degree)[valid]
    matrix = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (h * w, h * w), check_invariants=False)
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return matrix.coalesce().to_sparse_csr()


@timed("walk")
def random_walk(cams: torch.Tensor, weights: torch.Tensor, radius: int = 5, exp_times: int = 8) -> torch.Tensor:
    """``(C, H, W)`` maps ``cams T^(2^exp_times)`` for the ``(K, H, W)`` walk weights ``W = a^beta``."""
    if cams.ndim != 3 or cams.shape[1:] != weights.shape[1:]:
        raise ValueError(f"cams (C, H, W) {tuple(cams.shape)} must match the weights' grid {tuple(weights.shape[1:])}")
    if exp_times < 0:
        raise ValueError(f"exp_times must be >= 0, got {exp_times}")
    matrix = transition_matrix(weights.float(), radius)
    v = cams.float().flatten(1).T.contiguous()  # (HW, C)
    for _ in range(2 ** exp_times):
        v = matrix @ v
    return v.T.reshape(cams.shape)


def propagate_to_edge(cams: torch.Tensor, edge: torch.Tensor, radius: int = 5, beta: float = 10.0,
                      exp_times: int = 8) -> torch.Tensor:
    """IRN / P-NOC ``propagate_to_edge``: ``(cams * (1 - edge)) T^(2^exp_times)`` with the boundary affinity."""
    if cams.ndim != 3 or cams.shape[1:] != edge.shape:
        raise ValueError(f"cams (C, H, W) {tuple(cams.shape)} must match edge (H, W) {tuple(edge.shape)}")
    return random_walk(cams.float() * (1.0 - edge.float()), affinity_weights(edge, radius, beta), radius, exp_times)


def dense_transition(weights: torch.Tensor, radius: int) -> torch.Tensor:
    """The official dense ``(HW, HW)`` matrix ``T = W D^-1`` (columns sum to 1) from ``(K, H, W)`` weights."""
    _, h, w = weights.shape
    dense = torch.zeros(h * w, h * w, dtype=torch.float32, device=weights.device)
    index = torch.arange(h * w, device=weights.device).view(h, w)
    for k, (dy, dx) in enumerate(disc_offsets(radius)):
        valid = weights[k] > 0
        j = index[valid]
        i = (index + dy * w + dx)[valid]
        dense[i, j] = weights[k][valid].float()
    return dense / dense.sum(dim=0, keepdim=True)


@timed("walk")
def dense_random_walk(cams: torch.Tensor, weights: torch.Tensor, radius: int = 5, exp_times: int = 8) -> torch.Tensor:
    """The official formulation: ``T`` squared ``exp_times`` times, then ``v T`` (``O((HW)^2)`` memory)."""
    transition = dense_transition(weights, radius)
    for _ in range(exp_times):
        transition = transition @ transition
    return (cams.float().flatten(1) @ transition).view_as(cams)


def transition_bytes(height: int, width: int, radius: int = 5) -> dict[str, int]:
    """Float32 bytes of one dense ``T`` and of the sparse CSR ``T`` (values, column indices, row pointers)."""
    k, n = len(disc_offsets(radius)), height * width
    return {"dense": 4 * n * n, "sparse": (4 + 8) * k * n + 8 * (n + 1)}
