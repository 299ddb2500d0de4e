"""Your own data end to end, as the README's three commands do it: an example folder, then the own-data profile's
notebooks (00-06) through the runner, ending in notebook 06's tables on that data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wsss_lib.data.fixtures import write_folder_example
from wsss_lib.runner.run import run_profile

pytestmark = pytest.mark.slow


def test_the_own_data_profile_runs_notebooks_00_to_06_on_a_generated_folder(tmp_path, monkeypatch):
    data = write_folder_example(tmp_path / "my_data", image_size=48, n_train=8, n_val=4)
    monkeypatch.setenv("WSSS_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("WSSS_REPORTS", str(tmp_path / "reports"))
    assert run_profile("own-data", data_root=str(data)) == 0
    reports = tmp_path / "reports" / "own-data"
    manifest = json.loads((reports / "manifest.json").read_text())
    assert {stem: entry["status"] for stem, entry in manifest["notebooks"].items()} == {
        stem: "ok" for stem in ["00_dataset_class_groups", "01_cam_baseline", "02_puzzle_cam", "03_oc_cse", "04_p_oc",
                                "05_p_noc", "06_priors_comparison"]}
    table2 = pd.read_csv(reports / "tables" / "06_table2_epochs.csv")
    assert {"CAM", "P"} <= set(table2["method"]) and table2["TTA"].between(0, 100).all()
    assert "FIRST LOOK (profile own-data" in (reports / "tables" / "06_table2_epochs.md").read_text()
    properties = pd.read_csv(reports / "tables" / "00_class_properties.csv")
    classes = (data / "class_names.txt").read_text().split()
    assert set(properties["class"]) - {"background"} <= set(classes) and len(properties) > 2  # your classes
