"""Scoring saliency as the background cue of a pseudo-segmentation (P-NOC Table 6).

Two protocols:

- **priors** (columns "P." and "R." of Table 6): the saliency map ``S`` replaces the constant background
  threshold. The background channel ``1 - S`` is concatenated with the image's normalised class CAMs and the
  argmax gives the label (CCAM's "use the cues as the background channel", CCAM#3). With a binary pseudo-saliency
  mask this is exactly "salient pixels take the arg-max present class, the others are background".
- **gt** (Table 6's last rows, which isolate the saliency's contribution): the priors are the ground truth. A
  pixel predicted salient (``S >= salient_threshold``) keeps its ground-truth class when that is an object
  class; a salient background pixel is a miss, counted as a prediction of the image's largest ground-truth
  object class (any object class would make it a miss; this one is deterministic); a non-salient pixel is
  predicted background. Images without objects predict background everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from wsss_lib.evaluation.confusion import ConfusionMatrix
from wsss_lib.formats.cam_io import CamRecord, cam_path, load_cam
from wsss_lib.formats.saliency_io import load_saliency, saliency_path
from wsss_lib.io.progress import tqdm

__all__ = ["labels_with_saliency", "gt_prior_labels", "score_saliency", "constant_saliency_floors"]


def labels_with_saliency(record: CamRecord, saliency: np.ndarray) -> np.ndarray:
    """``uint8`` label map: ``[0, *keys][argmax([1 - S, cam_1 .. cam_K])]`` on the full-resolution CAMs."""
    if record.hr_cam.shape[1:] != saliency.shape:
        raise ValueError(f"CAM shape {record.hr_cam.shape[1:]} does not match saliency shape {saliency.shape}")
    scores = np.concatenate([(1.0 - saliency)[None].astype(np.float32), record.hr_cam], axis=0)
    class_ids = np.concatenate([[0], record.keys]).astype(np.uint8)
    return class_ids[np.argmax(scores, axis=0)]


def gt_prior_labels(gt: np.ndarray, saliency: np.ndarray, salient_threshold: float = 0.5,
                    ignore_index: int = 255) -> np.ndarray:
    """The ground-truth-prior prediction of the module docstring (``uint8``, same shape as ``gt``)."""
    if gt.shape != saliency.shape:
        raise ValueError(f"mask shape {gt.shape} does not match saliency shape {saliency.shape}")
    objects = (gt != 0) & (gt != ignore_index)
    counts = np.bincount(gt[objects].ravel(), minlength=1)
    largest = int(counts.argmax()) if objects.any() else 0
    salient = saliency >= salient_threshold
    pred = np.zeros_like(gt, dtype=np.uint8)
    pred[salient] = largest
    pred[salient & objects] = gt[salient & objects]
    return pred


def score_saliency(dataset, saliency_dir: str | Path, protocol: Literal["priors", "gt"] = "priors",
                   cams_dir: str | Path | None = None, salient_threshold: float = 0.5,
                   progress: bool = True) -> ConfusionMatrix:
    """Confusion matrix over ``dataset`` of the saliency in ``saliency_dir`` under ``protocol``.

    ``saliency_dir`` holds 8-bit maps (:func:`wsss_lib.formats.saliency_io.load_saliency`; pseudo-saliency masks
    saved as 0/255 read as {0, 1}); ``cams_dir`` (CAM ``.npz`` files) is required by ``protocol="priors"``.
    """
    if protocol not in ("priors", "gt"):
        raise ValueError(f"protocol must be 'priors' or 'gt', got {protocol!r}")
    if protocol == "priors" and cams_dir is None:
        raise ValueError("protocol 'priors' needs cams_dir, the CAM files of the segmentation priors")
    confusion = ConfusionMatrix(dataset.num_classes)
    for image_id in tqdm(dataset.ids, desc=f"scoring saliency ({protocol})", disable=not progress):
        gt = dataset.load_mask(image_id)
        saliency = load_saliency(saliency_path(saliency_dir, image_id), gt.shape)
        if protocol == "priors":
            pred = labels_with_saliency(load_cam(cam_path(cams_dir, image_id)), saliency)
        else:
            pred = gt_prior_labels(gt, saliency, salient_threshold)
        confusion.update(pred, gt)
    return confusion


def constant_saliency_floors(dataset, progress: bool = True) -> dict[str, float]:
    """mIoU of the ground-truth-prior protocol for a constant saliency: nothing salient (all background) and
    everything salient (each image filled with its objects' classes, background pixels as misses). A saliency
    map that carries information must beat both."""
    floors = {"nothing salient": ConfusionMatrix(dataset.num_classes), "everything salient": ConfusionMatrix(dataset.num_classes)}
    for image_id in tqdm(dataset.ids, desc="constant-saliency floors", disable=not progress):
        gt = dataset.load_mask(image_id)
        floors["nothing salient"].update(gt_prior_labels(gt, np.zeros(gt.shape, np.float32)), gt)
        floors["everything salient"].update(gt_prior_labels(gt, np.ones(gt.shape, np.float32)), gt)
    return {name: 100 * cm.scores().miou for name, cm in floors.items()}
