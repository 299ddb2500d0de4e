"""Label smoothing for multi-label targets (official ``label_smoothing``; paper section 3.1)."""

from __future__ import annotations

import torch

__all__ = ["smooth_multilabel"]


def smooth_multilabel(targets: torch.Tensor, amount: float) -> torch.Tensor:
    """``(1 - a) * y + a / 2``: with ``a = 0.1`` positives become 0.95 and negatives 0.05; ``a = 0`` is identity."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"label smoothing amount must be in [0, 1), got {amount}")
    return targets * (1.0 - amount) + amount / 2.0
