"""Training sets of the later stages (saliency, affinity, segmentation), built on a split of any dataset:

- :class:`HintedDataset` (C²AM-H): each sample also carries ``hint``, the maximum over the image's classes of
  the priors' full-resolution normalised CAM (``hr_cam`` of a CAM stage), transformed with the image;
- :class:`PseudoSaliencyDataset` (the saliency detector), :class:`AffinityLabelsDataset` (the affinity
  network) and :class:`PseudoMaskDataset` (the segmentation network): the ``mask`` is the image's
  pseudo-saliency mask ({0, 1}), affinity label map or pseudo-mask instead of its segmentation ground truth,
  which is never read.

Both name the missing or mismatching file in their errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from wsss_lib.data.base import SegmentationDataset
from wsss_lib.formats.cam_io import cam_path, load_cam
from wsss_lib.formats.errors import DatasetError
from wsss_lib.formats.masks import load_affinity_labels, read_index_png
from wsss_lib.formats.saliency_io import load_pseudo_saliency

__all__ = ["hint_map", "HintedDataset", "MaskFolderDataset", "PseudoSaliencyDataset", "AffinityLabelsDataset",
           "PseudoMaskDataset"]


def hint_map(cams_dir: str | Path, image_id: str, shape: tuple[int, int]) -> np.ndarray:
    """``max_c hr_cam_c`` of one image (zeros when it has no class), checked against the image's ``shape``."""
    path = cam_path(cams_dir, image_id)
    record = load_cam(path)
    if record.hr_cam.shape[1:] != tuple(shape):
        raise DatasetError(f"{path}: CAM size {record.hr_cam.shape[1:]} does not match the image size {tuple(shape)}")
    return record.hr_cam.max(axis=0) if len(record.keys) else np.zeros(shape, np.float32)


class HintedDataset(torch.utils.data.Dataset):
    """``{"id", "image", "mask", "label", "hint"}`` samples; ``transform(image, mask, hint)`` returns all three."""

    def __init__(self, base: SegmentationDataset, cams_dir: str | Path, transform: Callable):
        self.base, self.cams_dir, self.transform = base, Path(cams_dir), transform
        missing = [i for i in base.ids if not cam_path(self.cams_dir, i).is_file()]
        if missing:
            raise DatasetError(f"{self.cams_dir}: no CAM file for {len(missing)} image(s) of {base.split!r}, "
                               f"e.g. {missing[:3]}; infer the hint source's CAMs on this split first")

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        image_id = self.base.ids[index]
        image, mask = self.base.load_pair(image_id)
        hint = hint_map(self.cams_dir, image_id, image.shape[:2])
        image, mask, hint = self.transform(image, mask, hint)
        return {"id": image_id, "image": image, "mask": mask, "label": torch.from_numpy(self.base.labels[index]),
                "hint": hint}


class MaskFolderDataset(torch.utils.data.Dataset):
    """``{"id", "image", "mask", "label"}`` with ``mask`` read from ``<masks_dir>/<id>.png`` by ``load_mask(path)``
    instead of the split's ground truth (which is never read); ``what`` names the masks in errors."""

    what = "mask"

    def __init__(self, base: SegmentationDataset, masks_dir: str | Path, transform: Callable):
        self.base, self.masks_dir, self.transform = base, Path(masks_dir), transform
        missing = [i for i in base.ids if not (self.masks_dir / f"{i}.png").is_file()]
        if missing:
            raise DatasetError(f"{self.masks_dir}: no {self.what} for {len(missing)} image(s) of {base.split!r}, "
                               f"e.g. {missing[:3]}; run the stage that writes them on this split first")

    def load_mask(self, path: Path) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        image_id = self.base.ids[index]
        image = self.base.load_image(image_id)
        path = self.masks_dir / f"{image_id}.png"
        mask = self.load_mask(path)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"{path}: {self.what} size {mask.shape} does not match the image size {image.shape[:2]}")
        image, mask = self.transform(image, mask)
        return {"id": image_id, "image": image, "mask": mask, "label": torch.from_numpy(self.base.labels[index])}


class PseudoSaliencyDataset(MaskFolderDataset):
    """The saliency detector's training set: ``mask`` = the image's pseudo-saliency mask ({0, 1})."""

    what = "pseudo-saliency mask"

    def load_mask(self, path: Path) -> np.ndarray:
        return load_pseudo_saliency(path)


class AffinityLabelsDataset(MaskFolderDataset):
    """The affinity network's training set: ``mask`` = the image's affinity labels (class ids, 255 = uncertain)."""

    what = "affinity label map"

    def load_mask(self, path: Path) -> np.ndarray:
        return load_affinity_labels(path, self.base.num_classes)


class PseudoMaskDataset(MaskFolderDataset):
    """The segmentation network's training set: ``mask`` = the image's pseudo-mask (class ids, 255 = void), read
    from a pseudo-mask stage's ``SegmentationClass/`` folder (pass that folder as ``masks_dir``)."""

    what = "pseudo-mask"

    def load_mask(self, path: Path) -> np.ndarray:
        return read_index_png(path, self.base.num_classes)
