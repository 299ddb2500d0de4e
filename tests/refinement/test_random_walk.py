"""Random walk: the sparse walk equals the official dense one; affinities along paths; transition properties."""

from __future__ import annotations

import pytest
import torch

from wsss_lib.ops.random_walk import (
    affinity_weights,
    dense_random_walk,
    dense_transition,
    disc_offsets,
    edge_affinity,
    feature_affinity,
    propagate_to_edge,
    random_walk,
    segment_offsets,
    transition_bytes,
    transition_matrix,
)


def test_offsets_and_segments():
    assert len(disc_offsets(1)) == 1 and len(disc_offsets(2)) == 9 and (0, 0) in disc_offsets(5)
    assert all(dy * dy + dx * dx < 25 for dy, dx in disc_offsets(5)) and len(disc_offsets(5)) == 69
    assert segment_offsets(0, 3) == ((0, 0), (0, 1), (0, 2), (0, 3))
    diagonal = set(segment_offsets(2, 2))
    assert {(0, 0), (1, 1), (2, 2), (0, 1), (1, 0)} <= diagonal and (0, 2) not in diagonal
    with pytest.raises(ValueError, match="radius"):
        disc_offsets(0)


def _loop_edge_affinity(edge, radius):
    """Direct definition, pixel by pixel: 1 - max over the path's grid points (self-loop 1, 0 outside)."""
    h, w = edge.shape
    out = torch.zeros(len(disc_offsets(radius)), h, w)
    for k, (dy, dx) in enumerate(disc_offsets(radius)):
        for y in range(h):
            for x in range(w):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    out[k, y, x] = 1.0 if (dy, dx) == (0, 0) else \
                        1.0 - max(float(edge[y + py, x + px]) for py, px in segment_offsets(dy, dx))
    return out


def test_edge_affinity_matches_the_pixelwise_definition_and_a_wall_cuts_it():
    torch.manual_seed(0)
    edge = torch.rand(6, 7)
    assert torch.allclose(edge_affinity(edge, 3), _loop_edge_affinity(edge, 3), atol=1e-6)
    wall = torch.zeros(6, 8)
    wall[:, 4] = 1.0
    weights = affinity_weights(wall, radius=3, beta=10)
    k_right = disc_offsets(3).index((0, 2))
    assert weights[k_right, 2, 1] == 1.0  # (2,1) -> (2,3): no edge on the way
    assert weights[k_right, 2, 3] == 0.0  # (2,3) -> (2,5) crosses the wall
    assert weights[k_right, 2, 7] == 0.0  # target outside the map
    assert (weights[disc_offsets(3).index((0, 0))] == 1.0).all()  # self-loops, even on the wall
    with pytest.raises(ValueError, match="probabilities"):
        affinity_weights(wall * 2)


def test_feature_affinity_is_exp_of_mean_l1_distance():
    features = torch.zeros(2, 3, 4)
    features[:, :, 2:] = torch.tensor([1.0, 3.0]).view(2, 1, 1)  # right half differs by mean |d| = 2
    affinity = feature_affinity(features, radius=2)
    k_right = disc_offsets(2).index((0, 1))
    assert affinity[k_right, 0, 0] == pytest.approx(1.0)
    assert affinity[k_right, 0, 1] == pytest.approx(torch.exp(torch.tensor(-2.0)).item())
    assert affinity[k_right, 0, 3] == 0.0  # outside


def test_transition_is_column_stochastic_and_w_symmetric():
    torch.manual_seed(0)
    weights = affinity_weights(torch.rand(7, 9) * 0.5, radius=3, beta=10)
    transition = dense_transition(weights, radius=3)
    assert torch.allclose(transition.sum(dim=0), torch.ones(63), atol=1e-5)  # columns of T = rows of T^T
    w = transition * weights.sum(dim=0).flatten()[None, :]
    assert torch.allclose(w, w.T, atol=1e-5)
    sparse = transition_matrix(weights, radius=3).to_dense()  # M = T^T: rows sum to 1
    assert torch.allclose(sparse, transition.T, atol=1e-6)
    assert torch.allclose(sparse.sum(dim=1), torch.ones(63), atol=1e-5)


@pytest.mark.parametrize("shape,radius,exp_times", [((7, 9), 3, 3), ((12, 10), 5, 4)])
def test_sparse_walk_equals_dense_walk(shape, radius, exp_times):
    torch.manual_seed(1)
    edge = torch.rand(shape) ** 3
    cams = torch.rand(3, *shape)
    weights = affinity_weights(edge, radius, 10.0)
    sparse = random_walk(cams, weights, radius, exp_times)
    dense = dense_random_walk(cams, weights, radius, exp_times)
    assert torch.allclose(sparse, dense, rtol=1e-4, atol=1e-6)
    damped = propagate_to_edge(cams, edge, radius, 10.0, exp_times)
    assert torch.allclose(damped, dense_random_walk(cams * (1 - edge), weights, radius, exp_times), rtol=1e-4, atol=1e-6)
    # T is column-stochastic, so a constant map is a fixed point of v -> vT
    constant = random_walk(torch.full((1, *shape), 0.7), weights, radius, exp_times)
    assert torch.allclose(constant, torch.full_like(constant, 0.7), atol=1e-5)


def test_walk_does_not_cross_a_closed_boundary():
    edge = torch.zeros(10, 10)
    edge[:, 5] = 1.0
    cams = torch.zeros(1, 10, 10)
    cams[0, 4, 1] = 1.0
    out = propagate_to_edge(cams, edge, radius=3, beta=10, exp_times=5)
    assert out[0, :, 6:].abs().max() == 0 and out[0, :, :5].sum() > 0


def test_memory_formula():
    sizes = transition_bytes(128, 128, radius=5)
    assert sizes["dense"] == 4 * 16384 ** 2 and sizes["sparse"] == 12 * 69 * 16384 + 8 * 16385
