"""Saliency maps and pseudo-saliency masks on disk.

- saliency map: ``<stage>/<id>.png``, 8-bit grayscale, ``round(255 * S)`` of a map in [0, 1] (:func:`save_saliency`,
  :func:`load_saliency`, which checks the mode and, when given, the image's shape);
- pseudo-saliency mask: ``<stage>/<id>.png``, grayscale of 0 (background) and 255 (salient); read as {0, 1}
  (:func:`load_pseudo_saliency`; any other value is an error naming the file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsss_lib.io import atomic_save_image, reading

__all__ = ["saliency_path", "save_saliency", "load_saliency", "load_pseudo_saliency"]


def saliency_path(folder: str | Path, image_id: str) -> Path:
    return Path(folder) / f"{image_id}.png"


def save_saliency(path: str | Path, saliency: np.ndarray) -> None:
    """Write a [0, 1] map as an 8-bit grayscale PNG (``round(255 * S)``), atomically."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim != 2 or not np.isfinite(saliency).all() or saliency.min() < 0 or saliency.max() > 1:
        raise ValueError(f"{path}: saliency must be a finite H x W map in [0, 1], got shape {saliency.shape}")
    atomic_save_image(path, Image.fromarray(np.round(saliency * 255).astype(np.uint8), mode="L"))


def load_saliency(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A saliency PNG as float32 ``H x W`` in [0, 1]; ``shape`` (H, W) is checked when given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"saliency map {path} does not exist; run the saliency inference stage first")
    with reading(path, "a saliency map (8-bit grayscale PNG)"), Image.open(path) as im:
        if im.mode != "L":
            raise ValueError(f"{path}: saliency maps are 8-bit grayscale PNGs (mode 'L'), got mode {im.mode!r}")
        saliency = np.asarray(im, dtype=np.float32) / 255.0
    if shape is not None and saliency.shape != tuple(shape):
        raise ValueError(f"{path}: saliency map is {saliency.shape}, the image is {tuple(shape)}")
    return saliency


def load_pseudo_saliency(path: str | Path) -> np.ndarray:
    """A pseudo-saliency PNG as ``uint8`` {0, 1}; any value other than 0 and 255 is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo-saliency mask {path} does not exist; run the pseudo-saliency stage first")
    with reading(path, "a pseudo-saliency mask (PNG of 0 and 255)"), Image.open(path) as im:
        mask = np.asarray(im.convert("L") if im.mode != "L" else im, dtype=np.uint8)
    stray = np.setdiff1d(np.unique(mask), [0, 255])
    if stray.size:
        raise ValueError(f"{path}: pseudo-saliency masks hold 0 and 255 only, found {stray[:5].tolist()}")
    return (mask > 0).astype(np.uint8)
