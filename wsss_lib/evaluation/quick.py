"""The quick in-training CAM score (the per-epoch columns of the paper's Table 2).

Each evaluation image is resized so its long side is ``size`` (no TTA, one scale, no flip), the CAMs of
its ground-truth classes are computed at the network's output stride, normalised with psi, upsampled
bilinearly to the resized image and compared with the nearest-resized ground truth at every background
threshold; the best mIoU is reported with its threshold (an oracle choice, as in the official code).
The true score is the TTA one (notebook inference), which this only estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss_lib.evaluation.confusion import scores_from_counts
from wsss_lib.evaluation.sweep import sweep_counts
from wsss_lib.models.cam import psi

__all__ = ["QuickEvalConfig", "quick_cam_miou"]


@dataclass(frozen=True)
class QuickEvalConfig:
    size: int = 512
    """Long side of the evaluation images (the official code evaluates 512 crops)."""
    thresholds: tuple[float, ...] = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45)
    """Background thresholds of the quick sweep (the best is reported). Official in-training grid: 0.10-0.45 (the
    paper profiles); the smoke and study profiles sweep 0.05-0.80 like the final sweep, because a vanilla CAM's
    optimum on the synthetic benchmark lies at 0.55-0.60, where the official grid would cut it off."""
    max_images: int = 0
    """Evaluate only the first ``max_images`` images (0 = all)."""


def _resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = np.asarray(Image.fromarray(image).resize(new, Image.BICUBIC))
    mask = np.asarray(Image.fromarray(mask).resize(new, Image.NEAREST))
    return image, mask


@torch.no_grad()
def quick_cam_miou(model: torch.nn.Module, dataset, mean: Sequence[float], std: Sequence[float],
                   cfg: QuickEvalConfig = QuickEvalConfig(), device: torch.device | str = "cpu",
                   autocast_dtype: torch.dtype | None = None) -> dict[str, float]:
    """``{"miou", "threshold", "images"}`` of ``model``'s CAMs on ``dataset`` (see the module docstring)."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    ids = dataset.ids[: cfg.max_images] if cfg.max_images else dataset.ids
    counts = None
    for image_id in ids:
        image, mask = _resize_pair(*dataset.load_pair(image_id), cfg.size)
        label = dataset.label_of(image_id)
        keys = np.flatnonzero(label) + 1
        if keys.size == 0:  # an image without labels (COCO has some): all background, nothing to forward
            image_counts = sweep_counts(np.zeros((0, *mask.shape), np.float32), keys, mask, cfg.thresholds,
                                        dataset.num_classes)
            counts = image_counts if counts is None else counts + image_counts
            continue
        x = torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1)[None].float() / 255.0
        x = (x - mean_t) / std_t
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            cams = model(x).cams.float()
        finite = torch.isfinite(cams[0, keys - 1]).flatten(1).all(dim=1).cpu()
        if not bool(finite.all()):
            names = [dataset.class_names[k] for k, ok in zip(keys.tolist(), finite.tolist()) if not ok]
            raise FloatingPointError(f"the CAM of class(es) {names} holds NaN or infinite values on image {image_id!r}")
        maps = F.interpolate(psi(cams[:, keys - 1]), size=mask.shape, mode="bilinear", align_corners=False)[0]
        image_counts = sweep_counts(maps.cpu().numpy(), keys, mask, cfg.thresholds, dataset.num_classes)
        counts = image_counts if counts is None else counts + image_counts
    model.train(was_training)
    mious = [scores_from_counts(c).miou for c in counts]
    best = int(np.nanargmax(mious))
    return {"miou": float(mious[best]), "threshold": float(cfg.thresholds[best]), "images": len(ids)}
