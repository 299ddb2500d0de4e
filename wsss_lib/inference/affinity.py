"""Random-walk refinement of CAM files with a trained affinity network (IRN / P-NOC ``scripts/rw/inference.py``).

Per image: the network runs on the image and its flip (edge head: ``B = sigmoid(mean(logit, flipped logit))``;
feature head: the mean of the two feature maps), at full resolution (the official code pads to 512 x 512 first;
the network is fully convolutional, so only the border context differs). The stride-4 CAMs of the image's
classes (the CAM files' ``cam``) are walked (``wsss_lib.ops.random_walk``; edge head: damped by
``1 - B`` first, as ``propagate_to_edge``), upsampled x4 (bilinear), cropped to the image and divided by their
global maximum. The result is written in the CAM file format (``keys``, ``cam`` = the walked stride-4 maps,
``hr_cam`` = the full-resolution ones, both divided by the same global maximum), so the threshold sweep and the
pseudo-mask stage read it like CAMs. As in the official code the background is not walked: it enters later as
a constant score (the pseudo-mask threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wsss_lib.formats.cam_io import cam_path, load_cam, save_cam
from wsss_lib.inference.tta import scaled_outputs
from wsss_lib.io import for_each_missing
from wsss_lib.models.affinity import AffinityNetwork, grid_shape
from wsss_lib.ops.random_walk import feature_affinity, propagate_to_edge, random_walk
from wsss_lib.timing import timed
from wsss_lib.train.precision import evaluating

__all__ = ["RandomWalkConfig", "affinity_output", "walk_record", "infer_random_walk"]


@dataclass(frozen=True)
class RandomWalkConfig:
    """Attributes:
        radius: neighbourhood of the walk on the stride-4 grid (official: 5).
        beta: power of the affinities, ``W = a^beta`` (official: 10; PSA: 8).
        exp_times: the walk takes ``2^exp_times`` steps (official: 8 squarings of T, 256 steps).
        flip: average the network's output with that of the flipped image (official).
    """

    radius: int = 5
    beta: float = 10.0
    exp_times: int = 8
    flip: bool = True

    def __post_init__(self) -> None:
        if self.radius < 1 or self.beta <= 0 or not 0 <= self.exp_times <= 12:
            raise ValueError(f"need radius >= 1, beta > 0 and 0 <= exp_times <= 12, got {self}")


@torch.no_grad()
@timed("forward")
def affinity_output(network: AffinityNetwork, image: np.ndarray, mean: Sequence[float], std: Sequence[float],
                    flip: bool = True, device: torch.device | str = "cpu",
                    autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> torch.Tensor:
    """The network's flip-averaged output on the stride-4 grid: ``(h, w)`` boundary probabilities (edge head)
    or ``(D, h, w)`` features (feature head), float32 on ``device``."""
    device = torch.device(device)
    out = next(scaled_outputs(network, image, mean, std, (1.0,), flip, device, autocast_dtype, channels_last)).float()
    out = (out[0] + out[1].flip(-1)) / 2 if flip else out[0]
    return torch.sigmoid(out[0]) if network.cfg.head == "edge" else out


def walk_record(cams: torch.Tensor, output: torch.Tensor, head: str, image_shape: tuple[int, int],
                cfg: RandomWalkConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(cam, hr_cam)`` of the walked stride-4 ``cams`` (K, h, w), normalised by their global maximum."""
    height, width = image_shape
    if head == "edge":
        walked = propagate_to_edge(cams, output, cfg.radius, cfg.beta, cfg.exp_times)
    else:
        walked = random_walk(cams, feature_affinity(output, cfg.radius) ** cfg.beta, cfg.radius, cfg.exp_times)
    up = F.interpolate(walked[None], scale_factor=4, mode="bilinear", align_corners=False)[0, :, :height, :width]
    peak = float(up.max()) if up.numel() else 0.0
    scale = 1.0 / peak if peak > 0 else 0.0
    return (walked * scale).cpu().numpy(), (up * scale).cpu().numpy()


def infer_random_walk(network: AffinityNetwork, dataset, cams_dir: str | Path, out_dir: str | Path,
                      mean: Sequence[float], std: Sequence[float], cfg: RandomWalkConfig = RandomWalkConfig(),
                      device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
                      channels_last: bool = False, progress: bool = True) -> dict[str, int]:
    """One walked CAM file per image of ``dataset`` in ``out_dir`` (resumable, atomic); returns the counts."""
    device = torch.device(device)

    def write(image_id: str, path: Path) -> None:
        source = cam_path(cams_dir, image_id)
        record = load_cam(source)
        image = dataset.load_image(image_id)
        grid = grid_shape(*image.shape[:2])
        if record.cam.shape[1:] != grid:
            raise ValueError(f"{source}: stride-4 CAM size {record.cam.shape[1:]} does not match the image's grid {grid}")
        if len(record.keys) == 0:
            save_cam(path, record.keys, record.cam, record.hr_cam)
            return
        output = affinity_output(network, image, mean, std, cfg.flip, device, autocast_dtype, channels_last)
        cam, hr_cam = walk_record(torch.from_numpy(record.cam).to(device), output, network.cfg.head,
                                  image.shape[:2], cfg)
        save_cam(path, record.keys, cam, hr_cam)

    with evaluating(network):
        return for_each_missing(dataset.ids, lambda i: cam_path(out_dir, i), write,
                                desc=f"random walk ({dataset.split})", progress=progress)
