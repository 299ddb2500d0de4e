"""Random walk (issue 6 groundwork): the banded walk equals the official dense one; transition properties."""

from __future__ import annotations

import pytest
import torch

from wsss_lib.refinement.random_walk import (affinity_weights, dense_random_walk, dense_transition, disc_offsets,
                                             random_walk, segment_offsets, transition_bytes)


def test_offsets_and_segments():
    assert len(disc_offsets(1)) == 1 and len(disc_offsets(2)) == 9 and (0, 0) in disc_offsets(5)
    assert all(dy * dy + dx * dx < 25 for dy, dx in disc_offsets(5)) and len(disc_offsets(5)) == 69
    assert segment_offsets(0, 3) == ((0, 0), (0, 1), (0, 2), (0, 3))
    diagonal = set(segment_offsets(2, 2))
    assert {(0, 0), (1, 1), (2, 2), (0, 1), (1, 0)} <= diagonal and (0, 2) not in diagonal
    with pytest.raises(ValueError, match="radius"):
        disc_offsets(0)


def test_edge_between_two_regions_cuts_the_affinity():
    edge = torch.zeros(6, 8)
    edge[:, 4] = 1.0  # a vertical wall
    weights = affinity_weights(edge, radius=3, beta=10)
    k_right = disc_offsets(3).index((0, 2))
    assert weights[k_right, 2, 1] == 1.0  # (2,1) -> (2,3): no edge on the way
    assert weights[k_right, 2, 3] == 0.0  # (2,3) -> (2,5) crosses the wall
    assert weights[k_right, 2, 7] == 0.0  # target outside the map
    with pytest.raises(ValueError, match="probabilities"):
        affinity_weights(edge * 2)


def test_dense_transition_is_stochastic_and_symmetric_before_normalising():
    torch.manual_seed(0)
    edge = torch.rand(7, 9) * 0.5
    transition = dense_transition(edge, radius=3, beta=10)
    assert torch.allclose(transition.sum(dim=0), torch.ones(63), atol=1e-5)  # columns of T = rows of T^T
    degree = affinity_weights(edge, 3, 10).sum(dim=0).flatten()
    w = transition * degree[None, :]
    assert torch.allclose(w, w.T, atol=1e-5)


@pytest.mark.parametrize("shape,radius,exp_times", [((7, 9), 3, 3), ((12, 10), 5, 4)])
def test_banded_walk_equals_dense_walk(shape, radius, exp_times):
    torch.manual_seed(1)
    edge = torch.rand(shape) ** 3
    cams = torch.rand(3, *shape)
    banded = random_walk(cams, edge, radius, 10.0, exp_times)
    dense = dense_random_walk(cams, edge, radius, 10.0, exp_times)
    assert torch.allclose(banded, dense, rtol=1e-4, atol=1e-6)
    # T is column-stochastic, so a constant map is a fixed point of v -> vT (edge 0: v = cams)
    constant = random_walk(torch.full((1, *shape), 0.7), torch.zeros(shape), radius, 10.0, exp_times)
    assert torch.allclose(constant, torch.full_like(constant, 0.7), atol=1e-5)


def test_memory_formula():
    sizes = transition_bytes(128, 128, radius=5)
    assert sizes["dense"] == 4 * 16384 ** 2 and sizes["banded"] == 4 * 69 * 16384
