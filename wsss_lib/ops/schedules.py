"""Schedules: polynomial learning-rate decay and linear loss-weight ramps (official-code-facts 1.7)."""

from __future__ import annotations

__all__ = ["linear_schedule", "poly_lr_factor"]


def linear_schedule(step: int, total: int, start: float, end: float, fraction: float = 1.0) -> float:
    """``min(start + (end - start) * step / (total * fraction), end)`` (official ``linear_schedule``).

    Reaches ``end`` after ``fraction`` of ``total`` steps and stays there; ``fraction == 0`` gives ``end``.
    Written for increasing ramps (all the paper's weights increase: Puzzle 0 -> 4 over the first half,
    OC-CSE 0.3 -> 1 and NOC 0 -> 1 over all of training).
    """
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    if fraction <= 0:
        return float(end)
    value = start + (end - start) * step / (total * fraction)
    return float(min(value, end)) if end >= start else float(max(value, end))


def poly_lr_factor(step: int, total: int, power: float = 0.9) -> float:
    """``(1 - step / total) ** power``, the poly decay applied at every optimizer step."""
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    return float(max(0.0, 1.0 - step / total) ** power)
