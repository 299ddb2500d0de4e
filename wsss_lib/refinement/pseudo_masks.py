"""Pseudo-semantic-segmentation masks from walked CAMs (P-NOC ``scripts/rw/make_pseudo_labels.py``).

Per image: a constant background score ``bg_threshold`` (official: 0.25 at paper time, 0.3 at HEAD; IRN 0.25)
is prepended to the walked full-resolution maps, the argmax gives a label map, one CRF iteration refines it
(preset ``label_pseudo_mask``: labels unary with gt_prob 0.9, t = 1; empty = no CRF), and channel indices map
back to class ids. Images without a foreground label are all background.

Masks are written as palette PNGs with the VOC colours in ``<out_dir>/SegmentationClass/<id>.png`` (the VOC
layout: the segmentation stage and external tools read them as ground truth), atomically and resumably.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.formats.cam_io import CamRecord, cam_path, load_cam
from wsss_lib.formats.masks import load_mask, mask_path, to_palette_image
from wsss_lib.io import atomic_save_image, for_each_missing
from wsss_lib.io.progress import tqdm
from wsss_lib.ops.crf import crf_labels

__all__ = ["pseudo_mask", "make_pseudo_masks", "score_masks"]


def pseudo_mask(image: np.ndarray, record: CamRecord, bg_threshold: float,
                crf: str = "label_pseudo_mask") -> np.ndarray:
    """``uint8`` class-id map of one image from its walked maps (see the module docstring)."""
    if record.hr_cam.shape[1:] != image.shape[:2]:
        raise ValueError(f"map size {record.hr_cam.shape[1:]} does not match the image size {image.shape[:2]}")
    if len(record.keys) == 0:
        return np.zeros(image.shape[:2], np.uint8)
    scores, class_ids = record.with_background(bg_threshold, high_res=True)
    channels = np.argmax(scores, axis=0).astype(np.uint8)
    if crf:
        channels = crf_labels(image, channels, len(class_ids), crf)
    return class_ids.astype(np.uint8)[channels]


def make_pseudo_masks(dataset, walked_dir: str | Path, out_dir: str | Path, bg_threshold: float,
                      crf: str = "label_pseudo_mask", progress: bool = True, workers: int = 1) -> dict[str, int]:
    """One palette PNG per image of ``dataset`` (resumable, atomic; ``workers`` processes for the CRFs); returns
    ``{"computed", "skipped"}``."""

    def write(image_id: str, path: Path) -> None:
        mask = pseudo_mask(dataset.load_image(image_id), load_cam(cam_path(walked_dir, image_id)), bg_threshold, crf)
        atomic_save_image(path, to_palette_image(mask))

    return for_each_missing(dataset.ids, lambda i: mask_path(out_dir, i), write,
                            desc=f"pseudo-masks ({dataset.split})", progress=progress, workers=workers)


def score_masks(dataset, masks_dir: str | Path, progress: bool = False) -> ConfusionMatrix:
    """Confusion matrix of the masks in ``masks_dir`` against ``dataset``'s ground truth (GT 255 ignored)."""
    confusion = ConfusionMatrix(dataset.num_classes)
    for image_id in tqdm(dataset.ids, desc=f"scoring masks ({dataset.split})", disable=not progress):
        gt = dataset.load_mask(image_id)
        pred = load_mask(masks_dir, image_id, dataset.num_classes)
        if pred.shape != gt.shape:
            raise ValueError(f"{mask_path(masks_dir, image_id)}: mask size {pred.shape} differs from the ground "
                             f"truth's {gt.shape}")
        confusion.update(pred, gt)
    return confusion
