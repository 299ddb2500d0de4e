"""Bad data and bad overrides are refused before any kernel starts, with errors naming the path (or the command
line) and what was expected."""

from __future__ import annotations

import pytest
from test_reproduce import make_notebook

from wsss_lib.config import load_profile
from wsss_lib.data.checks import check_dataset
from wsss_lib.data.fixtures import dry_run_data
from wsss_lib.data.registry import DatasetConfig
from wsss_lib.paths import repo_root
from wsss_lib.runner.notebooks import check_data, discover_notebooks
from wsss_lib.runner.overrides import apply_to_profile
from wsss_lib.runner.run import run_notebooks


@pytest.fixture
def voc_notebook(tmp_path):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    make_notebook(nb_dir / "00_reads_voc.ipynb",
                  'profile = "t"\ndataset = "voc"\ndata_root = ""\ncam_split = "train"\nheldout_split = "val"',
                  'raise AssertionError("a kernel ran")')
    return nb_dir


def _run(nb_dir, tmp_path, data_root):
    return run_notebooks({"common": {}, "notebooks": {}}, "t", discover_notebooks(nb_dir), tmp_path / "reports",
                         data_root=data_root)


def test_a_missing_data_root_is_refused_before_any_kernel(voc_notebook, tmp_path, monkeypatch):
    monkeypatch.delenv("WSSS_DATA", raising=False)
    with pytest.raises(SystemExit, match=r"data check failed before running anything:\n  dataset 'voc' needs a data "
                                         r"root: pass --data DIR .*read by notebooks 00"):
        _run(voc_notebook, tmp_path, None)
    with pytest.raises(SystemExit, match=f"dataset root {tmp_path / 'nowhere'} does not exist; expected a VOCdevkit"):
        _run(voc_notebook, tmp_path, str(tmp_path / "nowhere"))
    assert not (tmp_path / "reports" / "notebooks" / "00_reads_voc.ipynb").exists()  # no kernel started


def test_a_malformed_voc_tree_names_each_problem(voc_notebook, tmp_path, tiny_voc):
    voc = tiny_voc / "VOC2012"
    (voc / "JPEGImages" / "b.jpg").unlink()
    (voc / "SegmentationClass" / "c.png").unlink()
    with pytest.raises(SystemExit) as failed:
        _run(voc_notebook, tmp_path, str(tiny_voc))
    message = str(failed.value)
    assert f"1 of 2 images of split 'train' are missing in {voc / 'JPEGImages'} (expected e.g. b.jpg" in message
    assert f"1 of 1 masks of split 'val' are missing in {voc / 'SegmentationClass'} (expected e.g. c.png" in message
    assert check_dataset(DatasetConfig(name="voc", data_root=str(tiny_voc)), ["trainval"]) == [
        f"split file {voc / 'ImageSets' / 'Segmentation' / 'trainval.txt'} is missing; available splits: "
        "['train', 'train_aug', 'val']"]


def test_a_good_tree_and_generated_synthetic_data_pass(tiny_voc, tmp_path):
    assert check_dataset(DatasetConfig(name="voc", data_root=str(tiny_voc)), ["train", "val", "train_aug"]) == []
    assert check_dataset(DatasetConfig(name="synthetic-tiny"), ["train", "whatever"]) == []  # generated when read


@pytest.mark.parametrize("profile_name, dataset", [("paper-voc", "voc"), ("paper-coco", "coco")])
def test_every_split_a_paper_profile_reads_exists_in_the_dry_run_fixtures(profile_name, dataset, tmp_path):
    root = dry_run_data(profile_name, dataset, tmp_path)
    profile = load_profile(profile_name)
    notebooks = discover_notebooks(repo_root() / "notebooks")
    params = {nb.stem: {**profile["common"], **profile["notebooks"].get(nb.stem, {}), "data_root": str(root)}
              for nb in notebooks if nb.stem in profile["notebooks"]}
    assert check_data([nb for nb in notebooks if nb.stem in params], params) == []
    (root / ("VOC2012/ImageSets/Segmentation/val.txt" if dataset == "voc" else "annotations/instances_val2014.json")).unlink()
    problems = check_data([nb for nb in notebooks if nb.stem in params], params)
    assert problems and all("val" in p and str(root) in p for p in problems), problems


def test_a_set_typo_names_the_command_line():
    from wsss_lib.runner.notebooks import validate_parameters

    notebooks = discover_notebooks(repo_root() / "notebooks", ["01"])
    profile = apply_to_profile(load_profile("smoke"), notebooks, {"classifier.train.epoch": 3})
    profile["overrides"] = {"classifier.train.epoch": 3}
    with pytest.raises(SystemExit, match=r"--set classifier.train.epoch=3 \(command line\) over .*smoke.yaml, "
                                         r"01_cam_baseline: classifier.train: unknown TrainConfig field\(s\) 'epoch' "
                                         r"\(did you mean 'epochs'\?\)"):
        validate_parameters(notebooks, profile, None)
