"""Pseudo-saliency masks from a saliency map (official ``scripts/ccam/inference_crf.py``).

A pixel is a foreground candidate where the saliency exceeds ``threshold`` (the official code pads a constant
background channel of 0.2 and takes the argmax, so ties go to the background); the binary map is refined with
the 2-label dense CRF (``label`` preset: t = 10, gt_prob 0.7). Masks are saved as 8-bit PNGs with 0 / 255 (the
official ``x255`` files) and read back as {0, 1}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsss_lib.formats.saliency_io import load_saliency, saliency_path
from wsss_lib.io import atomic_save_image, for_each_missing
from wsss_lib.ops.crf import crf_labels

__all__ = ["pseudo_saliency_mask", "make_pseudo_saliency"]


def pseudo_saliency_mask(image: np.ndarray, saliency: np.ndarray, threshold: float = 0.2,
                         crf: str = "label") -> np.ndarray:
    """``uint8`` {0, 1} mask: ``saliency > threshold``, refined by the 2-label CRF preset ``crf`` (empty = none)."""
    if saliency.shape != image.shape[:2]:
        raise ValueError(f"saliency shape {saliency.shape} does not match image shape {image.shape[:2]}")
    mask = (saliency > threshold).astype(np.uint8)
    return crf_labels(image, mask, 2, crf) if crf else mask


def make_pseudo_saliency(dataset, saliency_dir: str | Path, out_dir: str | Path, threshold: float = 0.2,
                         crf: str = "label", progress: bool = True, workers: int = 1) -> dict[str, int]:
    """One 0/255 PNG per image of ``dataset`` (resumable, atomic); returns ``{"computed", "skipped"}``."""
    def write(image_id: str, path: Path) -> None:
        image = dataset.load_image(image_id)
        saliency = load_saliency(saliency_path(saliency_dir, image_id), image.shape[:2])
        mask = pseudo_saliency_mask(image, saliency, threshold, crf)
        atomic_save_image(path, Image.fromarray(mask * 255, mode="L"))

    return for_each_missing(dataset.ids, lambda i: Path(out_dir) / f"{i}.png", write,
                            desc=f"pseudo-saliency ({dataset.split})", progress=progress, workers=workers)


