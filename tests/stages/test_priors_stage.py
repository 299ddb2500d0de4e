"""Priors runs through the stages: ordinary-classifier wiring, records for notebook 06, cached sweeps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from wsss_lib.stages.classifier import load_classifier, train_classifier, with_ordinary
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.priors import (
    load_priors_runs,
    method_classifier,
    method_label,
    ordinary_config,
    run_priors,
    runs_table,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_synthetic):
    from conftest import tiny_configs

    root = tmp_path_factory.mktemp("priors")
    ctx = RunContext.create("unit", str(root / "work"), str(root / "reports"))
    return ctx, tiny_configs(tiny_synthetic)


def test_notebook_configs_build_the_stage_dicts_over_their_defaults_and_name_typos(tiny_synthetic):
    from conftest import tiny_configs

    cfg = tiny_configs(tiny_synthetic, classifier={"augment": {"resize_long_side": [100, 200], "color_jitter": None}})
    assert cfg.classifier.augment.resize_long_side == (100, 200) and cfg.classifier.augment.color_jitter is None
    assert cfg.classifier.augment.crop_size == 64 and cfg.classifier.optim.lr == 0.1  # kept: the tiny dict, the default
    assert cfg.classifier.train.device == "cpu" and cfg.classifier.dataset.data_root == str(tiny_synthetic)
    assert cfg.ordinary.label_smoothing == 0.1 and cfg.tta.scales == (1.0,)
    with pytest.raises(KeyError, match="did you mean 'epochs'"):
        tiny_configs(tiny_synthetic, classifier={"train": {"epoch": 3}})


def test_unknown_method_parameter_is_named(tiny):
    _, cfg = tiny
    with pytest.raises(KeyError, match="method 'puzzle'"):
        method_classifier(cfg.classifier, "puzzle", {"reconstruction_weight": 4})


def test_methods_needing_the_ordinary_classifier_refuse_to_train_without_it(tiny):
    ctx, cfg = tiny
    with pytest.raises(ValueError, match="needs the ordinary classifier"):
        train_classifier(ctx, method_classifier(cfg.classifier, "poc"), progress=False)


@pytest.mark.slow
def test_pnoc_run_binds_the_ordinary_classifier_records_and_reloads(tiny):
    ctx, cfg = tiny
    ordinary = train_classifier(ctx, ordinary_config(cfg.classifier, cfg.ordinary), progress=False)
    run = run_priors(ctx, cfg.classifier, "pnoc", tta=cfg.tta, ordinary=cfg.ordinary, label_smoothing=0.1, seed=0,
                     notebook="05_p_noc", progress=False)
    assert run.label == "P-NOC+LS" and run.sweep.num_images == 8
    cfg = with_ordinary(method_classifier(cfg.classifier, "pnoc", {"label_smoothing": 0.1}), ordinary)
    assert run.classifier.config()["config"]["ordinary_key"] == ordinary.stage.key
    # the OC's key is part of the hash: another OC means another P-NOC stage
    assert with_ordinary(cfg, replace(ordinary, stage=replace(ordinary.stage, key="other"))).hashed() != cfg.hashed()
    # P-NOC trained the OC copy inside the method; the stored ordinary classifier itself is untouched
    trained = load_classifier(ctx, cfg)
    stored_oc = ordinary.method.state_dict()
    moved = [k for k, v in trained.method.ordinary.state_dict().items()
             if not torch.equal(v, stored_oc["model." + k])]
    assert moved, "P-NOC did not update its ordinary classifier"
    # notebook 06 finds the run through its record, with the same sweep
    again = load_priors_runs(ctx, labels=["P-NOC+LS"])
    assert [r.label for r in again] == ["P-NOC+LS"]
    np.testing.assert_array_equal(again[0].sweep.confusion[3].counts, run.sweep.confusion[3].counts)
    assert runs_table(again).loc[0, "TTA mIoU (%)"] == pytest.approx(100 * run.sweep.best.miou)


@pytest.mark.slow
def test_a_wrong_ordinary_classifier_is_refused(tiny):
    ctx, configs = tiny
    ordinary = train_classifier(ctx, ordinary_config(configs.classifier, configs.ordinary), progress=False)
    cfg = with_ordinary(method_classifier(configs.classifier, "occse"), ordinary)
    vanilla = train_classifier(ctx, method_classifier(configs.classifier, "cam"), progress=False)
    with pytest.raises(ValueError, match="configured with ordinary classifier"):
        train_classifier(ctx, cfg, progress=False, ordinary=vanilla)


def test_method_labels():
    assert method_label("puzzle", 0.0) == "P" and method_label("poc", 0.1) == "P-OC+LS"


@pytest.mark.slow
def test_a_run_on_data_with_regions_reports_part_far_body_and_context_scores(tmp_path, tiny):
    from wsss_lib.data import open_dataset
    from wsss_lib.data.synthetic import SyntheticConfig, generate
    from wsss_lib.evaluation.pathology import cam_region_counts

    _, v1 = tiny
    generate(SyntheticConfig(image_size=64, n_train=6, n_train_aug_extra=2, n_val=2, emit_regions=True,
                             context_prob=1.0), tmp_path / "data", workers=1, progress=False)
    ctx = RunContext.create("unit", str(tmp_path / "work"), str(tmp_path / "reports"))
    classifier = replace(v1.classifier, dataset=replace(v1.classifier.dataset, data_root=str(tmp_path / "data")))
    run = run_priors(ctx, classifier, "cam", tta=v1.tta, notebook="01", progress=False)
    summary = run.summary()
    for key in ("missed (%)", "spill (%)", "confused (%)", "part recall (%)", "far-body recall (%)", "context FP (%)"):
        assert key in summary
    dataset = open_dataset(classifier.dataset, "train", work_dir=ctx.work_dir, progress=False)
    direct = cam_region_counts(run.cams.file("npz"), dataset, run.sweep.best_threshold, progress=False)
    np.testing.assert_array_equal(run.regions, direct)
    assert run.regions.sum() > 0
    again = load_priors_runs(ctx, labels=["CAM"])[0]
    np.testing.assert_array_equal(again.regions, run.regions)
    # data without the annotation (v1): the error breakdown only
    runs = [run_priors(tiny[0], v1.classifier, "cam", tta=v1.tta, notebook="01", progress=False)]
    assert all("part recall (%)" not in r.summary() and "spill (%)" in r.summary() for r in runs)
