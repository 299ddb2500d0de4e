"""The papermill runner: parameter validation before running, outputs, manifest, failures, skipping."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from wsss_lib.runner.notebooks import discover_notebooks, validate_parameters
from wsss_lib.runner.run import run_notebooks


def make_notebook(path: Path, parameters: str, body: str) -> Path:
    params = new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(body)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebooks(tmp_path):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    make_notebook(nb_dir / "00_first.ipynb", 'profile = "smoke"\nvalue = 1',
                  'import os, pathlib\npathlib.Path("cwd.txt").write_text(os.getcwd())\nassert value == 2, value')
    make_notebook(nb_dir / "01_second.ipynb", 'profile = "smoke"\nboom = False', 'if boom:\n    raise ValueError("boom in cell")')
    return nb_dir


def test_discover_and_only(notebooks):
    assert [p.stem for p in discover_notebooks(notebooks)] == ["00_first", "01_second"]
    assert [p.stem for p in discover_notebooks(notebooks, ["01"])] == ["01_second"]
    with pytest.raises(SystemExit, match="names no notebook"):
        discover_notebooks(notebooks, ["07"])


def test_unknown_parameter_fails_before_running(notebooks, tmp_path):
    profile = {"common": {"profile": "t"}, "notebooks": {"00_first": {"value": 2}, "01_second": {"bom": True}}}
    with pytest.raises(SystemExit, match=r"01_second.ipynb: unknown parameter\(s\) \['bom'\]"):
        run_notebooks(profile, "t", discover_notebooks(notebooks), tmp_path / "reports")
    assert not (tmp_path / "reports" / "notebooks" / "00_first.ipynb").exists()  # nothing ran
    with pytest.raises(SystemExit, match="notebooks that do not exist"):
        validate_parameters(discover_notebooks(notebooks), {"common": {}, "notebooks": {"05_x": {}}}, None)


def test_runs_in_notebook_dir_writes_manifest_and_skips(notebooks, tmp_path):
    profile = {"common": {"profile": "t"}, "notebooks": {"00_first": {"value": 2}}}
    out = tmp_path / "reports"
    assert run_notebooks(profile, "t", discover_notebooks(notebooks), out) == 0
    assert (notebooks / "cwd.txt").read_text() == str(notebooks)  # same working directory as JupyterLab/nbval
    executed = nbformat.read(out / "notebooks" / "00_first.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters == {"profile": "t", "value": 2}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"] == "t" and manifest["versions"]["papermill"]
    assert {k: v["status"] for k, v in manifest["notebooks"].items()} == {"00_first": "ok", "01_second": "ok"}
    assert "commit" in manifest and manifest["notebooks"]["00_first"]["seconds"] > 0
    assert run_notebooks(profile, "t", discover_notebooks(notebooks), out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "skipped" in manifest["notebooks"]["00_first"]
    assert [e["notebook"] for e in manifest["executions"]] == ["00_first", "01_second"]  # the skipped run adds none
    assert run_notebooks(profile, "t", discover_notebooks(notebooks, ["00"]), out, force=True) == 0
    executions = json.loads((out / "manifest.json").read_text())["executions"]
    assert [e["notebook"] for e in executions] == ["00_first", "01_second", "00_first"]  # kept across runs
    assert all(e["status"] == "ok" and e["seconds"] > 0 and e["started"] for e in executions)


def test_failure_names_notebook_and_cell_and_keeps_partial_output(notebooks, tmp_path, capsys):
    profile = {"common": {"profile": "t"}, "notebooks": {"00_first": {"value": 2}, "01_second": {"boom": True}}}
    out = tmp_path / "reports"
    assert run_notebooks(profile, "t", discover_notebooks(notebooks), out) == 1
    printed = capsys.readouterr()
    assert "FAILED 01_second.ipynb: cell" in printed.out + printed.err and "boom in cell" in printed.out + printed.err
    assert (out / "notebooks" / "01_second.ipynb").is_file()
    entry = json.loads((out / "manifest.json").read_text())["notebooks"]["01_second"]
    assert entry["status"] == "failed" and "ValueError: boom in cell" in entry["error"] and entry["failed_cell"] is not None


@pytest.mark.parametrize("profile_name", ["smoke", "paper-voc", "paper-coco", "study", "study-stress"])
def test_every_profile_matches_the_notebooks(profile_name):
    from wsss_lib.config import load_profile
    from wsss_lib.paths import repo_root
    from wsss_lib.runner.notebooks import profile_notebooks

    profile = load_profile(profile_name)
    every = discover_notebooks(repo_root() / "notebooks")
    notebooks = profile_notebooks(profile, profile_name, every)
    params = validate_parameters(notebooks, profile, None)
    assert set(params) == {p.stem for p in notebooks}
    if not profile_name.startswith("study"):
        assert len(notebooks) == len(every)  # the smoke and paper profiles run every notebook
    assert all(p["profile"] == profile_name for p in params.values())


def test_smoke_profile_is_the_notebook_defaults():
    """The smoke profile adds nothing to the notebooks' parameter cells (JupyterLab, nbval and make agree): only the
    profile's name, which every parameter cell already holds."""
    import ast

    import papermill as pm

    from wsss_lib.config import load_profile
    from wsss_lib.paths import repo_root

    profile = load_profile("smoke")
    notebooks = discover_notebooks(repo_root() / "notebooks")
    assert set(profile["notebooks"]) == {nb.stem for nb in notebooks}
    assert all(block == {} for block in profile["notebooks"].values()) and profile["common"] == {"profile": "smoke"}
    for nb in notebooks:
        assert ast.literal_eval(pm.inspect_notebook(str(nb))["profile"]["default"]) == "smoke", nb.name


