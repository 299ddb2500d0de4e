"""Your own data: a folder of images with image-level labels, as one more dataset family (``dataset: folder``).

Layout (``data_root`` = the folder; ``data_cards/TEMPLATE_own_data.md`` documents one)::

    class_names.txt      one class per line, "background" first (added when absent)
    labels.csv           image,labels     one row per image: its id (file name without extension) and its
                                          classes, separated by spaces or ";" (an empty field: background only)
    images/<id>.jpg|.png the images
    masks/<id>.png       optional: class-index PNGs (0..C-1, 255 void), each of its image's size, for evaluation
    splits/<split>.txt   optional: the ids of each split; without it, ``train`` (and ``train_aug``) = every row of
                         labels.csv. ``train_aug`` (what classifiers train on) defaults to ``train``.

The image-level labels, the only supervision of WSSS, come from ``labels.csv``; the masks only evaluate. Where both
exist they are compared (``label_check``: a class in a mask but not in the image's labels, or the reverse, warns by
default, fails with ``"error"``). Errors name the file, the line and what was expected: an unknown class, an image
listed twice or missing, a mask with out-of-range values (``read_index_png``) or of the wrong size (``load_pair``).
Without ``masks/``, every mask reads as void (255): training and CAM inference run, evaluation has nothing to count,
and the runner's pre-flight check refuses notebooks 00-06, which all evaluate.
"""

from __future__ import annotations

import csv
import hashlib
import re
import warnings
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from wsss_lib.data.base import SegmentationDataset
from wsss_lib.formats.errors import DatasetError
from wsss_lib.formats.masks import IGNORE_INDEX

__all__ = ["FolderDataset", "read_folder_labels", "folder_split_ids", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_folder_class_names(root: Path) -> tuple[str, ...]:
    path = root / "class_names.txt"
    if not path.is_file():
        raise DatasetError(f"{path} is missing; expected one class name per line (background first)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if names and names[0] != "background":
        names = ["background", *names]
    if len(names) < 2:
        raise DatasetError(f"{path}: no foreground class; expected one class name per line")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: duplicated class names {sorted({n for n in names if names.count(n) > 1})}")
    return tuple(names)


def read_folder_labels(root: Path, class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{id: (C-1,) float32 multi-hot}`` from ``labels.csv``; errors name the line."""
    path = root / "labels.csv"
    if not path.is_file():
        raise DatasetError(f"{path} is missing; expected a CSV with columns image,labels")
    index = {name: i for i, name in enumerate(class_names[1:])}
    out: dict[str, np.ndarray] = {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0][:2]] != ["image", "labels"]:
        raise DatasetError(f"{path}: the first line must be the header 'image,labels', got {rows[:1]}")
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise DatasetError(f"{path}, line {number}: expected 2 fields (image,labels), got {len(row)}: {row}")
        image_id, names = row[0].strip(), [n for n in re.split(r"[;\s]+", row[1].strip()) if n]
        if image_id in out:
            raise DatasetError(f"{path}, line {number}: image {image_id!r} is listed twice")
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DatasetError(f"{path}, line {number}: unknown class(es) {unknown} for image {image_id!r}; "
                               f"classes (class_names.txt): {list(class_names[1:])}")
        label = np.zeros(len(index), np.float32)
        label[[index[n] for n in names]] = 1.0
        out[image_id] = label
    if not out:
        raise DatasetError(f"{path}: no labelled image")
    return out


def folder_split_ids(root: Path, split: str, labelled: dict[str, np.ndarray]) -> list[str]:
    """The ids of ``split``: ``splits/<split>.txt``, else every labelled image for ``train`` and ``train_aug``."""
    path = root / "splits" / f"{split}.txt"
    if path.is_file():
        ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        missing = [i for i in ids if i not in labelled]
        if missing:
            raise DatasetError(f"{path}: {len(missing)} id(s) have no row in {root / 'labels.csv'}, e.g. {missing[:3]}")
        return ids
    if split == "train_aug":
        return folder_split_ids(root, "train", labelled)
    if split == "train":
        return list(labelled)
    available = sorted(p.stem for p in (root / "splits").glob("*.txt")) if (root / "splits").is_dir() else []
    raise DatasetError(f"split file {path} is missing; available splits: {available or ['train (every labelled image)']}")


class FolderDataset(SegmentationDataset):
    """One split of a folder of images with image-level labels (see the module docstring)."""

    name = "folder"

    def __init__(self, data_root: str | Path, split: str = "train", *, transform: Callable | None = None,
                 cache_dir: Path | None = None, progress: bool = True,
                 label_check: Literal["error", "warn", "off"] = "warn"):
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"dataset root {root} does not exist; expected a folder with class_names.txt, "
                               "labels.csv and images/")
        names = read_folder_class_names(root)
        self._image_labels = read_folder_labels(root, names)
        self.mask_dir = root / "masks"
        self.has_masks = self.mask_dir.is_dir()
        self.label_check = label_check
        super().__init__(root, split, names, folder_split_ids(root, split, self._image_labels), transform=transform,
                         cache_dir=cache_dir, progress=progress)

    def cache_key(self) -> str:
        """The base key, plus ``labels.csv``'s bytes and the label check: an edited label file is read afresh."""
        digest = hashlib.sha256((self.root / "labels.csv").read_bytes() + self.label_check.encode()).hexdigest()
        return hashlib.sha256((super().cache_key() + digest).encode()).hexdigest()[:16]

    def image_path(self, image_id: str) -> Path:
        for suffix in IMAGE_SUFFIXES:
            path = self.root / "images" / f"{image_id}{suffix}"
            if path.is_file():
                return path
        return self.root / "images" / f"{image_id}.jpg"  # read_image names it as missing

    def mask_path(self, image_id: str) -> Path:
        return self.mask_dir / f"{image_id}.png"

    def load_mask(self, image_id: str) -> np.ndarray:
        if self.has_masks:
            return super().load_mask(image_id)
        height, width = self.load_image(image_id).shape[:2]
        return np.full((height, width), IGNORE_INDEX, np.uint8)

    def compute_labels(self) -> np.ndarray:
        labels = np.stack([self._image_labels[i] for i in self.ids])
        if self.has_masks and self.label_check != "off":
            from_masks = super().compute_labels()
            differ = [i for i, a, b in zip(self.ids, labels, from_masks) if not np.array_equal(a, b)]
            if differ:
                message = (f"{self.root}: {len(differ)} image(s) of split {self.split!r} have labels.csv classes "
                           f"that differ from their masks' (labels.csv is the supervision), e.g. {differ[:5]}")
                if self.label_check == "error":
                    raise DatasetError(message)
                warnings.warn(message, stacklevel=3)
        return labels
