"""The notebooks' inline figures: compact palette PNGs, small enough for a committed executed notebook."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from wsss_lib.reporting import figures  # noqa: E402


def _image_grid() -> plt.Figure:
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(2, 3, figsize=(9, 6))
    for ax in axes.flat:
        ax.imshow(rng.random((64, 64, 3)) * 0.3 + np.linspace(0, 0.7, 64)[None, :, None])
        ax.imshow(rng.random((64, 64)), cmap="jet", alpha=0.5)
    return fig


def test_compact_png_is_a_palette_png_smaller_than_true_colour():
    fig = _image_grid()
    compact = figures.compact_png(fig, dpi=72)
    full = io.BytesIO()
    fig.savefig(full, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    image = Image.open(io.BytesIO(compact))
    assert image.format == "PNG" and image.mode == "P"
    assert len(image.getpalette()) // 3 <= figures.INLINE_COLORS
    assert len(compact) < len(full.getvalue()) / 2
    # the same pixels as the true-colour rendering, cropped the same way
    assert image.size == Image.open(io.BytesIO(full.getvalue())).size


def test_compact_png_is_exact_on_a_figure_of_few_colours():
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, size=(40, 3), dtype=np.uint8)
    pixels = colours[rng.integers(0, 40, size=(60, 80))]
    fig = plt.figure(figsize=(0.8, 0.6), dpi=100)
    fig.figimage(pixels)  # pixels placed as they are, no resampling or antialiasing
    fig.text(0.5, 0.5, "")  # something to show
    compact = Image.open(io.BytesIO(figures.compact_png(fig, dpi=100))).convert("RGB")
    full = io.BytesIO()
    fig.savefig(full, format="png", dpi=100, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    reference = Image.open(io.BytesIO(full.getvalue())).convert("RGB")
    assert 40 <= len(reference.getcolors(maxcolors=1 << 16)) <= figures.INLINE_COLORS
    assert np.array_equal(np.asarray(compact), np.asarray(reference))


def test_empty_figure_shows_nothing():
    fig = plt.figure()
    assert figures.compact_png(fig) is None
    plt.close(fig)


def test_set_style_replaces_the_inline_png_formatter_inside_ipython():
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactiveshell.InteractiveShell.instance()
    try:
        figures.set_style()
        formatter = shell.display_formatter.formatters["image/png"]
        fig = _image_grid()
        data = formatter(fig)
        plt.close(fig)
        assert Image.open(io.BytesIO(data)).mode == "P"
    finally:
        interactiveshell.InteractiveShell.clear_instance()
