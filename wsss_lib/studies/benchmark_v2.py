"""The pre-registered design criteria of the synthetic benchmark v2, checked on the vanilla CAM alone.

``python -m wsss_lib.studies.benchmark_v2 [--seeds 0 1 2]`` trains (or loads) the vanilla CAM of notebook 01 with the
study recipe (``wsss_lib/profiles/study.yaml``: the notebook's defaults overlaid with the profile's block) on the
clean variant (profile ``study``, data ``synthetic-v2``) and on the stress variant (profile ``study-stress``,
``synthetic-v2-stress``), for each seed, and checks the criteria written in ``data_cards/synthetic_wsss.md``
("Benchmark v2") before any other method ran on v2. The runs are ordinary priors runs in those profiles' work
directories, so notebook 01 of either profile reuses them. It writes
``reports/study/tables/benchmark_v2_criteria.{csv,md}`` and exits 1 when a criterion fails.

The criteria (means over seeds, each run at its oracle threshold, split ``train``):

- C1 incomplete activation on large objects (clean): Large size group, missed > spill;
- C2 part-only activation (clean): far-body recall <= part recall - 15 points;
- C3 context bias (stress): context-background FP rate >= plain-background FP rate + 5 points;
- C4 co-occurrence confusion (stress vs clean): confused >= 5 % and >= 1.5 x the clean variant's;
- C5 a classifier that learned (clean): training loss of the middle epoch (where Puzzle's alpha reaches its
  maximum) <= 0.5 x the label-prior loss (:func:`wsss_lib.evaluation.pathology.label_prior_loss`);
- C6 localisation beyond labels (clean): TTA mIoU >= the "fill with a present class" baseline + 5 points.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from wsss_lib.config import load_profile
from wsss_lib.data import class_groups, open_dataset
from wsss_lib.evaluation.pathology import group_error_breakdown, label_prior_loss
from wsss_lib.paths import repo_root
from wsss_lib.reporting.cam_report import trivial_baselines
from wsss_lib.reporting.writer import Report
from wsss_lib.runner.notebooks import notebook_defaults, notebook_parameters
from wsss_lib.stages.classifier import ClassifierStageConfig
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.parameters import notebook_configs
from wsss_lib.stages.priors import PriorsRun, run_priors

__all__ = ["CLEAN_PROFILE", "STRESS_PROFILE", "notebook_namespace", "criteria_table", "main"]

CLEAN_PROFILE, STRESS_PROFILE = "study", "study-stress"
NOTEBOOK = "01_cam_baseline"


def notebook_namespace(profile_name: str, stem: str) -> dict:
    """What notebook ``stem``'s globals hold after papermill injects ``profile_name``'s parameters: its
    ``parameters`` cell's defaults overlaid with the profile's ``common`` and notebook blocks."""
    notebook = repo_root() / "notebooks" / f"{stem}.ipynb"
    namespace = notebook_defaults(notebook)
    namespace.update(notebook_parameters(load_profile(profile_name), notebook, None))
    return namespace


def _vanilla_runs(profile_name: str, seeds: Sequence[int], progress: bool
                  ) -> tuple[list[PriorsRun], ClassifierStageConfig, RunContext]:
    ns = notebook_namespace(profile_name, NOTEBOOK)
    ctx = RunContext.create(profile_name)
    cfg = notebook_configs(NOTEBOOK, dataset=ns["dataset"], data_root=ns["data_root"], runtime=ns["runtime"],
                           overrides=ns["overrides"], classifier=ns["classifier"], ordinary=ns["ordinary"],
                           tta=ns["tta"])
    runs = [run_priors(ctx, cfg.classifier, "cam", tta=cfg.tta, ordinary=cfg.ordinary, seed=seed, notebook=NOTEBOOK,
                       progress=progress) for seed in seeds]
    return runs, cfg.classifier, ctx


def _mean(runs: Sequence[PriorsRun], key: str) -> float:
    return float(np.mean([r.summary()[key] for r in runs]))


def _large_group(runs: Sequence[PriorsRun], groups) -> tuple[float, float]:
    rows = [group_error_breakdown(r.sweep.confusion[r.sweep.best_index].counts, r.sweep.class_names, groups)
            .set_index(["family", "group"]).loc[("Size", "Large")] for r in runs]
    return float(np.mean([row["missed"] for row in rows])), float(np.mean([row["spill"] for row in rows]))


def _middle_epoch_loss(runs: Sequence[PriorsRun]) -> tuple[int, float]:
    epochs = int(runs[0].history["epoch"].max())
    middle = max(1, math.ceil(epochs / 2))
    losses = [float(r.history.set_index("epoch").loc[middle, "main/cls"]) for r in runs]
    return middle, float(np.mean(losses))


def criteria_table(clean: Sequence[PriorsRun], stress: Sequence[PriorsRun], groups, prior_loss: float,
                   fill_miou: float) -> pd.DataFrame:
    """The six criteria (module docstring) from the vanilla CAM runs of both variants: ``criterion``, ``measured``,
    ``required``, ``holds``."""
    missed, spill = _large_group(clean, groups)
    part, far = _mean(clean, "part recall (%)"), _mean(clean, "far-body recall (%)")
    context, plain = _mean(stress, "context FP (%)"), _mean(stress, "plain-bg FP (%)")
    confused_stress, confused_clean = _mean(stress, "confused (%)"), _mean(clean, "confused (%)")
    middle, loss = _middle_epoch_loss(clean)
    miou = _mean(clean, "TTA mIoU (%)")
    rows = [
        ("C1 incomplete activation, Large group (clean)", f"missed {missed:.1f} %, spill {spill:.1f} %",
         "missed > spill", missed > spill),
        ("C2 part-only activation (clean)", f"part recall {part:.1f} %, far-body recall {far:.1f} %",
         "far-body <= part - 15", far <= part - 15),
        ("C3 context bias (stress)", f"context-bg FP {context:.1f} %, plain-bg FP {plain:.1f} %",
         "context >= plain + 5", context >= plain + 5),
        ("C4 co-occurrence confusion (stress vs clean)",
         f"confused {confused_stress:.1f} % (clean {confused_clean:.1f} %)", "stress >= 5 and >= 1.5 x clean",
         confused_stress >= 5 and confused_stress >= 1.5 * confused_clean),
        ("C5 a classifier that learned (clean)", f"epoch-{middle} loss {loss:.3f}, label-prior loss {prior_loss:.3f}",
         "loss <= 0.5 x label-prior", loss <= 0.5 * prior_loss),
        ("C6 localisation beyond labels (clean)", f"TTA mIoU {miou:.1f} %, fill baseline {fill_miou:.1f} %",
         "mIoU >= fill + 5", miou >= fill_miou + 5),
    ]
    return pd.DataFrame(rows, columns=["criterion", "measured (vanilla CAM, mean over seeds)", "required", "holds"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.studies.benchmark_v2", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="default: the seeds of notebook 01 in the study profile")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else list(notebook_namespace(CLEAN_PROFILE, NOTEBOOK)["seeds"])
    progress = not args.no_progress
    clean, classifier, ctx = _vanilla_runs(CLEAN_PROFILE, seeds, progress)
    stress, _, _ = _vanilla_runs(STRESS_PROFILE, seeds, progress)
    train = open_dataset(classifier.dataset, classifier.train_split, work_dir=ctx.work_dir, progress=False)
    evaluated = open_dataset(classifier.dataset, classifier.eval_split, work_dir=ctx.work_dir, progress=False)
    fill = float(trivial_baselines(evaluated).set_index("baseline").loc["fill with a present class", "miou"])
    table = criteria_table(clean, stress, class_groups(evaluated), label_prior_loss(train.labels), fill)
    Report(ctx).table(table, "benchmark_v2_criteria",
                      f"Pre-registered design criteria of benchmark v2 (data_cards/synthetic_wsss.md), checked on the vanilla "
                      f"CAM alone, seeds {seeds}, study recipe; clean = synthetic-v2, stress = synthetic-v2-stress, "
                      f"split {classifier.eval_split}.")
    with pd.option_context("display.max_colwidth", 200, "display.width", 200):
        print(table.to_string(index=False))
    return 0 if bool(table["holds"].all()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
