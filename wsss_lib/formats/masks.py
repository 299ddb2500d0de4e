"""Class-index PNGs: the Pascal VOC colour palette, the validated reader, and where the pipeline's own label
files live.

One format serves the ground-truth masks of every dataset (VOC layout), the pseudo-masks (palette PNGs under
``<stage>/SegmentationClass/<id>.png``) and the affinity labels (grayscale PNGs ``<stage>/<id>.png``): ``uint8``
class indices ``0..C-1`` with 255 = void / uncertain. :func:`read_index_png` validates both the mode and the values
and names the file in every error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsss_lib.formats.errors import DatasetError

__all__ = ["VOC_PALETTE", "IGNORE_INDEX", "MASK_FOLDER", "to_palette_image", "read_index_png", "mask_path", "load_mask",
           "load_affinity_labels"]

IGNORE_INDEX = 255  # "void": object boundaries and ambiguous pixels; ignored in every metric and loss
MASK_FOLDER = "SegmentationClass"  # pseudo-masks are written in VOC layout under their stage folder


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


def read_index_png(path: Path, num_classes: int) -> np.ndarray:
    """A class-index PNG (palette "P" or grayscale "L") as ``uint8`` ``H x W``, validated."""
    if not path.is_file():
        raise DatasetError(f"mask {path} is missing (listed in the split but not on disk)")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("P", "L"):
                raise DatasetError(
                    f"mask {path} has mode {im.mode!r}; expected a palette ('P') or grayscale ('L') PNG of "
                    "class indices (colour-rendered masks must be converted to indices first)"
                )
            mask = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"mask {path} cannot be decoded ({exc}); expected a PNG of class indices") from exc
    values = np.unique(mask)
    stray = values[(values >= num_classes) & (values != IGNORE_INDEX)]
    if stray.size:
        raise DatasetError(
            f"mask {path} contains value(s) {stray.tolist()} that are neither a class (0..{num_classes - 1}) "
            f"nor {IGNORE_INDEX} (void)"
        )
    return mask


def mask_path(masks_dir: str | Path, image_id: str) -> Path:
    """Where the mask of ``image_id`` lives under a pseudo-mask stage folder (VOC layout)."""
    return Path(masks_dir) / MASK_FOLDER / f"{image_id}.png"


def load_mask(masks_dir: str | Path, image_id: str, num_classes: int) -> np.ndarray:
    """A pseudo-mask as ``uint8`` class ids (validated: other values raise an error naming the file)."""
    return read_index_png(mask_path(masks_dir, image_id), num_classes)


def load_affinity_labels(path: str | Path, num_classes: int) -> np.ndarray:
    """An affinity label PNG (class ids or 255); other values raise an error naming the file."""
    return read_index_png(Path(path), num_classes)
