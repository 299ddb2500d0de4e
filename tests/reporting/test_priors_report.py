"""Notebook 06's aggregation: means over seeds, the literature layout, per-class IoU, group/sweep agreement."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsss_lib.artifacts import StageDir
from wsss_lib.data.stats import PROPERTY_COLUMNS
from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.evaluation.sweep import SweepResult
from wsss_lib.reporting import priors_report
from wsss_lib.stages.priors import PriorsRun, runs_table

NAMES = ("background", "cat", "dog")


def _run(label: str, seed: int, diag: list[int], quick: list[float]) -> PriorsRun:
    """A run whose sweep has two thresholds: a perfect-on-diagonal matrix and a worse one."""
    good = ConfusionMatrix(3).add_counts(np.diag(diag).astype(np.int64))
    bad = ConfusionMatrix(3).add_counts(np.full((3, 3), 5, dtype=np.int64))
    sweep = SweepResult.from_confusion([0.2, 0.4], [bad, good], NAMES, num_images=2)
    sd = StageDir("x", "k", Path("/nonexistent"))
    history = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "quick_miou": quick})
    return PriorsRun(label=label, method="cam", label_smoothing=0.0, seed=seed, notebook="t", classifier=sd, cams=sd,
                     sweep_dir=sd, history=history, sweep=sweep)


def test_epoch_table_averages_seeds():
    runs = [_run("CAM", 0, [1, 1, 1], [0.2, 0.4]), _run("CAM", 1, [1, 1, 1], [0.4, 0.6]), _run("P", 0, [1, 1, 1], [0.1, 0.1])]
    table = priors_report.epoch_table(runs).set_index("method")
    assert table.loc["CAM", "seeds"] == 2 and table.loc["P", "seeds"] == 1
    assert table.loc["CAM", ["E1", "E2"]].tolist() == pytest.approx([30.0, 50.0])
    assert table.loc["CAM", "TTA"] == pytest.approx(100.0) and table.loc["CAM", "TTA std"] == 0.0


def test_class_iou_is_taken_at_each_runs_best_threshold_and_matches_the_group_overall():
    a = _run("CAM", 0, [8, 2, 2], [0.2, 0.3])
    bad_only = ConfusionMatrix(3).add_counts(np.array([[6, 2, 0], [0, 1, 1], [0, 0, 2]], dtype=np.int64))
    b = PriorsRun(**{**a.__dict__, "seed": 1, "sweep": SweepResult.from_confusion([0.3], [bad_only], NAMES, 2)})
    iou = priors_report.class_iou_frame([a, b]).set_index("class")
    # seed 0 best = the diagonal matrix (IoU 1); seed 1: background 6/(6+2), cat 1/(1+2+1), dog 2/(2+1)
    assert iou["CAM"].tolist() == pytest.approx([100 * (1 + 6 / 8) / 2, 100 * (1 + 1 / 4) / 2, 100 * (1 + 2 / 3) / 2])
    per_class = pd.DataFrame({"class": list(NAMES), **{c: [np.nan, 1.0, 2.0] for c in PROPERTY_COLUMNS}})
    groups, corr = priors_report.class_group_tables(per_class, {"Group": {"pets": ("cat", "dog")}}, iou.reset_index())
    overall = groups.set_index("family").loc["Overall", "CAM"]
    assert overall == pytest.approx(np.mean([100 * a.sweep.best.miou, 100 * b.sweep.best.miou]))


def test_mean_sweep_tables_average_the_curves():
    runs = [_run("CAM", 0, [1, 1, 1], [0.2, 0.3]), _run("CAM", 1, [1, 1, 1], [0.2, 0.3])]
    curves = priors_report.mean_sweep_tables(runs)["CAM"]
    assert curves["threshold"].tolist() == [0.2, 0.4] and curves["miou"].iloc[1] == pytest.approx(1.0)


def test_literature_epoch_table_layout():
    table = priors_report.literature_epoch_table("ResNeSt-269").set_index("method")
    assert list(table.index) == ["CAM", "P", "P-OC", "P-OC+LS", "P-NOC", "P-NOC+LS"]
    assert [c for c in table.columns if c.startswith("E")] == [f"E{i}" for i in range(1, 16)]
    assert table.loc["P-NOC+LS", "TTA"] == 63.6 and table["source"].str.contains("Table 2").all()


def test_compute_text_sums_the_recorded_training_times(tmp_path):
    runs = []
    for label, seed, seconds in (("CAM", 0, 60.0), ("CAM", 1, 180.0), ("CAM", 2, 3600.0), ("P", 0, 3600.0),
                                 ("P", 1, None), ("OC-CSE", 0, None)):
        run = _run(label, seed, [1, 1, 1], [0.2, 0.4])
        folder = tmp_path / f"{label}{seed}"
        folder.mkdir()
        if seconds is not None:  # a classifier stage with no time (no DONE.json here) is untimed, not 0 s
            (folder / "DONE.json").write_text(f'{{"seconds": {seconds}}}')
        runs.append(dataclasses.replace(run, classifier=StageDir("classifier", "k", folder)))
    runs.append(runs[0])  # a second record of the same classifier stage counts once
    assert [r.train_seconds for r in runs[:4]] == [60.0, 180.0, 3600.0, 3600.0] and np.isnan(runs[4].train_seconds)
    text = priors_report.compute_text(runs)
    # recorded: 7440 s over 6 stages; CAM: fastest 60 s, median 180 s (robust to the slowed 3600-s run), x 3 runs;
    # P: 3600 s x 2 runs; OC-CSE untimed and left out: low 7380 s, high 7740 s
    assert "2.07 h recorded for 6 classifiers (2 untimed)" in text
    assert "CAM 1.0-3.0, P 60.0-60.0, OC-CSE untimed" in text and ": 2.05 h (2.15 h)" in text
    assert "train (s)" in runs_table(runs) and "train (s)" not in priors_report.method_table(runs)
    assert "none of the 1 classifier stages" in priors_report.compute_text([runs[4]])
    assert priors_report.compute_text([]) == "Training time: no runs."


def test_a_recipe_note_travels_in_the_label_and_the_paper_is_looked_up_without_it():
    """A P-NOC run at 0.1x the official OC learning rate is labelled so in every table ("P-NOC (OC lr 0.1x)"), and its
    paper claims and Table 2 values are found under the paper's name."""
    from wsss_lib.methods.pnoc import AdversarialConfig, PNOCConfig
    from wsss_lib.stages.priors import method_label, paper_label, recipe_note

    slow = PNOCConfig(adversarial=AdversarialConfig(lr_multiplier=0.1))
    assert recipe_note(slow) == "OC lr 0.1x" and recipe_note(PNOCConfig()) == ""
    assert method_label("pnoc", 0.1, recipe_note(slow)) == "P-NOC+LS (OC lr 0.1x)"
    assert paper_label("P-NOC+LS (OC lr 0.1x)") == "P-NOC+LS" and paper_label("P (alpha 0)") == "P (alpha 0)"
    runs = [_run(label, seed, [1 + seed, 1, 1], [0.2, 0.4]) for label in ("P-OC", "P-NOC (OC lr 0.1x)")
            for seed in (0, 1)]
    claims = priors_report.claims_table(runs)
    assert claims[["A", "B"]].values.tolist() == [["P-NOC (OC lr 0.1x)", "P-OC"]]
    assert np.isfinite(claims["paper (gap)"].iloc[0])  # the paper's P-NOC - P-OC
    ranking = priors_report.ranking_table(runs, reference="P-OC").set_index("method")
    assert np.isfinite(ranking.loc["P-NOC (OC lr 0.1x)", "paper (%)"])
    with pytest.raises(ValueError, match="two runs answer the paper's 'P-NOC'"):
        priors_report.claims_table(runs + [_run("P-NOC", 0, [1, 1, 1], [0.1, 0.1])])


