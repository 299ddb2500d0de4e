"""The segmentation dataset every loader returns: ids, images, masks and image-level labels.

A dataset reads images and masks lazily from disk and validates them as it reads:

- ``load_image(id)``: ``uint8`` ``H x W x 3`` RGB; a missing or undecodable file raises ``DatasetError``.
- ``load_mask(id)``: ``uint8`` ``H x W`` class indices in ``0..C-1`` or 255 (void); any other value raises
  ``DatasetError`` naming the file and the stray values. The mask must match the image's size.
- ``labels``: ``(N, C-1)`` multi-hot image-level labels (background excluded), derived once per split.

As a ``torch.utils.data.Dataset`` it returns ``{"id", "image", "mask", "label"}`` after an optional joint
``transform(image, mask)`` (``wsss_lib.data.transforms``).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from wsss_lib.formats.errors import DatasetError
from wsss_lib.formats.masks import read_index_png
from wsss_lib.io import atomic_write_json, reading
from wsss_lib.io.progress import tqdm
from wsss_lib.timing import timed

__all__ = ["SegmentationDataset", "read_image"]


@timed("read")
def read_image(path: Path) -> np.ndarray:
    """An RGB image as ``uint8`` ``H x W x 3``; errors name the file."""
    if not path.is_file():
        raise DatasetError(f"image {path} is missing (listed in the split but not on disk)")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(f"image {path} cannot be decoded ({exc}); expected a readable JPEG/PNG") from exc


class SegmentationDataset(torch.utils.data.Dataset):
    """Base class: subclasses set ``ids`` and implement ``image_path`` / ``mask_path`` (or override loads)."""

    name: str = "dataset"

    def __init__(self, root: Path, split: str, class_names: Sequence[str], ids: Sequence[str],
                 transform: Callable | None = None, cache_dir: Path | None = None, progress: bool = True):
        if not ids:
            raise DatasetError(f"{root}: split {split!r} lists no images")
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = sorted({i for i in ids if i in seen or seen.add(i)})[:5]
            raise DatasetError(f"{root}: split {split!r} lists duplicated ids, e.g. {dup}")
        self.root = Path(root)
        self.split = split
        self.class_names = tuple(class_names)
        self.ids = list(ids)
        self._index = {image_id: i for i, image_id in enumerate(self.ids)}
        self.transform = transform
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.progress = progress
        self._labels: np.ndarray | None = None

    # ---- subclass hooks -------------------------------------------------------------------------
    def image_path(self, image_id: str) -> Path:
        raise NotImplementedError

    def mask_path(self, image_id: str) -> Path:
        raise NotImplementedError

    def compute_labels(self) -> np.ndarray:
        """``(N, C-1)`` labels from the masks (present classes, background and void excluded)."""
        def present(image_id: str) -> np.ndarray:
            counts = np.bincount(self.load_mask(image_id).ravel(), minlength=256)
            return counts[1:self.num_classes] > 0

        with ThreadPoolExecutor(max_workers=4) as pool:
            rows = list(tqdm(pool.map(present, self.ids), total=len(self.ids), disable=not self.progress,
                             desc=f"{self.name}/{self.split}: labels from masks"))
        return np.stack(rows).astype(np.float32)

    # ---- public API -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.class_names)

    @property
    def foreground_names(self) -> tuple[str, ...]:
        return self.class_names[1:]

    def load_image(self, image_id: str) -> np.ndarray:
        return read_image(self.image_path(image_id))

    def load_mask(self, image_id: str) -> np.ndarray:
        return read_index_png(self.mask_path(image_id), self.num_classes)

    def load_pair(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.load_image(image_id), self.load_mask(image_id)
        if image.shape[:2] != mask.shape:
            raise DatasetError(
                f"{self.mask_path(image_id)}: mask size {mask.shape} does not match image "
                f"{self.image_path(image_id)} size {image.shape[:2]}"
            )
        return image, mask

    def cache_key(self) -> str:
        payload = json.dumps([self.name, str(self.root.resolve()), self.split, self.class_names, self.ids])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def labels(self) -> np.ndarray:
        """``(N, C-1)`` float32 multi-hot labels, cached in memory and (if ``cache_dir``) on disk."""
        if self._labels is None:
            cache = self.cache_dir / f"labels-{self.name}-{self.split}-{self.cache_key()}.json" if self.cache_dir else None
            if cache is not None and cache.is_file():
                with reading(cache, "the image-level label cache (JSON)", f"delete it to recompute ({cache})"):
                    self._labels = np.asarray(json.loads(cache.read_text())["labels"], dtype=np.float32)
            else:
                self._labels = self.compute_labels()
                if cache is not None:
                    atomic_write_json(cache, {"ids": self.ids, "labels": self._labels.astype(int).tolist()})
        return self._labels

    def label_of(self, image_id: str) -> np.ndarray:
        if image_id not in self._index:
            raise KeyError(f"{image_id!r} is not in {self.name}/{self.split}")
        return self.labels[self._index[image_id]]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image_id = self.ids[index]
        image, mask = self.load_pair(image_id)
        label = torch.from_numpy(self.labels[index])
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return {"id": image_id, "image": image, "mask": mask, "label": label}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, images={len(self)}, classes={self.num_classes})"
