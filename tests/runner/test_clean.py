"""Executed notebooks without machine paths, widgets a code host cannot draw, or vector copies of figures; the
runner cleans every notebook it executes, and the study's committed notebooks stay clean and under 3 MB."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from wsss_lib.paths import repo_root
from wsss_lib.runner.clean import MAX_NOTEBOOK_BYTES, clean_notebook, machine_roots, scrub
from wsss_lib.runner.notebooks import discover_notebooks
from wsss_lib.runner.run import run_notebooks

ROOTS = {"/home/ana/repo": ".", "/home/ana/repo/work/study": "work/study", "/data/VOC": "$DATA", "/home/ana": "~"}


def test_scrub_replaces_the_longest_root_and_only_whole_path_components():
    text = ("/home/ana/repo/work/study/cams/x.npz /home/ana/repo/notebooks /home/ana/repo2/a /data/VOC, "
            "'/data/VOC' /home/ana/.cache /home/ana/repo")
    cleaned, count = scrub({"a": [text]}, ROOTS)
    assert cleaned == {"a": ["work/study/cams/x.npz ./notebooks ~/repo2/a $DATA, '$DATA' ~/.cache ."]}
    assert count == 7
    assert scrub("/data/VOCdevkit", ROOTS) == ("/data/VOCdevkit", 0)  # another folder, not the root
    assert scrub("/srv/data/VOC/x /mnt/home/ana/repo", ROOTS) == ("/srv/data/VOC/x /mnt/home/ana/repo", 0)  # nor inside one
    assert scrub("saved to /data/VOC. See /home/ana/repo|x (/home/ana/repo/a.py)", ROOTS)[0] == \
        "saved to $DATA. See .|x (./a.py)"


def test_clean_notebook_removes_paths_widgets_and_vector_copies(tmp_path):
    cell = new_code_cell("print('hi')", outputs=[
        new_output("stream", name="stdout", text="stage /home/ana/repo/work/study/c2am/x done\n"),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                                         "text/plain": "100%|##########| 5/5"}),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "n"}}),
        new_output("display_data", data={"image/png": "iVBORw0KGgo=", "image/svg+xml": "<svg/>", "text/plain": "<Figure>"}),
        new_output("error", ename="FileNotFoundError", evalue="/data/VOC/x.png",
                   traceback=["File /home/ana/repo/wsss_lib/io/atomic.py, line 3"]),
    ])
    nb = new_notebook(cells=[cell], metadata={"widgets": {"state": {}},
                                              "papermill": {"input_path": "/home/ana/repo/notebooks/07.ipynb"}})
    path = tmp_path / "07.ipynb"
    nbformat.write(nb, path)
    report = clean_notebook(path, ROOTS)
    text = path.read_text()
    assert "/home/ana" not in text and "/data/VOC" not in text and "widget" not in text and "svg" not in text
    cleaned = nbformat.read(path, as_version=4)
    nbformat.validate(cleaned)
    outputs = cleaned.cells[0].outputs
    assert [o.output_type for o in outputs] == ["stream", "display_data", "display_data", "error"]
    assert outputs[0].text == "stage work/study/c2am/x done\n" and outputs[1].data == {"text/plain": "100%|##########| 5/5"}
    assert set(outputs[2].data) == {"image/png", "text/plain"} and outputs[3].traceback == ["File ./wsss_lib/io/atomic.py, line 3"]
    assert cleaned.metadata.papermill.input_path == "./notebooks/07.ipynb"
    assert (report.paths_replaced, report.widgets_removed, report.vector_images_removed) == (4, 2, 1)
    assert report.bytes == path.stat().st_size and not report.too_large


def test_machine_roots_name_the_repository_work_reports_and_data(monkeypatch, tmp_path):
    monkeypatch.delenv("WSSS_WORK", raising=False)
    monkeypatch.setenv("WSSS_REPORTS", str(tmp_path / "elsewhere"))
    roots = machine_roots("study", data_root=tmp_path / "VOC")
    assert roots[str(repo_root())] == "." and roots[str(repo_root() / "work" / "study")] == "work/study"
    assert roots[str((tmp_path / "elsewhere" / "study").resolve())] == "$WSSS_REPORTS/study"
    assert roots[str((tmp_path / "VOC").resolve())] == "$DATA" and roots[str(Path.home())] == "~"


def test_the_runner_cleans_what_it_executes_and_records_the_size(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSS_REPORTS", str(tmp_path / "reports"))
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    params = new_code_cell('profile = "smoke"\nwhere = ""', metadata={"tags": ["parameters"]})
    nbformat.write(new_notebook(cells=[params, new_code_cell("print(where)")],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}),
                   nb_dir / "00_paths.ipynb")
    out = tmp_path / "reports" / "t"
    profile = {"common": {"profile": "t"}, "notebooks": {"00_paths": {"where": str(repo_root() / "work" / "t" / "cams")}}}
    assert run_notebooks(profile, "t", discover_notebooks(nb_dir), out) == 0
    text = (out / "notebooks" / "00_paths.ipynb").read_text()
    assert str(tmp_path) not in text and text.count(str(repo_root())) == 1
    assert "work/t/cams" in text and "$WSSS_REPORTS/t/notebooks/00_paths.ipynb" in text  # papermill's output_path
    executed = nbformat.read(out / "notebooks" / "00_paths.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert str(repo_root() / "work" / "t" / "cams") in injected[0].source  # the run's input, re-runnable as it is
    assert executed.cells[-1].outputs[0].text == "work/t/cams\n"
    entry = json.loads((out / "manifest.json").read_text())["notebooks"]["00_paths"]
    assert entry["bytes"] == (out / "notebooks" / "00_paths.ipynb").stat().st_size


SNAPSHOT = sorted((repo_root() / "reports" / "study").rglob("*.ipynb"))  # the snapshot's notebooks and the evidence's


@pytest.mark.parametrize("path", SNAPSHOT, ids=[str(p.relative_to(repo_root() / "reports" / "study")) for p in SNAPSHOT])
def test_the_committed_study_notebooks_are_clean_and_small(path):
    text = path.read_text()
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size} bytes"
    assert str(repo_root()) not in text and str(Path.home()) + "/" not in text
    leaked = re.findall(r"(?<![\w.$~-])/(?:home|Users|root|tmp|work|scratch|mnt)/[\w./-]+", text)
    assert not leaked, f"{path.name}: machine paths {sorted(set(leaked))[:5]}"
    assert "application/vnd.jupyter.widget-view+json" not in text and "image/svg+xml" not in text
