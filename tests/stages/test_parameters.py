"""The configuration shape: one dict per stage, over the config's defaults, from profile to stage."""

from __future__ import annotations

import pytest

from wsss_lib.config import apply_overrides, from_dict, load_profile, merge, set_path
from wsss_lib.paths import repo_root


def test_a_nested_dict_fills_its_config_over_the_stage_defaults():
    from wsss_lib.stages.refinement import AffinityStageConfig
    from wsss_lib.stages.saliency import DetectorStageConfig

    affinity = from_dict(AffinityStageConfig, {"backbone": {"name": "resnet50"}, "train": {"epochs": 1}})
    # the stage's own defaults hold for what the dict leaves out (frozen BN, five feature stages, no eval)
    assert affinity.backbone.frozen_bn and affinity.backbone.out_indices == (0, 1, 2, 3, 4)
    assert (affinity.backbone.name, affinity.train.epochs, affinity.train.batch_size) == ("resnet50", 1, 32)
    assert affinity.train.eval_every == 0 and affinity.augment.color_jitter is None
    detector = from_dict(DetectorStageConfig, {"optim": {"lr": 1e-4}})
    assert (detector.optim.algorithm, detector.optim.lr, detector.optim.accumulate_steps) == ("adam", 1e-4, 10)
    with pytest.raises(KeyError, match=r"optim: unknown OptimConfig field\(s\) 'lrr' \(did you mean 'lr'\?\)"):
        from_dict(DetectorStageConfig, {"optim": {"lrr": 1e-4}}, where="detector")


def test_merge_and_dotted_paths_change_one_field_and_keep_the_others():
    base = {"classifier": {"train": {"epochs": 15, "batch_size": 16}, "optim": {"lr": 0.1}}, "seeds": [0]}
    assert merge(base, {"classifier": {"train": {"epochs": 3}}})["classifier"] == {
        "train": {"epochs": 3, "batch_size": 16}, "optim": {"lr": 0.1}}
    out = apply_overrides(base, {"classifier.train.epochs": 3, "classifier.augment.crop_size": 64, "seeds": [1]})
    assert out["classifier"] == {"train": {"epochs": 3, "batch_size": 16}, "optim": {"lr": 0.1},
                                 "augment": {"crop_size": 64}}
    assert out["seeds"] == [1] and base["classifier"]["train"]["epochs"] == 15  # not changed in place
    assert set_path(base, "classifier", {"optim": {"lr": 0.01}})["classifier"] == {"optim": {"lr": 0.01}}  # replaced
    assert merge(base, {"classifier": {}})["classifier"] == {}  # an empty dict clears (the config's defaults)
    with pytest.raises(KeyError, match="did you mean 'classifier'"):
        set_path(base, "clasifier.train.epochs", 3)
    with pytest.raises(KeyError, match="not a dict"):
        set_path(base, "seeds.first", 3)


