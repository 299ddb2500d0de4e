"""Pre-flight checks of a dataset's layout: what a run will read, checked before any kernel starts.

:func:`check_dataset` returns the problems (empty when none), each naming the path and what was expected: the
dataset root, the ``VOC2012`` folder, every split list a run names, every image of those splits and, except for VOC's
``test`` split (no masks), every mask; for COCO the annotation file and image folder of each split (reading the
annotations themselves, hundreds of MB, is left to the loader). A generated synthetic benchmark has nothing to check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from wsss_lib.data.coco import COCO_SPLIT_SIZES
from wsss_lib.data.folder import folder_split_ids, read_folder_class_names, read_folder_labels
from wsss_lib.data.registry import DatasetConfig, dataset_family
from wsss_lib.data.voc import read_class_names, read_split, resolve_voc_root
from wsss_lib.formats.errors import DatasetError
from wsss_lib.paths import data_root_from_env

__all__ = ["check_dataset"]

MASKLESS_SPLITS = ("test",)
"""VOC splits without masks (the evaluation server's images)."""


def check_dataset(cfg: DatasetConfig, splits: Iterable[str]) -> list[str]:
    """The problems of the dataset ``cfg`` for reading ``splits`` (see the module docstring)."""
    if dataset_family(cfg.name) == "synthetic" and not cfg.data_root:
        return []
    root = data_root_from_env(cfg.data_root)
    if root is None:
        return [f"dataset {cfg.name!r} needs a data root: pass --data DIR (make reproduce DATA=DIR) or set WSSS_DATA"]
    splits = sorted(set(splits))
    if cfg.name == "folder":
        return _check_folder(root, splits)
    return _check_coco(root, splits) if cfg.name == "coco" else _check_voc(root, splits)


def _missing(paths: list[Path], what: str, split: str, folder: Path) -> list[str]:
    absent = [p for p in paths if not p.is_file()]
    if not absent:
        return []
    return [f"{len(absent)} of {len(paths)} {what} of split {split!r} are missing in {folder} "
            f"(expected e.g. {absent[0].name}; the split list names them)"]


def _check_voc(root: Path, splits: list[str]) -> list[str]:
    try:
        voc = resolve_voc_root(root)
        read_class_names(voc)
    except DatasetError as exc:
        return [str(exc)]
    problems = []
    for split in splits:
        try:
            ids = read_split(voc, split)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        if not ids:
            problems.append(f"{voc / 'ImageSets' / 'Segmentation' / f'{split}.txt'} lists no image")
            continue
        problems += _missing([voc / "JPEGImages" / f"{i}.jpg" for i in ids], "images", split, voc / "JPEGImages")
        if split in MASKLESS_SPLITS:
            continue
        masks = voc / ("SegmentationClassAug" if split == "train_aug" else "SegmentationClass")
        if not masks.is_dir():
            problems.append(f"mask folder {masks} is missing; split {split!r} reads its masks there")
        else:
            problems += _missing([masks / f"{i}.png" for i in ids], "masks", split, masks)
    return problems


def _check_coco(root: Path, splits: list[str]) -> list[str]:
    if not root.is_dir():
        return [f"dataset root {root} does not exist; expected the COCO 2014 folder (annotations/, train2014/, val2014/)"]
    problems = []
    for split in splits:
        if split not in COCO_SPLIT_SIZES:
            problems.append(f"COCO split must be one of {sorted(COCO_SPLIT_SIZES)}, got {split!r}")
            continue
        ann = root / "annotations" / f"instances_{split}2014.json"
        if not ann.is_file():
            problems.append(f"COCO annotation file {ann} is missing; expected the COCO 2014 layout")
        images = root / f"{split}2014"
        if not images.is_dir() or next(images.iterdir(), None) is None:
            problems.append(f"COCO image folder {images} is missing or empty; expected the {split}2014 JPEGs")
    return problems


def _check_folder(root: Path, splits: list[str]) -> list[str]:
    """Your own data (:mod:`wsss_lib.data.folder`): its class list, labels, split lists, images and masks (the
    notebooks evaluate against masks, so a run needs them)."""
    from wsss_lib.data.folder import IMAGE_SUFFIXES

    if not root.is_dir():
        return [f"dataset root {root} does not exist; expected a folder with class_names.txt, labels.csv, images/"]
    try:
        labels = read_folder_labels(root, read_folder_class_names(root))
    except DatasetError as exc:
        return [str(exc)]
    problems = []
    if not (root / "masks").is_dir():
        problems.append(f"mask folder {root / 'masks'} is missing; the notebooks evaluate the CAMs against "
                        "class-index masks (one PNG per image)")
    for split in splits:
        try:
            ids = folder_split_ids(root, split, labels)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        absent = [i for i in ids if not any((root / "images" / f"{i}{s}").is_file() for s in IMAGE_SUFFIXES)]
        if absent:
            problems.append(f"{len(absent)} of {len(ids)} images of split {split!r} are missing in {root / 'images'} "
                            f"(expected e.g. {absent[0]}.jpg or .png)")
        if (root / "masks").is_dir():
            problems += _missing([root / "masks" / f"{i}.png" for i in ids], "masks", split, root / "masks")
    return problems
