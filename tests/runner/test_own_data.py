"""Your own data end to end, as the README's three commands do it: an example folder, then the own-data profile's
notebooks through the runner, ending in notebook 06's tables on that data. Notebooks 00 (statistics), 01 (the CAM and
the ordinary classifier trained, TTA CAMs, sweeps) and 06 (the comparison) run here; 02-05 read the same dataset
through the same stages and run at the smoke defaults in nbval (a full own-data run: README, "Your own data")."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wsss_lib.data.fixtures import write_folder_example
from wsss_lib.runner.run import run_profile

pytestmark = pytest.mark.slow


def test_the_own_data_profile_runs_its_notebooks_on_a_generated_folder(tmp_path, monkeypatch):
    data = write_folder_example(tmp_path / "my_data", image_size=48, n_train=8, n_val=4)
    monkeypatch.setenv("WSSS_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("WSSS_REPORTS", str(tmp_path / "reports"))
    assert run_profile("own-data", only=["00", "01", "06"], data_root=str(data)) == 0
    reports = tmp_path / "reports" / "own-data"
    manifest = json.loads((reports / "manifest.json").read_text())
    assert {stem: entry["status"] for stem, entry in manifest["notebooks"].items()} == {
        stem: "ok" for stem in ["00_dataset_class_groups", "01_cam_baseline", "06_priors_comparison"]}
    table2 = pd.read_csv(reports / "tables" / "06_table2_epochs.csv")
    measured = table2[table2["TTA"].notna()]
    assert set(measured["method"]) == {"CAM"} and measured["TTA"].between(0, 100).all()
    assert "FIRST LOOK (profile own-data" in (reports / "tables" / "06_table2_epochs.md").read_text()
    properties = pd.read_csv(reports / "tables" / "00_class_properties.csv")
    classes = (data / "class_names.txt").read_text().split()
    assert set(properties["class"]) - {"background"} <= set(classes) and len(properties) > 2  # your classes
