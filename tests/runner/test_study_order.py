"""`make study` runs the study profile in the order its data card pre-registers: every step's --set must pass the
runner's checks (known parameters, stage dicts that build), the downstream recipe checks come first and use only
the CAM row and the ground truth, and the last steps run every notebook with the profile's own seeds."""

from __future__ import annotations

import shlex
import subprocess

from wsss_lib.config import load_profile
from wsss_lib.paths import repo_root
from wsss_lib.runner import cli
from wsss_lib.runner import run as runner
from wsss_lib.runner.notebooks import validate_parameters


def study_steps() -> list[list[str]]:
    # -o: the virtual environment's stamp counts as up to date, so make prints the steps and installs nothing
    printed = subprocess.run(["make", "-n", "-o", ".venv/.installed", "study", "VENV=.venv"], cwd=repo_root(),
                             capture_output=True, text=True, check=True).stdout
    return [shlex.split(line)[3:] for line in printed.splitlines() if "wsss_lib.reproduce --profile study" in line]


def test_make_study_runs_the_pre_registered_order_and_every_step_passes_the_checks(monkeypatch):
    ran: list[dict[str, dict]] = []

    def check_only(profile, profile_name, notebooks, out_dir, **kwargs):
        assert profile_name == "study" and not kwargs.get("dry_run")
        ran.append(validate_parameters(notebooks, profile, kwargs.get("data_root")))
        return 0

    monkeypatch.setattr(runner, "run_notebooks", check_only)
    steps = study_steps()
    for argv in steps:
        assert cli.main(argv) == 0, argv
    stems = [[stem[:2] for stem in params] for params in ran]
    assert stems == [["07"], ["08"], ["09"], ["00", "01", "02", "03", "04", "05", "06"],
                     ["07", "08", "09"], ["07", "08", "09"], ["07", "08", "09"], ["10", "11"]]
    checks = {stem: params for step in ran[:3] for stem, params in step.items()}  # the recipe checks
    assert checks["07_saliency_c2amh"]["hint_sources"] == [""] and checks["07_saliency_c2amh"]["priors_methods"] == ["CAM"]
    assert checks["08_affinity_random_walk"]["rows"] == [["CAM", ""]]
    assert checks["09_segmentation"]["sources"] == ["ground truth"]
    assert all(params["seeds"] == [0] for params in checks.values())
    assert [step["07_saliency_c2amh"]["seeds"] for step in ran[4:7]] == [[0], [0, 1], [0, 1, 2]]
    plain = runner.profile_notebooks(load_profile("study"), "study",
                                     runner.discover_notebooks(repo_root() / "notebooks", ["07", "08", "09", "10", "11"]))
    unchanged = validate_parameters(plain, load_profile("study"), None)
    assert {**ran[6], **ran[7]} == unchanged  # the last steps: the profile as it is, every seed
