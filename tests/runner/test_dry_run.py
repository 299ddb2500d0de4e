"""Dry runs of the paper profiles: the generated VOC/COCO fixtures, the caps, the labelling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from wsss_lib.config import load_profile
from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.fixtures import ABSENT_FROM_TRAIN, COCO_CATEGORIES, write_coco_fixture, write_voc_fixture
from wsss_lib.reporting.writer import Report
from wsss_lib.runner.dry_run import CAPS, SMALL_BACKBONES, dry_run_parameters, dry_run_profile_name, is_dry_run_profile
from wsss_lib.stages.context import DRY_RUN_NOTE, SMALL_DRY_RUN_NOTE, RunContext


def test_voc_fixture_has_what_the_real_tree_has(tmp_path):
    root = write_voc_fixture(tmp_path / "voc")
    voc = root / "VOC2012"
    assert not (voc / "class_names.txt").exists()  # the real tree has none: the 20 official names apply
    splits = {s: (voc / "ImageSets" / "Segmentation" / f"{s}.txt").read_text().split() for s in
              ("train", "val", "train_aug", "test")}
    assert set(splits["train"]) <= set(splits["train_aug"]) and not set(splits["val"]) & set(splits["train_aug"])
    assert all(not (voc / "SegmentationClass" / f"{i}.png").exists() and (voc / "JPEGImages" / f"{i}.jpg").exists()
               for i in splits["test"])
    one = splits["train"][0]
    assert Image.open(voc / "SegmentationClass" / f"{one}.png").mode == "P"
    assert Image.open(voc / "SegmentationClassAug" / f"{one}.png").mode == "L"
    with pytest.warns(UserWarning, match="differ"):  # XML objects the masks lack
        train = open_dataset(DatasetConfig(name="voc", data_root=str(root)), "train", work_dir=tmp_path / "w",
                             progress=False)
        labels = train.labels
    assert train.num_classes == 21
    present = {train.class_names[c + 1] for c in np.flatnonzero(labels.sum(axis=0))}
    assert not present & set(ABSENT_FROM_TRAIN) and len(present) >= 8
    val = open_dataset(DatasetConfig(name="voc", data_root=str(root)), "val", work_dir=tmp_path / "w", progress=False)
    assert set(ABSENT_FROM_TRAIN) <= {val.class_names[c + 1] for c in np.flatnonzero(val.labels.sum(axis=0))}
    mask = val.load_mask(val.ids[0])
    assert 255 in mask  # void outlines


def test_coco_fixture_has_what_the_real_tree_has(tmp_path):
    root = write_coco_fixture(tmp_path / "coco")
    data = json.loads((root / "annotations" / "instances_train2014.json").read_text())
    ids = [c["id"] for c in data["categories"]]
    assert len(ids) == 80 and ids != list(range(1, 81)) and max(ids) == 90 and tuple(
        (c["id"], c["name"]) for c in data["categories"]) == COCO_CATEGORIES
    kinds = {("polygon" if isinstance(a["segmentation"], list) else
              "rle" if isinstance(a["segmentation"]["counts"], list) else "compressed rle", a["iscrowd"])
             for a in data["annotations"]}
    assert {("polygon", 0), ("rle", 0), ("compressed rle", 0), ("rle", 1)} <= kinds
    annotated = {a["image_id"] for a in data["annotations"]}
    assert any(im["id"] not in annotated for im in data["images"])
    train = open_dataset(DatasetConfig(name="coco", data_root=str(root)), "train", work_dir=tmp_path / "w",
                         progress=False)  # images without annotation are left out (COCOSegmentation unlabeled="drop")
    assert train.num_classes == 81 and len(train) == len(annotated) < len(data["images"])
    assert (train.labels.sum(axis=1) > 0).all()
    masks = np.concatenate([train.load_mask(i).ravel() for i in train.ids])
    assert 255 in masks and masks[masks != 255].max() <= 80  # crowd regions are void; ids are contiguous


def _params(profile_name: str, stem: str) -> dict:
    profile = load_profile(profile_name)
    return {**profile["common"], **profile["notebooks"][stem]}


def _capped(profile_name: str, stem: str, small: bool = False):
    from wsss_lib.runner.run import _resolver

    return dry_run_parameters(_params(profile_name, stem), small, _resolver(stem))


def test_caps_act_on_the_resolved_configs_keep_the_code_path_and_say_what_changed():
    capped, changed = _capped("paper-voc", "05_p_noc")
    assert capped["profile"] == "paper-voc-dry" and capped["seeds"] == [0] and capped["label_smoothing"] == [0.0, 0.1]
    # the profile writes classifier: {} (the paper's recipe, the config's defaults); the caps read the resolved values
    assert _params("paper-voc", "05_p_noc")["classifier"] == {}
    classifier = capped["classifier"]
    assert classifier["train"]["epochs"] == 1 and changed["classifier.train.epochs"] == (15, 1)
    assert classifier["backbone"] == {"weights": "none"} and changed["classifier.backbone.weights"] == ("timm", "none")
    assert classifier["augment"]["crop_size"] == 64 and "accumulate_steps" not in classifier.get("optim", {})  # 2: kept
    assert changed["tta.scales"] == ([0.5, 1.0, 1.5, 2.0], [0.5, 2.0]) and capped["runtime"]["num_workers"] == 2
    assert set(changed) - {"profile"} <= {p for p, _ in _leaf_paths(capped)}
    rib = _capped("paper-voc", "11_methods_class_groups")[0]["rib"]
    assert rib["steps"] == 1 and rib["batch_size"] == 2 and "lr" not in rib  # RIB's other settings: its defaults
    acr = _capped("paper-voc", "11_methods_class_groups")[0]["acr"]
    assert acr["train"]["epochs"] == 1 and acr["optim"]["lr"] == 0.01  # ACR's own lr kept, its epochs capped
    lite = {"classifier": {"backbone": {"name": "tf_efficientnet_lite0", "weights": "offline-lite0"}}}
    assert dry_run_parameters(lite)[0]["classifier"]["backbone"]["weights"] == "offline-lite0"
    assert dry_run_profile_name("paper-coco") == "paper-coco-dry" == dry_run_profile_name("paper-coco-dry")


def _leaf_paths(params: dict):
    from wsss_lib.runner.dry_run import leaves

    return [leaf for name, value in params.items() for leaf in leaves(value, name)]


def test_small_backbones_swap_each_backbone_for_the_smallest_of_its_family_and_say_so(tmp_path):
    import pandas as pd
    import timm

    capped, changed = _capped("paper-voc", "07_saliency_c2amh", small=True)
    assert capped["profile"] == "paper-voc-small-dry" and is_dry_run_profile(capped["profile"])
    assert changed["c2am.backbone.name"] == ("resnest269e", "resnest14d")
    assert changed["detector.backbone.name"] == ("resnet50", "resnet26")
    assert capped["c2am"]["train"]["epochs"] == 1 and capped["c2am"]["backbone"]["weights"] == "none"  # still capped
    assert "name" not in _capped("paper-voc", "07_saliency_c2amh")[0]["c2am"]["backbone"]  # only with small_backbones
    lite = {"classifier": {"backbone": {"name": "tf_efficientnet_lite0"}}}
    assert dry_run_parameters(lite, True)[0]["classifier"]["backbone"]["name"] == "tf_efficientnet_lite0"
    for small in set(SMALL_BACKBONES.values()):
        assert small in timm.list_models(), small
    ctx = RunContext.create("paper-voc-small-dry", str(tmp_path / "w"), str(tmp_path / "r"))
    Report(ctx).table(pd.DataFrame({"a": [1.0]}), "t", "A caption.")
    assert (tmp_path / "r" / "tables" / "t.md").read_text().startswith(SMALL_DRY_RUN_NOTE + " A caption.")
    assert "smallest of its family" in SMALL_DRY_RUN_NOTE


def _resolved_paths(profile_name: str):
    """Every (path, value) of every notebook parameter of a profile, stage dicts resolved over their defaults."""
    from wsss_lib.config import to_dict
    from wsss_lib.paths import repo_root
    from wsss_lib.runner.notebooks import notebook_defaults
    from wsss_lib.stages.parameters import PARAMETER_TYPES, build_parameter

    profile = load_profile(profile_name)
    out = []
    for stem, block in profile["notebooks"].items():
        params = {**notebook_defaults(repo_root() / "notebooks" / f"{stem}.ipynb"), **profile["common"], **block}
        resolved = {name: to_dict(build_parameter(name, params, stem)) if name in PARAMETER_TYPES else value
                    for name, value in params.items()}
        out += _leaf_paths(resolved)
    return out


def test_every_profile_backbone_has_a_small_substitute_of_its_family():
    from wsss_lib.config import available_profiles

    names = {value for name in available_profiles() for path, value in _resolved_paths(name)
             if path.endswith("backbone.name")}
    assert {"resnest269e", "resnet50"} <= names
    for name in names - {"tf_efficientnet_lite0"}:  # already the smallest: offline weights, kept as it is
        assert name in SMALL_BACKBONES, name
        assert SMALL_BACKBONES[name].rstrip("d").rstrip("0123456789") == name.rstrip("ed").rstrip("0123456789"), name


def test_every_cap_matches_a_parameter_path_of_a_paper_profile():
    import fnmatch

    paths = {path for name in ("paper-voc", "paper-coco") for path, _ in _resolved_paths(name)}
    for pattern in CAPS:
        assert any(fnmatch.fnmatchcase(path, pattern) for path in paths), pattern


def test_dry_run_tables_and_figures_say_so(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    ctx = RunContext.create("paper-voc-dry", str(tmp_path / "w"), str(tmp_path / "r"))
    assert ctx.dry_run
    Report(ctx).table(pd.DataFrame({"a": [1.0]}), "t", "A caption.")
    assert (tmp_path / "r" / "tables" / "t.md").read_text().startswith(DRY_RUN_NOTE + " A caption.")
    fig = plt.figure()
    Report(ctx).figure(fig, "f")
    assert any(t.get_text() == "DRY RUN" for t in fig.texts)
    with pytest.raises(AssertionError, match="floor"):
        RunContext.create("paper-voc", str(tmp_path / "w2"), str(tmp_path / "r2")).expect(False, "below the floor")
    assert ctx.expect(False, "below the floor") is False  # reported, not raised


def test_a_synthetic_profile_needs_no_fixture(tmp_path):
    """str(Path("")) is ".", which the runner once passed on as every notebook's data_root."""
    from wsss_lib.data.fixtures import dry_run_data

    assert dry_run_data("smoke", "synthetic", tmp_path) is None and not (tmp_path / "fixtures").exists()