def test_the_held_out_threshold_is_chosen_on_the_held_out_split_and_applied_to_the_evaluated_one():
    """The evaluated split's best threshold is 0.4 (an oracle); the held-out split's best is 0.2, so the held-out
    number is the evaluated split's mIoU at 0.2, and the tables show it beside the oracle's."""
    run = _run("CAM", 0, [1, 1, 1], [0.2, 0.4])
    good = ConfusionMatrix(3).add_counts(np.diag([1, 1, 1]).astype(np.int64))
    bad = ConfusionMatrix(3).add_counts(np.full((3, 3), 5, dtype=np.int64))
    heldout = SweepResult.from_confusion([0.2, 0.4], [good, bad], NAMES, num_images=2)  # best at 0.2 here
    run = dataclasses.replace(run, heldout=heldout, heldout_split="val")
    assert run.sweep.best_threshold == 0.4 and run.heldout_threshold == 0.2
    assert run.heldout_miou == pytest.approx(run.sweep.scores(0).miou) and run.heldout_miou < run.sweep.best.miou
    summary = run.summary()
    assert summary["TTA mIoU (%)"] == pytest.approx(100.0)
    assert summary["TTA mIoU, held-out threshold (%)"] == pytest.approx(100 * run.sweep.scores(0).miou)
    table = priors_report.method_table([run, dataclasses.replace(run, seed=1)]).set_index("method")
    assert table.loc["CAM", "TTA mIoU, held-out threshold (%)"] == pytest.approx(100 * run.sweep.scores(0).miou)
    assert table.loc["CAM", "held-out SD"] == 0.0
    off_grid = SweepResult.from_confusion([0.3, 0.5], [good, bad], NAMES, num_images=2)
    with pytest.raises(ValueError, match="not on the sweep's grid"):
        dataclasses.replace(run, heldout=off_grid).heldout_miou
