"""The study's decision rules for two rows measured with seeds (wsss_lib.evaluation.seeds), on hand-made numbers."""

import math

import numpy as np
import pytest

from wsss_lib.evaluation.seeds import claim_sentences, claims_frame, compare, mean_sd, verdict


def test_primary_rule_is_unpaired_and_the_paired_rule_uses_shared_seeds():
    a, b = {0: 50.0, 1: 52.0, 2: 54.0}, {0: 49.0, 1: 51.0, 2: 53.5}
    result = compare(a, b, paper_gap=2.0)
    sd_b = np.std([49.0, 51.0, 53.5], ddof=1)
    assert result.gap == pytest.approx(0.8333333) and result.gap_sd == pytest.approx(math.hypot(2.0, sd_b))
    assert result.verdict == "tie"                                  # 0.83 < 2 x 3.0
    assert result.paired_gap == pytest.approx(0.8333333) and result.paired_sd == pytest.approx(0.2886751)
    assert result.paired_verdict == "agrees" and result.seeds == 3  # 0.83 > 2 x 0.29, same sign as the paper
    assert compare(a, b, paper_gap=-1.0).paired_verdict == "disagrees"
    assert compare(a, b).paired_verdict == "higher (no paper value)"  # no paper gap: only the side is said
    assert compare(b, a).paired_verdict == "lower (no paper value)" and compare(b, a).verdict == "tie"
    # seeds present in only one row do not enter the paired difference
    assert compare({**a, 3: 99.0}, b).seeds == 3


def test_undetermined_without_two_seeds():
    assert verdict(5.0, float("nan"), 1.0) == "single seed"
    assert compare({0: 50.0}, {0: 40.0}, 1.0).verdict == "single seed"
    assert compare({0: 50.0, 1: 51.0}, {2: 40.0, 3: 41.0}, 1.0).paired_verdict == "single seed"  # no shared seed
    assert mean_sd([1.0])[1] != mean_sd([1.0])[1]  # NaN
    assert mean_sd([]) != mean_sd([])


def test_claims_frame_and_its_sentences():
    rows = {"C2AM-H": {0: 60.0, 1: 61.0, 2: 62.0}, "C2AM": {0: 50.0, 1: 51.0, 2: 52.0}}
    table = claims_frame([("C2AM-H improves on C2AM", "C2AM-H", "C2AM", 66.8, 60.8),
                          ("missing rows are skipped", "X", "C2AM", 1.0, 0.0)], rows)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["A (mean)"], row["B (mean)"], row["ours (gap)"]) == pytest.approx((61.0, 51.0, 10.0))
    assert row["verdict"] == "agrees" and row["paired verdict"] == "agrees"  # paired SD 0: |10| >= 2 x 0
    sentence = claim_sentences(table)[0]
    assert sentence.startswith("C2AM-H improves on C2AM (C2AM-H vs C2AM; the paper: 66.8 vs 60.8, +6.0). Ours: +10.0")


def test_summarize_gives_mean_and_sd_over_seeds_per_row():
    import pandas as pd

    from wsss_lib.evaluation.seeds import summarize

    frame = pd.DataFrame({"row": ["a", "a", "b", "a"], "seed": [0, 1, 0, 2], "miou": [50.0, 52.0, 40.0, 54.0]})
    table = summarize(frame, ["row"], ["miou"]).set_index("row")
    assert table.loc["a", "seeds"] == 3 and table.loc["a", "miou"] == 52.0 and table.loc["a", "miou SD"] == 2.0
    assert table.loc["b", "seeds"] == 1 and np.isnan(table.loc["b", "miou SD"])
    assert list(table.index) == ["a", "b"]
