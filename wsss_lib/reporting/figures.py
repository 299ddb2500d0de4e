"""Figures shared by the notebooks (matplotlib/seaborn; each returns a Figure, saving is the caller's)."""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from wsss_lib.data.stats import LabelStatistics
from wsss_lib.formats.masks import IGNORE_INDEX, VOC_PALETTE

__all__ = ["set_style", "compact_png", "INLINE_COLORS", "class_frequency_figure", "size_distribution_figure",
           "cooccurrence_matrix", "cooccurrence_figure", "colorize_mask", "sample_grid_figure"]


#: colours of the palette PNG a notebook shows inline (Figures, not the files ``Report.figure`` writes)
INLINE_COLORS = 256


def set_style() -> None:
    """The notebooks' look: seaborn's paper theme, and figures shown inline as compact palette PNGs.

    Grids of images (CAMs over photographs) make true-colour PNGs of 1-3 MB each, which would push an executed
    notebook past the size a code-hosting site shows (``wsss_lib.runner.clean.MAX_NOTEBOOK_BYTES``). Inside IPython
    the ``image/png`` formatter for Figures is therefore replaced by :func:`compact_png` (still PNG, 4-5x smaller on
    image grids, exact on a figure of at most 256 colours). The figure files written by ``Report.figure`` keep full
    colour. Outside IPython only the theme is set.
    """
    sns.set_theme(context="paper", style="ticks")
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebook stack
        return
    shell = get_ipython()
    if shell is None:
        return
    # The inline backend registers its own formatter when it is first loaded; load it first, then replace it.
    plt.switch_backend(plt.get_backend())
    shell.display_formatter.formatters["image/png"].for_type(plt.Figure, compact_png)


def compact_png(fig: plt.Figure, dpi: float | None = None, colors: int = INLINE_COLORS) -> bytes | None:
    """``fig`` as a PNG with a palette of at most ``colors`` colours (median cut), cropped like ``bbox_inches="tight"``.

    ``dpi`` defaults to ``figure.dpi`` (the inline backend's resolution). A figure with no axes, text or image
    (nothing drawn) gives ``None``, as IPython's own formatter does, so nothing is displayed.
    """
    from PIL import Image

    if not fig.axes and not fig.texts and not fig.images:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi or plt.rcParams["figure.dpi"], bbox_inches="tight",
                facecolor="white", metadata={"Software": None})
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors, method=Image.Quantize.MEDIANCUT).save(out, format="png", optimize=True)
    return out.getvalue()


def class_frequency_figure(per_class: pd.DataFrame, title: str = "") -> plt.Figure:
    """Occurrence (images per class) and average relative size per class, sorted by occurrence."""
    fg = per_class[per_class["class"] != "background"].sort_values("O", ascending=False)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    sns.barplot(data=fg, x="class", y="O", ax=axes[0], color="tab:blue")
    axes[0].set_ylabel("images containing the class (O)")
    sns.barplot(data=fg, x="class", y="%S", ax=axes[1], color="tab:orange")
    axes[1].set_ylabel("average relative size %S")
    for ax in axes:
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=70)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def size_distribution_figure(stats: LabelStatistics, title: str = "") -> plt.Figure:
    """Distribution of each class's relative size over the images that contain it (box plot, %)."""
    rows = [(stats.class_names[c], 100.0 * f) for c in range(1, len(stats.class_names))
            for f in stats.fraction[stats.presence[:, c], c]]
    frame = pd.DataFrame(rows, columns=["class", "relative size (%)"])
    order = frame.groupby("class")["relative size (%)"].median().sort_values().index
    fig, ax = plt.subplots(figsize=(11, 3.6))
    sns.boxplot(data=frame, x="class", y="relative size (%)", order=order, ax=ax, color="tab:green", fliersize=1)
    ax.tick_params(axis="x", rotation=70)
    ax.set_xlabel("")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def cooccurrence_matrix(stats: LabelStatistics) -> pd.DataFrame:
    """``P(column class present | row class present)`` in percent, foreground classes only."""
    fg = stats.presence[:, 1:].astype(np.float64)
    joint = fg.T @ fg
    counts = np.diag(joint).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = 100.0 * joint / counts[:, None]
    names = list(stats.class_names[1:])
    return pd.DataFrame(cond, index=names, columns=names)


def cooccurrence_figure(stats: LabelStatistics, title: str = "") -> plt.Figure:
    matrix = cooccurrence_matrix(stats)
    matrix = matrix.mask(np.eye(len(matrix), dtype=bool))  # the diagonal is 100 % by definition
    size = 0.35 * len(matrix) + 2
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(matrix, ax=ax, cmap="mako_r", vmin=0, vmax=100, square=True,
                cbar_kws={"label": "P(column | row) %"})
    ax.set_title(title or "class co-occurrence")
    fig.tight_layout()
    return fig


def colorize_mask(mask: np.ndarray) -> np.ndarray:
    """A label map as RGB with the VOC palette (void 255 in the palette's cream colour)."""
    return VOC_PALETTE[mask]


def sample_grid_figure(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], titles: Sequence[str],
                       class_names: Sequence[str], columns: int = 4) -> plt.Figure:
    """Image over mask pairs for a few samples, titled with their ids and label sets."""
    n = len(images)
    rows = 2 * int(np.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (image, mask, title) in enumerate(zip(images, masks, titles)):
        r, c = 2 * (i // columns), i % columns
        axes[r, c].imshow(image)
        axes[r, c].set_title(title, fontsize=7)
        axes[r + 1, c].imshow(colorize_mask(mask), interpolation="nearest")
        present = [class_names[k] for k in np.unique(mask) if k not in (0, IGNORE_INDEX)]
        axes[r + 1, c].set_title(", ".join(present), fontsize=7)
    fig.tight_layout()
    return fig
