"""A CAM explorer for JupyterLab: pick a run, an image, a class and a threshold, and see the image, the class's CAM,
the thresholded mask and the ground truth side by side (ipywidgets).

In a batch run (the runner and nbval set ``WSSS_BATCH=1`` for their kernels, where no one can move a slider and a
widget's drawings would not be saved in the notebook) it shows the same four panels once, as a static figure, for
the first run, its first image with a foreground class, that class and the run's oracle threshold.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from wsss_lib.formats.cam_io import cam_path, load_cam
from wsss_lib.formats.masks import IGNORE_INDEX

__all__ = ["BATCH_ENV", "explorer_figure", "explore_cams", "cam_explorer"]

BATCH_ENV = "WSSS_BATCH"
"""Set to ``1`` in the kernels of batch runs (runner, nbval): the explorer draws a static figure."""


def _class_map(record, class_index: int, shape: tuple[int, int]) -> np.ndarray:
    """The high-resolution CAM of ``class_index`` (zeros where the image has no CAM for it: an absent class)."""
    found = np.flatnonzero(record.keys == class_index)
    return record.hr_cam[found[0]] if found.size else np.zeros(shape, np.float32)


def explorer_figure(dataset, run, image_id: str, class_index: int, threshold: float) -> plt.Figure:
    """Image, CAM of ``class_index`` over it, the CAM thresholded at ``threshold`` and the class's ground truth,
    with the IoU of the two masks (void pixels ignored)."""
    image, mask = dataset.load_pair(image_id)
    cam = _class_map(load_cam(cam_path(run.cams.file("npz"), image_id)), class_index, mask.shape)
    predicted, truth, valid = cam >= threshold, mask == class_index, mask != IGNORE_INDEX
    union = ((predicted | truth) & valid).sum()
    iou = ((predicted & truth) & valid).sum() / union if union else float("nan")
    name = dataset.class_names[class_index]
    fig, axes = plt.subplots(1, 4, figsize=(11, 3))
    panels = [("image", image, None), (f"CAM: {name}", cam, "jet"), (f"CAM >= {threshold:.2f}", predicted, "gray"),
              (f"ground truth: {name}", truth, "gray")]
    for ax, (title, data, cmap) in zip(axes, panels):
        if cmap == "jet":
            ax.imshow(image)
            ax.imshow(data, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        else:
            ax.imshow(data, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{run.label} seed {run.seed}, image {image_id}: IoU {100 * iou:.1f}%", fontsize=10)
    fig.tight_layout()
    return fig


def _first_pick(dataset, run) -> tuple[str, int]:
    for image_id in dataset.ids:
        present = np.flatnonzero(dataset.label_of(image_id)) + 1
        if present.size:
            return image_id, int(present[0])
    return dataset.ids[0], 1


def explore_cams(dataset, runs: Sequence, interactive: bool | None = None) -> None:
    """Show the explorer over ``runs`` (priors runs whose CAMs are of ``dataset``'s split): the widgets of
    :func:`cam_explorer`, or one static figure in a batch run (``interactive=None``: decided by :data:`BATCH_ENV`)."""
    runs = list(runs)
    if not runs:
        print("CAM explorer: no run to explore")
        return
    if interactive is None:
        interactive = os.environ.get(BATCH_ENV, "") != "1"
    if not interactive:
        image_id, class_index = _first_pick(dataset, runs[0])
        explorer_figure(dataset, runs[0], image_id, class_index, runs[0].sweep.best_threshold)
        plt.show()
        return
    from IPython.display import display

    display(cam_explorer(dataset, runs))


def cam_explorer(dataset, runs: Sequence):
    """The explorer's widgets (an ``ipywidgets.VBox``): run, image (its classes listed first, marked ``*``), class,
    threshold (starting at the run's oracle threshold); every change redraws :func:`explorer_figure`."""
    import ipywidgets as widgets

    runs = list(runs)
    run_pick = widgets.Dropdown(options=[(f"{r.label} seed {r.seed}", k) for k, r in enumerate(runs)], description="run")
    image_pick = widgets.Dropdown(options=list(dataset.ids), description="image")
    class_pick = widgets.Dropdown(description="class")
    threshold = widgets.FloatSlider(min=0.0, max=1.0, step=0.01, description="threshold", continuous_update=False)
    out = widgets.Output()

    def classes(*_):  # the image's classes first, then the others
        present = set((np.flatnonzero(dataset.label_of(image_pick.value)) + 1).tolist())
        order = sorted(present) + [c for c in range(1, dataset.num_classes) if c not in present]
        class_pick.options = [(dataset.class_names[c] + (" *" if c in present else ""), c) for c in order]
        class_pick.value = order[0]

    def draw(*_):
        if class_pick.value is None:  # between two settings of the class list
            return
        with out:
            out.clear_output(wait=True)
            explorer_figure(dataset, runs[run_pick.value], image_pick.value, class_pick.value, threshold.value)
            plt.show()

    def run_changed(*_):
        threshold.value = float(runs[run_pick.value].sweep.best_threshold)  # the run's oracle threshold

    first_image, _ = _first_pick(dataset, runs[0])
    image_pick.value = first_image
    classes()
    run_changed()
    image_pick.observe(classes, "value")
    run_pick.observe(run_changed, "value")
    for widget in (run_pick, image_pick, class_pick, threshold):
        widget.observe(draw, "value")
    box = widgets.VBox([widgets.HBox([run_pick, image_pick]), widgets.HBox([class_pick, threshold]), out])
    draw()
    return box
