"""Saliency maps with test-time augmentation, and their file format (official-code-facts 1.12).

For each scale (bicubic resize) the image and its horizontal flip are forwarded; the one-channel output is

- ``activation="relu"`` (C²AM official): the head's logits ``z`` through ReLU, the flipped map flipped back and
  added; the **mean** over scales is divided by its maximum (+1e-5), giving a map in [0, 1];
- ``activation="sigmoid"``: ``sigmoid(z)`` averaged over scales and flips, no normalisation (the saliency
  detector's probabilities; also C²AM's optional mode).

A C²AM model whose first partition came out as the background (border heuristic, see
``wsss_lib.methods.c2am.border_is_background``) is inverted *before* the activation: ``inversion="one_minus"``
maps ``z -> 1 - z`` as the official CCAM inference (``cams = 1 - cams`` on the logits), ``"negate"`` maps
``z -> -z`` (the exact complement in the sigmoid domain).

Files: one 8-bit grayscale PNG per image, ``round(255 * S)``, at the image's size (the official ``x255``
format, readable by any saliency tool); written atomically, existing files are kept (resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wsss_lib.formats.saliency_io import saliency_path, save_saliency
from wsss_lib.inference.tta import scaled_outputs
from wsss_lib.io import for_each_missing
from wsss_lib.train.precision import evaluating

__all__ = ["SaliencyTTAConfig", "tta_saliency", "infer_saliency"]


@dataclass(frozen=True)
class SaliencyTTAConfig:
    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    flip: bool = True
    activation: Literal["relu", "sigmoid"] = "relu"
    invert: bool = False
    """Use the other partition (plain C²AM whose first partition is the background)."""
    inversion: Literal["one_minus", "negate"] = "one_minus"


def _logits(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


@torch.no_grad()
def tta_saliency(model: torch.nn.Module, image: np.ndarray, mean: Sequence[float], std: Sequence[float],
                 cfg: SaliencyTTAConfig = SaliencyTTAConfig(), device: torch.device | str = "cpu",
                 autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> np.ndarray:
    """``(H, W)`` float32 saliency in [0, 1] of one ``uint8`` RGB image (see the module docstring)."""
    if cfg.activation not in ("relu", "sigmoid"):
        raise ValueError(f"activation must be 'relu' or 'sigmoid', got {cfg.activation!r}")
    if cfg.inversion not in ("one_minus", "negate"):
        raise ValueError(f"inversion must be 'one_minus' or 'negate', got {cfg.inversion!r}")
    device = torch.device(device)
    height, width = image.shape[:2]
    total = torch.zeros((height, width), device=device)
    for output in scaled_outputs(model, image, mean, std, cfg.scales, cfg.flip, device, autocast_dtype, channels_last):
        z = _logits(output).float()[:, 0]
        if cfg.invert:
            z = 1.0 - z if cfg.inversion == "one_minus" else -z
        z = F.relu(z) if cfg.activation == "relu" else torch.sigmoid(z)
        z = z[0] + z[1].flip(-1) if cfg.flip else z[0]
        total += F.interpolate(z[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    total /= len(cfg.scales) * (2 if cfg.flip else 1)
    if cfg.activation == "relu":
        total /= total.max() + 1e-5
    return total.clamp(0.0, 1.0).cpu().numpy()


def infer_saliency(model: torch.nn.Module, dataset, out_dir: str | Path, mean: Sequence[float], std: Sequence[float],
                   cfg: SaliencyTTAConfig = SaliencyTTAConfig(), device: torch.device | str = "cpu",
                   autocast_dtype: torch.dtype | None = None, channels_last: bool = False,
                   progress: bool = True) -> dict[str, int]:
    """One saliency PNG per image of ``dataset`` in ``out_dir`` (resumable); returns ``{"computed", "skipped"}``."""
    def write(image_id: str, path: Path) -> None:
        save_saliency(path, tta_saliency(model, dataset.load_image(image_id), mean, std, cfg, device, autocast_dtype,
                                         channels_last))

    with evaluating(model):
        return for_each_missing(dataset.ids, lambda i: saliency_path(out_dir, i), write,
                                desc=f"saliency ({dataset.split})", progress=progress)
