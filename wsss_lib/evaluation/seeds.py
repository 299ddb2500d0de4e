"""The study's decision rules for two rows measured with seeds (``data_cards/synthetic_wsss.md``, pre-registered).

A row is a mapping seed -> value (e.g. mIoU %). For row A against row B:

- **primary rule (unpaired, fixed before any result):** ``gap = mean(A) - mean(B)``; ``SD of gap =
  sqrt(SD(A)² + SD(B)²)`` with the SD over seeds (``ddof=1``); a **tie** when ``|gap| < 2 SD of gap``; otherwise the
  sign of the gap is compared with the paper's (``agrees`` / ``disagrees``), or, where the paper has no value, only
  its side is said (``higher (no paper value)`` / ``lower (no paper value)``); a single seed on either side has no
  SD and is **undetermined** (``single seed``);
- **paired sensitivity (shown beside it, never replacing it):** the two rows share their seeds (chain *s* of A and
  of B start from seed *s*), so ``d_s = A_s - B_s`` over the seeds both have: ``gap = mean(d)``, ``SD = SD(d)``, the
  same 2-SD rule; fewer than two shared seeds: undetermined.

:func:`compare` applies both; :func:`claims_frame` builds a claims table and :func:`claim_sentences` says each row in
words, whatever the outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["Comparison", "verdict", "compare", "mean_sd", "summarize", "claims_frame", "claim_sentences",
           "VERDICT_WORDS"]

VERDICT_WORDS = {"agrees": "the same direction as the paper's, by at least 2 SD",
                 "tie": "not reproduced here: a tie (under 2 SD)",
                 "disagrees": "reversed here (the opposite direction, by at least 2 SD)",
                 "single seed": "undetermined: a single seed has no SD",
                 "higher (no paper value)": "higher by at least 2 SD (the paper has no value to compare)",
                 "lower (no paper value)": "lower by at least 2 SD (the paper has no value to compare)"}


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and SD (``ddof=1``; NaN for fewer than two values) of ``values``."""
    array = np.asarray([v for v in values if v == v], dtype=float)
    if not array.size:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else float("nan")


def summarize(frame: pd.DataFrame, by: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """One row per group of ``frame`` (one row per seed) by the columns ``by``, in order of appearance: ``seeds``
    (how many rows) and, for each of ``values``, its mean and its SD over the seeds (``"<value> SD"``, NaN with
    one seed)."""
    rows = []
    for key, group in frame.groupby(list(by), sort=False, dropna=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(group)
        for value in values:
            mean, sd = mean_sd(group[value].tolist())
            row[value], row[f"{value} SD"] = mean, sd
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "seeds", *[c for v in values for c in (v, f"{v} SD")]])


def verdict(gap: float, gap_sd: float, paper_gap: float = float("nan")) -> str:
    """``single seed`` (no SD), ``tie`` (under 2 SD), else ``agrees`` or ``disagrees`` (the sign of our gap against
    the paper's; a paper gap of exactly 0 counts as disagreeing with a 2-SD gap of ours), or, without a paper gap,
    ``higher (no paper value)`` / ``lower (no paper value)`` (the side of our 2-SD gap)."""
    if not math.isfinite(gap_sd):
        return "single seed"
    if abs(gap) < 2 * gap_sd:
        return "tie"
    if not math.isfinite(paper_gap):
        return "higher (no paper value)" if gap > 0 else "lower (no paper value)"
    return "agrees" if np.sign(gap) == np.sign(paper_gap) else "disagrees"


@dataclass(frozen=True)
class Comparison:
    """Row A against row B under both rules (see the module docstring)."""

    gap: float
    gap_sd: float
    verdict: str
    paired_gap: float
    paired_sd: float
    paired_verdict: str
    seeds: int
    """Seeds both rows have (the paired rule's ``n``)."""


def compare(a: Mapping[int, float], b: Mapping[int, float], paper_gap: float = float("nan")) -> Comparison:
    """Row ``a`` against row ``b`` (seed -> value) under the primary and the paired rule."""
    mean_a, sd_a = mean_sd(list(a.values()))
    mean_b, sd_b = mean_sd(list(b.values()))
    gap, gap_sd = mean_a - mean_b, float(math.hypot(sd_a, sd_b))
    shared = sorted(set(a) & set(b))
    paired_gap, paired_sd = mean_sd([a[s] - b[s] for s in shared])
    return Comparison(gap, gap_sd, verdict(gap, gap_sd, paper_gap), paired_gap, paired_sd,
                      verdict(paired_gap, paired_sd, paper_gap), len(shared))


def claims_frame(claims: Sequence[tuple[str, str, str, float, float]],
                 rows: Mapping[str, Mapping[int, float]]) -> pd.DataFrame:
    """One row per claim ``(claim, A, B, paper A, paper B)`` whose rows A and B were measured (``rows``: label ->
    seed -> value): both rows' mean ± SD, the gap under the primary rule with its verdict, the paired gap with its
    verdict, and the paper's values and gap (literature)."""
    columns = ["claim", "A", "B", "A (mean)", "A (SD)", "B (mean)", "B (SD)", "ours (gap)", "SD of gap", "verdict",
               "paired gap", "paired SD", "paired verdict", "seeds", "paper A", "paper B", "paper (gap)"]
    out = []
    for claim, a, b, paper_a, paper_b in claims:
        if a not in rows or b not in rows:
            continue
        paper_gap = paper_a - paper_b
        result = compare(rows[a], rows[b], paper_gap)
        (mean_a, sd_a), (mean_b, sd_b) = mean_sd(list(rows[a].values())), mean_sd(list(rows[b].values()))
        out.append(dict(zip(columns, (claim, a, b, mean_a, sd_a, mean_b, sd_b, result.gap, result.gap_sd,
                                      result.verdict, result.paired_gap, result.paired_sd, result.paired_verdict,
                                      result.seeds, paper_a, paper_b, paper_gap))))
    return pd.DataFrame(out, columns=columns)


def _gap_text(gap: float, gap_sd: float) -> str:
    return f"{gap:+.1f} ± {gap_sd:.1f} points" if math.isfinite(gap_sd) else f"{gap:+.1f} points (no SD)"


def claim_sentences(table: pd.DataFrame) -> list[str]:
    """Each claim of :func:`claims_frame` in words: ours under the primary rule, the paired sensitivity beside it,
    and the paper's gap."""
    out = []
    for row in table.to_dict("records"):
        paper = (f"the paper: {row['paper A']:.1f} vs {row['paper B']:.1f}, {row['paper (gap)']:+.1f}"
                 if math.isfinite(row["paper (gap)"]) else "the paper: no value")
        paired = ("the same under the paired comparison" if row["paired verdict"] == row["verdict"] else
                  f"paired by seed: {_gap_text(row['paired gap'], row['paired SD'])}, {row['paired verdict']}")
        out.append(f"{row['claim']} ({row['A']} vs {row['B']}; {paper}). Ours: "
                   f"{_gap_text(row['ours (gap)'], row['SD of gap'])}, {VERDICT_WORDS[row['verdict']]} ({paired}).")
    return out