def test_smoke_is_a_wiring_check_and_says_so(tmp_path):
    import pandas as pd

    from wsss_lib.stages.context import SMOKE_NOTE

    smoke = RunContext.create("smoke", str(tmp_path / "w"), str(tmp_path / "r"))
    assert smoke.wiring_check and not smoke.dry_run and smoke.note == SMOKE_NOTE
    Report(smoke).table(pd.DataFrame({"a": [1.0]}), "t", "A caption.")
    assert (tmp_path / "r" / "tables" / "t.md").read_text().startswith(SMOKE_NOTE + " A caption.")
    Report(smoke).table(pd.DataFrame({"a": [1.0]}), "lit", "Literature values.", measured=False)
    assert (tmp_path / "r" / "tables" / "lit.md").read_text().startswith("Literature values.")
    assert smoke.expect(False, "below the floor") is False  # reported, not raised
    assert "not applied" in smoke.checks_passed
    study = RunContext.create("study", str(tmp_path / "w3"), str(tmp_path / "r3"))
    assert not study.wiring_check and study.note == "" and study.checks_passed == "checks passed"
    with pytest.raises(AssertionError, match="floor"):
        study.expect(False, "below the floor")


def test_synthetic_presets_and_dataset_names():
    from wsss_lib.data import SYNTHETIC_PRESETS, DatasetConfig, dataset_family, synthetic_config
    from wsss_lib.data.synthetic import SyntheticConfig

    assert dataset_family("voc") == "voc" and dataset_family("coco") == "coco"
    assert {dataset_family(name) for name in SYNTHETIC_PRESETS} == {"synthetic"}
    assert synthetic_config("synthetic") == SyntheticConfig()  # v1 stays reproducible by its name
    tiny = synthetic_config("synthetic-tiny")
    assert (tiny.n_train, tiny.n_train_aug_extra, tiny.n_val, tiny.image_size) == (32, 16, 16, 128)
    with pytest.raises(ValueError, match="known: voc, coco, folder, synthetic"):
        DatasetConfig(name="synthetic-tinny")
    with pytest.raises(ValueError, match="not a synthetic"):
        synthetic_config("voc")


def test_a_preset_is_generated_once_under_its_config_hash(tmp_path):
    from wsss_lib.config import config_hash
    from wsss_lib.data import DatasetConfig, open_dataset, synthetic_config
    from wsss_lib.data.registry import SYNTHETIC_PRESETS

    SYNTHETIC_PRESETS["synthetic-test"] = {"image_size": 32, "n_train": 3, "n_train_aug_extra": 1, "n_val": 2}
    try:
        train = open_dataset(DatasetConfig(name="synthetic-test"), "train", work_dir=tmp_path, progress=False)
        assert train.name == "synthetic" and len(train) == 3
        assert train.root.parent == tmp_path / "data" / f"synthetic-{config_hash(synthetic_config('synthetic-test'))}"
        assert len(open_dataset(DatasetConfig(name="synthetic-test"), "train_aug", work_dir=tmp_path,
                                progress=False)) == 4
    finally:
        del SYNTHETIC_PRESETS["synthetic-test"]
