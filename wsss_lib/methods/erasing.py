"""Class-specific erasing masks shared by OC-CSE, P-OC and P-NOC (official-code-facts 1.4, 1.5).

- ``sample_classes``: one present class ``r`` per image, uniformly (official ``split_label``, strategy random).
- ``soft_erasure_mask`` (OC-CSE, eq. 4): ``M = ReLU(A_r)`` upsampled bilinearly to the image, divided by its
  maximum over the **whole batch** (official default, ``per_image=False``) or per image; gradients flow
  through it into the generator. ``relu_before_upsample`` orders ReLU and interpolation (P-NOC: ReLU
  first; the original OC-CSE interpolates first).
- ``hard_keep_mask`` (P-NOC, eq. 10): the same map normalised **per image**, pixels with ``M <= delta`` kept
  (1) and the rest erased (0); computed from detached maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sample_classes", "remove_classes", "class_maps", "soft_erasure_mask", "hard_keep_mask"]


def sample_classes(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B,)`` indices (0-based) of one present class per image, uniformly among its positives."""
    present = (labels > 0.5).float()
    empty = present.sum(dim=1) == 0
    if empty.any():
        raise ValueError(f"class-specific erasing needs at least one class per image; images "
                         f"{torch.nonzero(empty).flatten().tolist()} of the batch have none")
    return torch.multinomial(present, 1, generator=generator).squeeze(1)


def remove_classes(labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``y \\ {r}``: the labels with each image's sampled class set to 0."""
    return (labels - F.one_hot(classes, labels.shape[1]).to(labels.dtype)).clamp(min=0)


def class_maps(cams: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``(B, 1, h, w)``: the map of each image's class ``r``."""
    return cams[torch.arange(cams.shape[0], device=cams.device), classes][:, None]


def _upsampled_relu(maps: torch.Tensor, size: tuple[int, int], relu_before_upsample: bool) -> torch.Tensor:
    if relu_before_upsample:
        return F.interpolate(F.relu(maps), size=size, mode="bilinear", align_corners=False)
    return F.relu(F.interpolate(maps, size=size, mode="bilinear", align_corners=False))


def soft_erasure_mask(maps: torch.Tensor, size: tuple[int, int], per_image: bool = False,
                      relu_before_upsample: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """``(B, 1, H, W)`` soft mask in [0, 1] to erase with ``x * (1 - M)``."""
    mask = _upsampled_relu(maps, size, relu_before_upsample)
    peak = mask.amax(dim=(1, 2, 3), keepdim=True) if per_image else mask.amax()
    return mask / (peak + eps)


def hard_keep_mask(maps: torch.Tensor, size: tuple[int, int], delta: float = 0.2,
                   relu_before_upsample: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """``(B, 1, H, W)`` binary mask ``1[psi(A_r) <= delta]`` (per-image normalisation), no gradient."""
    with torch.no_grad():
        mask = _upsampled_relu(maps.detach(), size, relu_before_upsample)
        mask = mask / (mask.amax(dim=(1, 2, 3), keepdim=True) + eps)
        return (mask <= delta).to(maps.dtype)