def test_a_profile_runs_the_notebooks_it_names(notebooks):
    from wsss_lib.runner.notebooks import profile_notebooks

    found = discover_notebooks(notebooks)
    subset = {"common": {}, "notebooks": {"01_second": {}}}
    assert [nb.stem for nb in profile_notebooks(subset, "sub", found)] == ["01_second"]
    with pytest.raises(SystemExit, match="does not run"):
        profile_notebooks(subset, "sub", discover_notebooks(notebooks, ["00"]), ["00"])
    full = {"common": {}, "notebooks": {"00_first": {}, "01_second": {}}}
    assert [nb.stem for nb in profile_notebooks(full, "full", found)] == ["00_first", "01_second"]


def test_study_stress_extends_study():
    from wsss_lib.config import load_profile

    study, stress = load_profile("study"), load_profile("study-stress")
    assert stress["common"]["dataset"] == "synthetic-v2-stress" and study["common"]["dataset"] == "synthetic-v2"
    assert stress["notebooks"] == study["notebooks"]  # one recipe, written once
    assert len(study["notebooks"]) == 12  # the priors and, pre-registered, everything downstream of them
    for stem in ("01_cam_baseline", "02_puzzle_cam", "03_oc_cse", "04_p_oc", "05_p_noc", "07_saliency_c2amh",
                 "08_affinity_random_walk", "09_segmentation", "11_methods_class_groups"):
        assert len(study["notebooks"][stem]["seeds"]) >= 3  # every row of the study: at least 3 seeds


def test_set_overrides_the_notebooks_that_declare_the_parameter(notebooks):
    import argparse

    from wsss_lib.runner.overrides import apply_to_profile as apply_overrides
    from wsss_lib.runner.overrides import parse_override

    assert parse_override("seeds=[0]") == ("seeds", [0]) and parse_override("amp=bf16") == ("amp", "bf16")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_override("no value")
    found = discover_notebooks(notebooks)
    profile = {"common": {"profile": "t"}, "notebooks": {"00_first": {"value": 1}, "01_second": {}}}
    out = apply_overrides(profile, found, {"value": 5})
    assert out["notebooks"]["00_first"] == {"value": 5} and "value" not in out["notebooks"]["01_second"]
    assert profile["notebooks"]["00_first"] == {"value": 1}  # the loaded profile is not changed in place
    with pytest.raises(SystemExit, match="valeu"):
        apply_overrides(profile, found, {"valeu": 5})