def test_papermill_overrides_change_one_nested_field_of_the_notebooks_dict():
    """Plain papermill: -y '{"overrides": {"classifier.train.epochs": 3}}' injects one parameter; the notebook's
    first cell applies it over its own classifier dict, whose other fields stay (what notebook 01 does, executed
    here without training: the parameters cell, papermill's injected cell, then the config call)."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(repo_root() / "notebooks" / "01_cam_baseline.ipynb"))
    nb = parameterize_notebook(nb, {"overrides": {"classifier.train.epochs": 3, "runtime.num_workers": 0}})
    namespace: dict = {}
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            exec(cell.source, namespace)
    from wsss_lib.stages.parameters import notebook_configs

    cfg = notebook_configs("01_cam_baseline", dataset=namespace["dataset"], data_root=namespace["data_root"],
                           runtime=namespace["runtime"], overrides=namespace["overrides"],
                           classifier=namespace["classifier"], ordinary=namespace["ordinary"], tta=namespace["tta"])
    assert cfg.classifier.train.epochs == 3 and cfg.classifier.train.num_workers == 0
    assert cfg.classifier.train.batch_size == 4 and cfg.classifier.augment.crop_size == 64  # the notebook's, kept
    assert cfg.classifier.backbone.name == "tf_efficientnet_lite0" and cfg.tta.scales == (0.5, 1.0)
    with pytest.raises(KeyError, match="no parameter 'clasifier'"):
        notebook_configs("01", dataset="synthetic-tiny", data_root="", runtime={}, overrides={"clasifier.train.epochs": 3},
                         classifier={})


@pytest.mark.parametrize("profile_name", ["paper-voc", "paper-coco"])
def test_a_paper_profile_gives_every_stage_dict_and_runtime_of_its_notebooks(profile_name):
    """A dict the profile leaves out would take the notebook's defaults, the smoke settings: a paper profile names
    every one (``{}`` = the config's defaults, the paper's settings)."""
    from wsss_lib.runner.notebooks import discover_notebooks, notebook_defaults
    from wsss_lib.stages.parameters import PARAMETER_TYPES

    profile = load_profile(profile_name)
    for nb in discover_notebooks(repo_root() / "notebooks"):
        stage_dicts = set(notebook_defaults(nb)) & set(PARAMETER_TYPES)
        missing = stage_dicts - set(profile["notebooks"].get(nb.stem, {}))
        assert not missing, (nb.stem, missing)


def test_stage_keys_of_the_study_did_not_change_with_the_configuration_shape():
    """Keys pinned at the change to nested configs: the study's finished stages (work/study) stay valid. A change
    here recomputes every stage of a profile: say so when you make it."""
    from wsss_lib.config import config_hash
    from wsss_lib.stages.parameters import notebook_configs
    from wsss_lib.stages.priors import method_classifier, ordinary_config
    from wsss_lib.studies.benchmark_v2 import notebook_namespace

    ns = notebook_namespace("study", "02_puzzle_cam")
    cfg = notebook_configs("02", dataset=ns["dataset"], data_root=ns["data_root"], runtime=ns["runtime"],
                           overrides=ns["overrides"], classifier=ns["classifier"], ordinary=ns["ordinary"], tta=ns["tta"])
    puzzle = method_classifier(cfg.classifier, "puzzle", {"label_smoothing": 0.0}, seed=1)
    ordinary = ordinary_config(cfg.classifier, cfg.ordinary)
    assert config_hash("classifier", puzzle.hashed()) == "50f9e1d643"
    assert config_hash("classifier", ordinary.hashed()) == "d75c3be173"


def test_a_profiles_overrides_are_folded_into_its_dicts_before_the_dry_run_caps_them():
    """overrides in a profile block reach the stage dicts before the caps and the plan see them (they would
    otherwise run after the caps, uncapped)."""
    from wsss_lib.runner.dry_run import dry_run_parameters
    from wsss_lib.runner.notebooks import discover_notebooks, validate_parameters
    from wsss_lib.runner.run import _resolver

    notebooks = discover_notebooks(repo_root() / "notebooks", ["01"])
    profile = load_profile("paper-voc")
    profile["notebooks"]["01_cam_baseline"]["overrides"] = {"classifier.train.epochs": 5, "tta.scales": [0.5, 1, 3]}
    params = validate_parameters(notebooks, profile, None)["01_cam_baseline"]
    assert params["overrides"] == {} and params["classifier"] == {"train": {"epochs": 5}}
    capped, changed = dry_run_parameters(params, False, _resolver("01_cam_baseline"))
    assert changed["classifier.train.epochs"] == (5, 1) and capped["classifier"]["train"]["epochs"] == 1
    assert changed["tta.scales"] == ([0.5, 1, 3], [0.5, 3]) and capped["overrides"] == {}


def test_a_stage_parameter_that_is_not_a_dict_is_named():
    from wsss_lib.stages.parameters import build_parameter, check_parameters

    with pytest.raises(TypeError, match="classifier must be a dict of ClassifierStageConfig fields"):
        build_parameter("classifier", {"classifier": "resnet50"}, "nb")
    assert check_parameters({"classifier": None, "acr": {"optim": {"lr": 0.01}}}, "nb") == []  # None: the defaults
    errors = check_parameters({"classifier": {"method_params": {"reconstruction": {}}}, "acr": {}}, "nb")
    assert errors == []  # ACR does not inherit the classifier's method_params (another method's)


def test_a_bad_pseudo_mask_threshold_source_fails_the_parameter_check():
    """Checked when the profile is read (the runner's pre-flight check), not when notebook 08 reaches it."""
    from wsss_lib.stages.parameters import check_parameters
    from wsss_lib.stages.refinement import PseudoMaskConfig

    with pytest.raises(ValueError, match="threshold_from must be 'fixed' or 'sweep', got 'swep'"):
        PseudoMaskConfig(threshold_from="swep")
    errors = check_parameters({"pseudo": {"threshold_from": "swep"}}, "nb")
    assert len(errors) == 1 and "swep" in errors[0]
    assert check_parameters({"pseudo": {"threshold_from": "sweep"}}, "nb") == []


def test_a_stage_variant_is_built_over_its_stage_dict_and_checked_before_anything_runs():
    """The DeepLabV2 rows are a variant of notebook 09's segmentation recipe: merged over it field by field, built
    into the same config, and a typo in it fails the runner's check naming the variant."""
    from wsss_lib.stages.parameters import build_variants, check_parameters

    params = {"segmentation": {"train": {"epochs": 3}},
              "segmentation_variants": {"V2": {"network": {"head": "v2"}, "iterations": 100}}}
    built = build_variants("segmentation_variants", params, "09")
    assert built["V2"].network.head == "v2" and built["V2"].iterations == 100 and built["V2"].train.epochs == 3
    assert check_parameters(params, "09") == []
    params["segmentation_variants"]["V2"]["iterationz"] = 1
    errors = check_parameters(params, "09")
    assert len(errors) == 1 and "segmentation_variants['V2']" in errors[0] and "did you mean 'iterations'" in errors[0]
