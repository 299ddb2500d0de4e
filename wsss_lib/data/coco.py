"""MS COCO 2014 for WSSS: 80 classes mapped to contiguous ids 1..80, semantic masks rendered once and cached.

Expected tree (``data_root``)::

    annotations/instances_train2014.json
    annotations/instances_val2014.json
    train2014/COCO_train2014_<12 digits>.jpg
    val2014/COCO_val2014_<12 digits>.jpg
    SegmentationClass/{train2014,val2014}/<image stem>.png    # written by this loader (the mask cache)

Splits ``train`` (82,783 images) and ``val`` (40,504). Image ids are the file stems. Masks are rendered
from the instance annotations with pycocotools: non-crowd instances painted in order of decreasing area
(so small objects stay visible on top of large ones), crowd regions not covered by an instance set to 255
(void). Each mask is rendered on first use and written atomically, so the cache is never half-written; a
missing cache file is rebuilt. ``mask_cache`` moves the cache elsewhere when the data folder is read-only.
Image-level labels are the categories of the image's non-crowd annotations (the classes that appear in
its rendered mask, except instances that are completely covered by others; ``check_labels`` compares).

Images without any non-crowd annotation have no image-level label. ``unlabeled="drop"`` (default) leaves them out of
the split: a weakly supervised method learns nothing from them, and the class-specific erasing of OC-CSE, P-OC and
P-NOC cannot sample a class in them (found by the paper-coco dry run). The WSSS literature's COCO 2014 split sizes
(82,081 train / 40,137 val images) are the full splits less such images. ``unlabeled="keep"`` keeps them with an
empty label set (the CAM stages then write empty records for them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

import numpy as np

from wsss_lib.data.base import SegmentationDataset
from wsss_lib.formats.errors import DatasetError
from wsss_lib.formats.masks import IGNORE_INDEX, read_index_png, to_palette_image
from wsss_lib.io import atomic_save_image

__all__ = ["COCOSegmentation", "COCO_SPLIT_SIZES", "render_semantic_mask"]

COCO_SPLIT_SIZES = {"train": 82783, "val": 40504}


def render_semantic_mask(coco, image_id: int, cat_to_label: dict[int, int]) -> np.ndarray:
    """The ``uint8`` semantic mask of one COCO image (see the module docstring for the painting rule)."""
    from pycocotools import mask as mask_utils  # noqa: F401  (annToMask needs pycocotools' C extension)

    info = coco.imgs[image_id]
    mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
    crowd = np.zeros_like(mask, dtype=bool)
    for ann in sorted((a for a in anns if not a.get("iscrowd", 0)), key=lambda a: -a["area"]):
        mask[coco.annToMask(ann).astype(bool)] = cat_to_label[ann["category_id"]]
    for ann in (a for a in anns if a.get("iscrowd", 0)):
        crowd |= coco.annToMask(ann).astype(bool)
    mask[crowd & (mask == 0)] = IGNORE_INDEX
    return mask


class COCOSegmentation(SegmentationDataset):
    """One split of MS COCO 2014 as a semantic segmentation dataset (81 classes with background)."""

    name = "coco"

    def __init__(self, data_root: str | Path, split: str = "train", *, mask_cache: str | Path | None = None,
                 transform: Callable | None = None, cache_dir: Path | None = None, progress: bool = True,
                 unlabeled: Literal["drop", "keep"] = "drop"):
        from pycocotools.coco import COCO

        if split not in COCO_SPLIT_SIZES:
            raise DatasetError(f"COCO split must be one of {sorted(COCO_SPLIT_SIZES)}, got {split!r}")
        if not data_root:
            raise DatasetError("no dataset root given: pass data_root (or set WSSS_DATA) to the COCO 2014 folder")
        root = Path(data_root).expanduser()
        ann_file = root / "annotations" / f"instances_{split}2014.json"
        if not ann_file.is_file():
            raise DatasetError(f"COCO annotation file {ann_file} is missing; expected the COCO 2014 layout")
        self.image_dir = root / f"{split}2014"
        if not self.image_dir.is_dir():
            raise DatasetError(f"COCO image folder {self.image_dir} is missing")
        self.coco = COCO(str(ann_file))
        cat_ids = sorted(self.coco.cats)
        self.cat_to_label = {cat: i + 1 for i, cat in enumerate(cat_ids)}
        names = ("background", *(self.coco.cats[c]["name"] for c in cat_ids))
        self.mask_dir = Path(mask_cache) / f"{split}2014" if mask_cache else root / "SegmentationClass" / f"{split}2014"
        if unlabeled not in ("drop", "keep"):
            raise ValueError(f"unlabeled must be 'drop' or 'keep', got {unlabeled!r}")
        self._coco_id: dict[str, int] = {}
        for coco_id in sorted(self.coco.imgs):
            labelled = any(not a.get("iscrowd", 0) for a in self.coco.imgToAnns.get(coco_id, []))
            if labelled or unlabeled == "keep":
                self._coco_id[Path(self.coco.imgs[coco_id]["file_name"]).stem] = coco_id
        super().__init__(root, split, names, list(self._coco_id), transform=transform, cache_dir=cache_dir,
                         progress=progress)

    def image_path(self, image_id: str) -> Path:
        return self.image_dir / self.coco.imgs[self._coco_id[image_id]]["file_name"]

    def mask_path(self, image_id: str) -> Path:
        return self.mask_dir / f"{image_id}.png"

    def load_mask(self, image_id: str) -> np.ndarray:
        path = self.mask_path(image_id)
        if not path.is_file():
            mask = render_semantic_mask(self.coco, self._coco_id[image_id], self.cat_to_label)
            atomic_save_image(path, to_palette_image(mask))
            return mask
        return read_index_png(path, self.num_classes)

    def compute_labels(self) -> np.ndarray:
        labels = np.zeros((len(self.ids), self.num_classes - 1), dtype=np.float32)
        for row, image_id in enumerate(self.ids):
            for ann in self.coco.imgToAnns.get(self._coco_id[image_id], []):
                if not ann.get("iscrowd", 0):
                    labels[row, self.cat_to_label[ann["category_id"]] - 1] = 1.0
        return labels

    def check_labels(self) -> list[str]:
        """Images whose rendered mask lacks an annotated class (fully covered instances); one line each."""
        problems = []
        for row, image_id in enumerate(self.ids):
            present = np.bincount(self.load_mask(image_id).ravel(), minlength=256)[1:self.num_classes] > 0
            missing = np.flatnonzero((self.labels[row] > 0) & ~present)
            if missing.size:
                problems.append(f"{image_id}: annotated but not visible: {[self.class_names[i + 1] for i in missing]}")
        return problems