def test_benchmark_check_reads_the_study_recipe_as_notebook_01_would():
    from wsss_lib.studies.benchmark_v2 import notebook_namespace

    study = notebook_namespace("study", "01_cam_baseline")
    assert study["dataset"] == "synthetic-v2" and study["classifier"]["train"]["epochs"] == 6
    assert study["classifier"]["augment"]["crop_size"] == 160 and study["tta"]["scales"] == [0.5, 1.0, 1.5, 2.0]
    assert study["overrides"] == {}  # not in the profile: the notebook's default
    assert notebook_namespace("study-stress", "01_cam_baseline")["dataset"] == "synthetic-v2-stress"


def test_set_changes_one_nested_field_and_keeps_the_others(capsys):
    """--set classifier.train.epochs=3 changes that field of the profile's dict (or of the notebook's default dict
    where the profile gives none) in every notebook that has it; a wrong field fails the check, naming the profile's
    file and the config's known fields, before anything runs."""
    from wsss_lib.config import load_profile
    from wsss_lib.paths import repo_root
    from wsss_lib.runner.notebooks import notebook_defaults, validate_parameters
    from wsss_lib.runner.overrides import apply_to_profile as apply_overrides

    notebooks = discover_notebooks(repo_root() / "notebooks", ["01", "02", "07", "11"])
    study = load_profile("study")
    out = apply_overrides(study, notebooks[:2], {"classifier.train.epochs": 3, "runtime.devices": 2})
    for stem in ("01_cam_baseline", "02_puzzle_cam"):
        classifier = out["notebooks"][stem]["classifier"]
        assert classifier["train"]["epochs"] == 3 and classifier["train"]["eval"]["size"] == 160  # kept
        assert classifier["augment"] == {"crop_size": 160, "resize_long_side": [144, 176]}
        assert out["notebooks"][stem]["runtime"] == {"device": "auto", "devices": 2, "num_workers": 0,
                                                     "crf_workers": 2}
    assert study["notebooks"]["01_cam_baseline"]["classifier"]["train"]["epochs"] == 6  # the loaded profile: unchanged
    # a profile that gives notebook 11 no amn dict: the notebook's default dict, with the one field changed
    without = {k: v for k, v in study["notebooks"]["11_methods_class_groups"].items() if k != "amn"}
    out = apply_overrides({**study, "notebooks": {**study["notebooks"], "11_methods_class_groups": without}},
                          [notebooks[3]], {"amn.train.epochs": 2})
    default = notebook_defaults(notebooks[3])["amn"]
    assert out["notebooks"]["11_methods_class_groups"]["amn"] == {**default, "train": {**default["train"], "epochs": 2}}
    with pytest.raises(SystemExit, match="c2am"):  # no notebook of this run has a c2am dict
        apply_overrides(study, notebooks[:2], {"c2am.train.epochs": 2})
    with pytest.raises(SystemExit, match="not a dict"):
        apply_overrides(study, notebooks[:1], {"tta.scales.first": 1.0})
    # a whole parameter is replaced, a dict too (an empty one clears)
    assert apply_overrides(study, notebooks[1:2], {"variants": {}})["notebooks"]["02_puzzle_cam"]["variants"] == {}
    typo = apply_overrides(study, notebooks[:1], {"classifier.train.epochz": 3})
    with pytest.raises(SystemExit) as failed:
        validate_parameters(notebooks[:1], typo, None)
    assert "study.yaml" in str(failed.value) and "did you mean 'epochs'" in str(failed.value)
    assert "01_cam_baseline: classifier.train" in str(failed.value)


