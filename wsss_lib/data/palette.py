"""The Pascal VOC colour palette and palette-PNG helpers (shared by every dataset in VOC layout)."""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["VOC_PALETTE", "IGNORE_INDEX", "to_palette_image"]

IGNORE_INDEX = 255  # "void": object boundaries and ambiguous pixels; ignored in every metric and loss


def _voc_palette(n: int = 256) -> np.ndarray:
    """The devkit's bit-interleaving palette: label ``i`` -> RGB; 255 maps to (224, 224, 192)."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


VOC_PALETTE: np.ndarray = _voc_palette()


def to_palette_image(label_map: np.ndarray) -> Image.Image:
    """A ``uint8`` H x W label map as a palette ("P" mode) PIL image with the VOC colours."""
    if label_map.dtype != np.uint8 or label_map.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 label map, got {label_map.dtype} with shape {label_map.shape}")
    image = Image.fromarray(label_map, mode="P")
    image.putpalette(VOC_PALETTE.reshape(-1).tolist())
    return image
