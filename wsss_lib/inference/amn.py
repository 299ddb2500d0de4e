"""AMN's CAMs (official ``step/make_amn_cam.py``), written in the project's CAM file format.

For each scale (and its flip) the label-conditioned network's logits are resized bilinearly to the stride-4 grid
and to the image, averaged over all views, and turned into probabilities by a softmax over the ``C + 1`` channels.
The maps of the image's classes are kept and **min-max normalised per class only outside the background of the
image's IR labels** (inside it they keep the raw probability), as the official code does; the stored ``cam`` and
``hr_cam`` are these maps, so the background-threshold sweep and every later stage read them like any other CAMs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss_lib.formats.cam_io import cam_path, save_cam
from wsss_lib.inference.tta import TTAConfig, scaled_outputs
from wsss_lib.io import for_each_missing
from wsss_lib.models.amn import AMNNetwork
from wsss_lib.train.precision import evaluating

__all__ = ["amn_tta_cams", "normalise_outside_background", "infer_amn_cams"]


def normalise_outside_background(probs: torch.Tensor, background: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-channel min-max normalisation of ``(K, h, w)`` maps where ``background`` (``(h, w)`` bool) is False."""
    low = probs.amin(dim=(1, 2), keepdim=True)
    high = probs.amax(dim=(1, 2), keepdim=True)
    normalised = (probs - low) / (high - low + eps)
    return torch.where(background[None], probs, normalised)


@torch.no_grad()
def amn_tta_cams(model: AMNNetwork, image: np.ndarray, labels: np.ndarray, ir_label: np.ndarray,
                 mean: Sequence[float], std: Sequence[float], cfg: TTAConfig = TTAConfig(),
                 device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
                 channels_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(cam, hr_cam)`` of the image's classes (``labels``: 0/1 vector of the ``C`` foreground classes)."""
    device = torch.device(device)
    height, width = image.shape[:2]
    if ir_label.shape != (height, width):
        raise ValueError(f"IR label size {ir_label.shape} does not match the image size {(height, width)}")
    small = (math.ceil(height / 4), math.ceil(width / 4))
    keys = np.flatnonzero(labels) + 1
    label_vec = torch.as_tensor(np.asarray(labels, np.float32), device=device)[None]
    conditioned = lambda x: model(x, label_vec.expand(x.shape[0], -1))  # noqa: E731 (one call site)
    low = torch.zeros((model.num_classes + 1, *small), device=device)
    high = torch.zeros((model.num_classes + 1, height, width), device=device)
    views = 0
    for logits in scaled_outputs(conditioned, image, mean, std, cfg.scales, cfg.flip, device, autocast_dtype,
                                 channels_last):
        logits = logits.float()
        logits = logits[0] + logits[1].flip(-1) if cfg.flip else logits[0]
        low += F.interpolate(logits[None], size=small, mode="bilinear", align_corners=False)[0]
        high += F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        views += 2 if cfg.flip else 1
    index = torch.as_tensor(keys, device=device)
    low = torch.softmax(low / views, dim=0)[index]
    high = torch.softmax(high / views, dim=0)[index]
    background_small = np.asarray(Image.fromarray(ir_label).resize(small[::-1], Image.NEAREST)) == 0
    cam = normalise_outside_background(low, torch.as_tensor(background_small, device=device))
    hr_cam = normalise_outside_background(high, torch.as_tensor(ir_label == 0, device=device))
    return cam.cpu().numpy(), hr_cam.cpu().numpy()


def infer_amn_cams(model: AMNNetwork, dataset, ir_labels_dir: str | Path, out_dir: str | Path, mean: Sequence[float],
                   std: Sequence[float], cfg: TTAConfig = TTAConfig(), device: torch.device | str = "cpu",
                   autocast_dtype: torch.dtype | None = None, channels_last: bool = False,
                   progress: bool = True) -> dict[str, int]:
    """One CAM file per image of ``dataset`` (resumable, atomic); ``ir_labels_dir`` holds ``<id>.png`` IR labels of
    the same images (an ``affinity_labels`` stage)."""
    from wsss_lib.formats.masks import load_affinity_labels

    def write(image_id: str, path: Path) -> None:
        labels = dataset.label_of(image_id)
        ir_label = load_affinity_labels(Path(ir_labels_dir) / f"{image_id}.png", dataset.num_classes)
        cam, hr_cam = amn_tta_cams(model, dataset.load_image(image_id), labels, ir_label, mean, std, cfg, device,
                                   autocast_dtype, channels_last)
        save_cam(path, np.flatnonzero(labels) + 1, cam, hr_cam)

    with evaluating(model):
        return for_each_missing(dataset.ids, lambda i: cam_path(out_dir, i), write, desc=f"AMN CAMs ({dataset.split})",
                                progress=progress)
