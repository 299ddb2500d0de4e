"""The CAM explorer: four panels for a run, image, class and threshold; widgets that redraw in JupyterLab; a static
figure in a batch run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

from wsss_lib.data.registry import DatasetConfig, open_dataset
from wsss_lib.formats.cam_io import cam_path, save_cam
from wsss_lib.reporting.explorer import BATCH_ENV, cam_explorer, explore_cams, explorer_figure

matplotlib.use("Agg")


@pytest.fixture
def data_and_run(tiny_voc, tmp_path):
    dataset = open_dataset(DatasetConfig(name="voc", data_root=str(tiny_voc)), "train", work_dir=tmp_path / "w",
                           progress=False)
    cams = tmp_path / "cams" / "npz"
    cams.mkdir(parents=True)
    for image_id in dataset.ids:
        mask = dataset.load_mask(image_id)
        keys = np.flatnonzero(dataset.label_of(image_id)) + 1
        hr = np.stack([(mask == k).astype(np.float32) * 0.9 for k in keys])  # a CAM equal to the ground truth
        save_cam(cam_path(cams, image_id), keys, hr[:, ::2, ::2], hr)
    run = SimpleNamespace(label="CAM", seed=0, cams=SimpleNamespace(file=lambda name: Path(cams)),
                          sweep=SimpleNamespace(best_threshold=0.3))
    return dataset, run


def test_the_four_panels_and_the_iou_of_the_picked_class(data_and_run):
    dataset, run = data_and_run
    fig = explorer_figure(dataset, run, "a", 1, 0.5)  # image a: a cat square, void border
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["image", "CAM: cat", "CAM >= 0.50", "ground truth: cat"]
    assert "IoU 100.0%" in fig._suptitle.get_text()
    assert "IoU 0.0%" in explorer_figure(dataset, run, "a", 1, 0.95)._suptitle.get_text()  # above every CAM value


def test_batch_runs_get_a_static_figure_and_jupyterlab_widgets_that_redraw(data_and_run, monkeypatch):
    dataset, run = data_and_run
    import wsss_lib.reporting.explorer as explorer

    drawn = []
    monkeypatch.setattr(explorer, "explorer_figure", lambda d, r, i, c, t: drawn.append((r.seed, i, c, t)))
    monkeypatch.setenv(BATCH_ENV, "1")
    explore_cams(dataset, [run])
    assert drawn == [(0, "a", 1, 0.3)]  # one static figure: first run, first image with a class, its oracle threshold
    drawn.clear()
    box = cam_explorer(dataset, [run, SimpleNamespace(**{**vars(run), "seed": 1, "sweep": SimpleNamespace(
        best_threshold=0.6)})])
    (run_pick, image_pick), (class_pick, threshold) = box.children[0].children, box.children[1].children
    assert threshold.value == 0.3 and image_pick.value == "a" and class_pick.options[0] == ("cat *", 1)
    run_pick.value = 1
    assert threshold.value == 0.6  # the run's own oracle threshold
    image_pick.value = "b"
    assert [label for label, _ in class_pick.options[:2]] == ["dog *", "car *"]  # the image's classes first
    threshold.value = 0.45
    assert drawn[0] == (0, "a", 1, 0.3) and drawn[-1] == (1, "b", 2, 0.45)  # every pick redraws the panels
