"""C²AM / C²AM-H losses and head: hand cases, shapes, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from wsss_lib.methods.c2am import (
    C2AMConfig,
    border_is_background,
    c2am_loss,
    hint_loss,
    negative_loss,
    positive_loss,
    rank_weights,
)
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.c2am import Disentangler, create_c2am_network


def test_rank_weights_give_the_diagonal_e_alpha_and_the_nearest_neighbour_one():
    sim = torch.tensor([[0.99, 0.5, 0.7], [0.5, 0.99, 0.1], [0.7, 0.1, 0.99]])
    w = rank_weights(sim, alpha=0.25)
    expected = torch.tensor([[math.exp(0.25), math.exp(-0.25), 1.0],
                             [1.0, math.exp(0.25), math.exp(-0.25)],
                             [1.0, math.exp(-0.25), math.exp(0.25)]])
    torch.testing.assert_close(w, expected)


def test_positive_and_negative_losses_by_hand():
    cfg = C2AMConfig()
    v = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cos = 1/sqrt(2) off the diagonal, 1 (clamped) on it
    c = 1 / math.sqrt(2)
    diag, off = -math.log(cfg.sim_max), -math.log(c)
    expected_pos = (2 * diag * math.exp(0.25) + 2 * off * 1.0) / 4
    assert float(positive_loss(v, cfg)) == pytest.approx(expected_pos, rel=1e-5)
    bg, fg = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cos 0 (clamped), 1/sqrt(2)
    expected_neg = (-math.log(1 - cfg.sim_min) - math.log(1 - c)) / 2
    assert float(negative_loss(bg, fg, cfg)) == pytest.approx(expected_neg, rel=1e-5)
    terms = c2am_loss(fg, torch.cat([bg, bg]), cfg)
    assert set(terms) == {"pos_fg", "neg", "pos_bg"}


def test_separated_partitions_score_lower_than_mixed_ones():
    torch.manual_seed(0)
    base_fg, base_bg = torch.randn(1, 8), torch.randn(1, 8)
    fg = base_fg + 0.05 * torch.randn(6, 8)
    bg = base_bg + 0.05 * torch.randn(6, 8)
    mixed = torch.randn(6, 8)
    good = sum(c2am_loss(fg, bg).values())
    bad = sum(c2am_loss(mixed, torch.randn(6, 8)).values())
    assert good < bad


def test_hint_loss_uses_only_confident_pixels_with_the_smoothed_target():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 5.0]]]], requires_grad=True)
    hints = torch.tensor([[[[0.9, 0.1], [0.4, 0.39]]]])
    loss = hint_loss(logits, hints, C2AMConfig(hint_threshold=0.4, hint_label_smoothing=0.1, hint_weight=2.0))
    chosen = torch.tensor([0.0, -1.0])
    expected = 2.0 * torch.nn.functional.binary_cross_entropy_with_logits(chosen, torch.full((2,), 0.95))
    assert float(loss.detach()) == pytest.approx(float(expected))
    loss.backward()
    assert logits.grad[0, 0, 0, 1] == 0 and logits.grad[0, 0, 1, 1] == 0 and logits.grad[0, 0, 0, 0] < 0
    empty = hint_loss(logits, torch.zeros_like(hints))
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_border_heuristic():
    p = torch.zeros(1, 1, 16, 16)
    p[..., 4:12, 4:12] = 1.0  # first partition in the centre: it is the foreground
    assert not border_is_background(p)
    assert border_is_background(1 - p)


def test_disentangler_vectors_are_probability_weighted_means():
    head = Disentangler(3).eval()
    x = torch.rand(2, 3, 4, 5)
    out = head(x)
    p = torch.sigmoid(out.logits)
    torch.testing.assert_close(out.fg, (x * p).mean(dim=(2, 3)))
    torch.testing.assert_close(out.bg, (x * (1 - p)).mean(dim=(2, 3)))
    assert head.conv.bias is None


def test_network_shapes_and_gradients():
    net = create_c2am_network(BackboneConfig(weights="none"))
    out = net(torch.rand(2, 3, 64, 64))
    channels = sum(net.backbone.channels[-2:])
    assert out.logits.shape == (2, 1, 4, 4) and out.fg.shape == out.bg.shape == (2, channels)
    sum(c2am_loss(out.fg, out.bg).values()).backward()
    assert net.head.conv.weight.grad is not None and net.head.conv.weight.grad.abs().sum() > 0
