"""CAM inference with test-time augmentation (paper section 6.1 "Inference"; official-code-facts 1.9).

For each scale ``s`` in ``scales`` the image is resized (bicubic) by ``s`` and forwarded together with its
horizontal flip; the class maps of the image's ground-truth classes are passed through ReLU, the flipped
map is flipped back and added. Each scale's map is resized bilinearly to

- the stride-4 grid ``(ceil(H/4), ceil(W/4))`` -> summed into ``cam``;
- the stride-16-padded size ``(ceil(H/16)*16, ceil(W/16)*16)``, cropped to ``H x W`` -> summed into ``hr_cam``;

and each class map is finally divided by its spatial maximum (+1e-5). Summing and averaging the 8 maps
give the same result after this normalisation. One ``.npz`` per image (``wsss_lib.formats.cam_io``);
existing files are skipped (resume) and every file is written atomically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss_lib.formats.cam_io import cam_path, save_cam
from wsss_lib.io import for_each_missing
from wsss_lib.timing import section
from wsss_lib.train.precision import evaluating

__all__ = ["TTAConfig", "scaled_outputs", "tta_cams", "strided_maps", "infer_cams"]


@dataclass(frozen=True)
class TTAConfig:
    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    flip: bool = True


def _normalise(image: np.ndarray, mean: Sequence[float], std: Sequence[float], device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.array(image, dtype=np.float32, copy=True)).to(device).permute(2, 0, 1)[None] / 255.0
    return (x - torch.tensor(mean, device=device).view(1, 3, 1, 1)) / torch.tensor(std, device=device).view(1, 3, 1, 1)


def scaled_outputs(model: torch.nn.Module, image: np.ndarray, mean: Sequence[float], std: Sequence[float],
                   scales: Sequence[float], flip: bool, device: torch.device, autocast_dtype: torch.dtype | None = None,
                   channels_last: bool = False) -> Iterator[Any]:
    """The model's output for each scale of a ``uint8`` RGB image (bicubic resize, normalised; with ``flip`` a
    batch of two: the image and its horizontal flip), computed under autocast when ``autocast_dtype`` is set.
    The one multi-scale forward of every TTA (CAMs, saliency, affinity)."""
    pil = Image.fromarray(image)
    height, width = image.shape[:2]
    for scale in scales:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        x = _normalise(np.asarray(pil.resize(size, Image.BICUBIC)), mean, std, device)
        if flip:
            x = torch.cat([x, x.flip(-1)])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with section("forward"), torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            output = model(x)
        yield output


@torch.no_grad()
def tta_cams(model: torch.nn.Module, image: np.ndarray, keys: np.ndarray, mean: Sequence[float],
             std: Sequence[float], cfg: TTAConfig = TTAConfig(), device: torch.device | str = "cpu",
             autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(cam, hr_cam)`` of one ``uint8`` RGB image for the 1-based class ids ``keys`` (see module docstring)."""
    device = torch.device(device)
    keys = np.asarray(keys, dtype=np.int64)
    if len(keys) == 0:
        return strided_maps([], image.shape[0], image.shape[1], 0, device)
    index = torch.as_tensor(keys - 1, device=device)

    def per_scale() -> Iterator[torch.Tensor]:
        for output in scaled_outputs(model, image, mean, std, cfg.scales, cfg.flip, device, autocast_dtype,
                                     channels_last):
            maps = F.relu(output.cams.float()[:, index])
            yield maps[0] + maps[1].flip(-1) if cfg.flip else maps[0]

    return strided_maps(per_scale(), image.shape[0], image.shape[1], len(keys), device)


def strided_maps(maps: Iterable[torch.Tensor], height: int, width: int, channels: int,
                 device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """``(cam, hr_cam)`` from per-scale ``(K, h_s, w_s)`` maps: each resized bilinearly to the stride-4 grid and to the
    stride-16-padded size (cropped to ``height × width``), summed, and divided by the maximum (+1e-5) per class."""
    small = (math.ceil(height / 4), math.ceil(width / 4))
    padded = (math.ceil(height / 16) * 16, math.ceil(width / 16) * 16)
    cam = torch.zeros((channels, *small), device=device)
    hr_cam = torch.zeros((channels, height, width), device=device)
    for scale_maps in maps:
        cam += F.interpolate(scale_maps[None], size=small, mode="bilinear", align_corners=False)[0]
        hr_cam += F.interpolate(scale_maps[None], size=padded, mode="bilinear", align_corners=False)[0, :, :height, :width]
    cam /= cam.amax(dim=(1, 2), keepdim=True) + 1e-5
    hr_cam /= hr_cam.amax(dim=(1, 2), keepdim=True) + 1e-5
    return cam.cpu().numpy(), hr_cam.cpu().numpy()


def infer_cams(model: torch.nn.Module, dataset, out_dir: str | Path, mean: Sequence[float], std: Sequence[float],
               cfg: TTAConfig = TTAConfig(), device: torch.device | str = "cpu",
               autocast_dtype: torch.dtype | None = None, channels_last: bool = False,
               progress: bool = True) -> dict[str, int]:
    """Write one CAM file per image of ``dataset`` into ``out_dir``; existing files are kept (resume).

    Images without any foreground label get a file with ``K = 0`` maps, so every id has a file and no
    image is silently missing downstream. Returns ``{"computed", "skipped"}`` counts.
    """
    def write(image_id: str, path: Path) -> None:
        keys = np.flatnonzero(dataset.label_of(image_id)) + 1
        cam, hr_cam = tta_cams(model, dataset.load_image(image_id), keys, mean, std, cfg, device, autocast_dtype,
                               channels_last)
        save_cam(path, keys, cam, hr_cam)

    with evaluating(model):
        return for_each_missing(dataset.ids, lambda i: cam_path(out_dir, i), write, desc=f"CAMs ({dataset.split})",
                                progress=progress)