def test_a_pending_shard_stops_the_batch_cleanly(tmp_path, monkeypatch, capsys):
    """A notebook whose per-image stage is waiting for other shards stops the run with exit status 0."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    make_notebook(nb_dir / "00_stage.ipynb", 'profile = "smoke"',
                  'from wsss_lib.artifacts import ShardPending\nraise ShardPending("3 of 10 images of other shards")')
    make_notebook(nb_dir / "01_after.ipynb", 'profile = "smoke"', 'raise AssertionError("must not run")')
    monkeypatch.setenv("WSSS_SHARD", "1/2")
    out = tmp_path / "reports"
    assert run_notebooks({"common": {"profile": "t"}, "notebooks": {}}, "t", discover_notebooks(nb_dir), out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shard"] == "1/2" and manifest["notebooks"]["00_stage"]["status"] == "shard-pending"
    assert "01_after" not in manifest["notebooks"]
    assert "shard 1/2 stopped at 00_stage" in capsys.readouterr().out


def test_shard_option_is_checked(capsys):
    from wsss_lib.reproduce import main

    with pytest.raises(SystemExit):
        main(["--profile", "smoke", "--shard", "3/3"])
    assert "0 <= index < count" in capsys.readouterr().err


@pytest.mark.slow
def test_local_executor_runs_a_batch_in_order_and_records_the_jobs(notebooks, tmp_path):
    """--executor local: one submitit job per notebook, the second submitted after the first succeeded."""
    from wsss_lib.runner.executors import job_resources, run_with_executor

    make_notebook(notebooks / "01_second.ipynb", 'profile = "smoke"\nboom = False',
                  'import pathlib\nassert pathlib.Path("cwd.txt").is_file(), "00 must have run first"\n'
                  'pathlib.Path("second.txt").write_text("ok")')
    profile = {"common": {"profile": "t"}, "notebooks": {"00_first": {"value": 2}},
               "resources": {"default": {"hours": 0.5}, "01_second": {"cpus": 1}}}
    assert job_resources(profile, "01_second").cpus == 1 and job_resources(profile, "00_first").cpus == 2
    out = tmp_path / "reports"
    assert run_with_executor("local", profile, "t", discover_notebooks(notebooks), out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    first, second = manifest["notebooks"]["00_first"], manifest["notebooks"]["01_second"]
    assert first["status"] == second["status"] == "ok" and manifest["executor"] == "local"
    assert first["job_id"] != second["job_id"] and second["resources"]["cpus"] == 1 and first["host"]
    assert (notebooks / "second.txt").read_text() == "ok"
    with pytest.raises(KeyError, match="did you mean .gpus."):  # a typo in a resources block fails by name
        job_resources({"resources": {"default": {"gpu": 1}}}, "00_first")


@pytest.mark.parametrize("profile_name", ["smoke", "paper-voc", "paper-coco", "study", "study-stress"])
def test_every_profile_resources_block_reads(profile_name):
    from wsss_lib.config import load_profile
    from wsss_lib.runner.executors import job_resources

    profile = load_profile(profile_name)
    assert set(profile.get("resources") or {}) <= {"default", *profile["notebooks"]}
    for stem in profile["notebooks"]:
        job_resources(profile, stem)


def test_a_notebook_on_several_devices_asks_for_as_many_gpus():
    from wsss_lib.runner.executors import job_resources

    profile = {"common": {}, "resources": {"default": {"gpus": 1}, "00_cpu": {"gpus": 0}},
               "notebooks": {"01_train": {"runtime": {"devices": 8}}, "02_one": {}, "00_cpu": {"runtime": {"devices": 2}}}}
    assert job_resources(profile, "01_train").gpus == 8
    assert job_resources(profile, "02_one").gpus == 1
    assert job_resources(profile, "00_cpu").gpus == 0  # CPU processes (gloo), no GPU asked
    profile["notebooks"]["02_one"]["runtime"] = {"devices": 4}
    assert job_resources(profile, "02_one").gpus == 4
