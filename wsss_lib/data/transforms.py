"""Training and evaluation transforms (torchvision v2, joint on image and ``tv_tensors.Mask``).

The training recipe of the paper's lineage (official-code-facts 1.8)::

    random resize            long side ~ U[320, 640] (official code)  |  factor ~ U[0.5, 2.0] (paper text)
                             | fixed square resize (C²AM: 515 x 515 -> crop 448)
    horizontal flip          p = 0.5 (joint)
    colour jitter            (0.3, 0.3, 0.3, 0.1) on the image only (Puzzle, P-OC, P-NOC)
    RandAugment              n = 2, m = 10 on the image only (vanilla classifiers used as ordinary classifier)
    to float + normalise     mean/std of the backbone's pretrained config
    random crop              crop x crop, padding images with 0 *after* normalisation (the pixel mean,
                             as the official code) and masks with 255 (void)

``resize_mode`` selects between the official code's long-side resize, the paper's scale factor and the
C²AM recipe's fixed resize. ``TrainTransform`` also carries an optional float map (C²AM-H's hint: the priors'
CAM) through the geometric steps with the image (bicubic, flipped and cropped identically, padded with 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from wsss_lib.formats.masks import IGNORE_INDEX

__all__ = ["AugmentConfig", "RandomLongSideResize", "RandomRescale", "TrainTransform", "EvalTransform",
           "build_train_transform", "build_eval_transform"]


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (defaults: the official P-NOC recipe for VOC)."""

    crop_size: int = 512
    """Square crop side; smaller images are padded (image: 0 after normalisation, mask: 255)."""
    resize_mode: Literal["long_side", "scale", "fixed", "none"] = "long_side"
    """``long_side``: official code (long side ~ U[resize_long_side]); ``scale``: paper text (factor ~ U[resize_scale]);
    ``fixed``: resize to ``resize_fixed`` x ``resize_fixed`` (C²AM / C²AM-H: 515 then crop 448)."""
    resize_long_side: tuple[int, int] = (320, 640)
    resize_scale: tuple[float, float] = (0.5, 2.0)
    resize_fixed: int = 515
    hflip: bool = True
    color_jitter: tuple[float, float, float, float] | None = (0.3, 0.3, 0.3, 0.1)
    """(brightness, contrast, saturation, hue) on the image only, or ``None``."""
    randaugment: bool = False
    """RandAugment on the image only (the vanilla classifier that becomes the ordinary classifier)."""
    randaugment_num_ops: int = 2
    randaugment_magnitude: int = 10


class RandomLongSideResize(v2.Transform):
    """Resize so the longer side is an integer drawn uniformly from ``[low, high]`` (bicubic for images)."""

    def __init__(self, low: int, high: int):
        super().__init__()
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got ({low}, {high})")
        self.low, self.high = int(low), int(high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"long_side": int(torch.randint(self.low, self.high + 1, ()).item())}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=None, max_size=params["long_side"],
                                 interpolation=v2.InterpolationMode.BICUBIC, antialias=True)


class RandomRescale(v2.Transform):
    """Rescale both sides by a factor drawn uniformly from ``[low, high]``."""

    def __init__(self, low: float, high: float):
        super().__init__()
        if not 0 < low <= high:
            raise ValueError(f"need 0 < low <= high, got ({low}, {high})")
        self.low, self.high = float(low), float(high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        factor = self.low + (self.high - self.low) * float(torch.rand(()).item())
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=params["size"],
                                 interpolation=v2.InterpolationMode.BICUBIC, antialias=True)


def _to_tv(image: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None):
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)
    image = tv_tensors.Image(image)
    if mask is not None:
        if isinstance(mask, np.ndarray):
            mask = torch.from_numpy(np.array(mask, copy=True))
        mask = tv_tensors.Mask(mask)
    return image, mask


class TrainTransform:
    """``(uint8 HxWx3 image, uint8 HxW mask) -> (float CxHxW normalised image, int64 HxW mask)``.

    With ``hint`` (a float ``H x W`` map) it returns a third item, the ``(1, crop, crop)`` float hint that went
    through the same resize, flip and crop as the image (bicubic, padded with 0, no photometric change).
    """

    def __init__(self, cfg: AugmentConfig, mean: Sequence[float], std: Sequence[float]):
        self.cfg = cfg
        geometric: list[v2.Transform] = []
        if cfg.resize_mode == "long_side":
            geometric.append(RandomLongSideResize(*cfg.resize_long_side))
        elif cfg.resize_mode == "scale":
            geometric.append(RandomRescale(*cfg.resize_scale))
        elif cfg.resize_mode == "fixed":
            geometric.append(v2.Resize((cfg.resize_fixed, cfg.resize_fixed), interpolation=v2.InterpolationMode.BICUBIC,
                                       antialias=True))
        elif cfg.resize_mode != "none":
            raise ValueError(f"resize_mode must be 'long_side', 'scale', 'fixed' or 'none', got {cfg.resize_mode!r}")
        if cfg.hflip:
            geometric.append(v2.RandomHorizontalFlip())
        self.geometric = v2.Compose(geometric) if geometric else v2.Identity()
        photometric: list[v2.Transform] = []
        if cfg.color_jitter is not None:
            photometric.append(v2.ColorJitter(*cfg.color_jitter))
        if cfg.randaugment:
            photometric.append(v2.RandAugment(num_ops=cfg.randaugment_num_ops, magnitude=cfg.randaugment_magnitude))
        # images only: RandAugment rejects tv_tensors.Mask
        self.photometric = v2.Compose(photometric) if photometric else v2.Identity()
        self.normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
        self.crop = v2.RandomCrop(cfg.crop_size, pad_if_needed=True,
                                  fill={tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX})

    def __call__(self, image, mask, hint=None):
        image, mask = _to_tv(image, mask)
        if hint is None:
            image, mask = self.geometric(image, mask)
            image = self.normalize(self.photometric(image))
            image, mask = self.crop(image, mask)
            return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()
        hint = torch.as_tensor(np.asarray(hint, dtype=np.float32))
        if hint.shape != tuple(image.shape[-2:]):
            raise ValueError(f"hint shape {tuple(hint.shape)} does not match the image's {tuple(image.shape[-2:])}")
        hint = tv_tensors.Image(hint[None])
        image, mask, hint = self.geometric(image, mask, hint)
        image = self.normalize(self.photometric(image))
        image, mask, hint = self.crop(image, mask, hint)
        return (image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long(),
                hint.as_subclass(torch.Tensor).clamp(0.0, 1.0))


class EvalTransform:
    """Full image, no augmentation: normalised float image and int64 mask."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])

    def __call__(self, image, mask):
        image, mask = _to_tv(image, mask)
        image = self.normalize(image)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def build_train_transform(cfg: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> TrainTransform:
    return TrainTransform(cfg, mean, std)


def build_eval_transform(mean: Sequence[float], std: Sequence[float]) -> EvalTransform:
    return EvalTransform(mean, std)
