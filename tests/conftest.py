"""Shared fixtures: tiny datasets written into temporary folders (no downloads, no real data)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss_lib.formats.masks import to_palette_image

os.environ.setdefault("TQDM_DISABLE", "1")


def write_voc_tree(root: Path, masks: dict[str, np.ndarray], splits: dict[str, list[str]],
                   class_names: list[str] | None = None, xml_objects: dict[str, list[str]] | None = None,
                   aug_only: tuple[str, ...] = ()) -> Path:
    """A VOCdevkit/VOC2012 tree with the given masks (images are random noise of the same size)."""
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "Annotations", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id, mask in masks.items():
        Image.fromarray(rng.integers(0, 255, (*mask.shape, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        to_palette_image(mask).save(voc / "SegmentationClassAug" / f"{image_id}.png")
        if image_id not in aug_only:
            to_palette_image(mask).save(voc / "SegmentationClass" / f"{image_id}.png")
    for split, ids in splits.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    if class_names is not None:
        (voc / "class_names.txt").write_text("\n".join(class_names) + "\n")
    for image_id, names in (xml_objects or {}).items():
        objects = "".join(f"<object><name>{n}</name></object>" for n in names)
        (voc / "Annotations" / f"{image_id}.xml").write_text(f"<annotation><filename>{image_id}.jpg</filename>{objects}</annotation>")
    return root / "VOCdevkit"


@pytest.fixture
def tiny_voc(tmp_path: Path) -> Path:
    """Three images, classes background/cat/dog/car, 255 borders; train = a, b; val = c; train_aug = a, b, d."""
    names = ["background", "cat", "dog", "car"]
    a = np.zeros((8, 10), np.uint8); a[2:5, 2:5] = 1; a[1, 1:6] = 255
    b = np.zeros((8, 10), np.uint8); b[:, :5] = 2; b[0:2, 6:9] = 3
    c = np.full((6, 6), 3, np.uint8)
    d = np.zeros((8, 10), np.uint8); d[4:, 4:] = 2
    xml = {"a": ["cat"], "b": ["dog", "car", "dog"], "c": ["car"], "d": ["dog"]}
    return write_voc_tree(tmp_path, {"a": a, "b": b, "c": c, "d": d},
                          {"train": ["a", "b"], "val": ["c"], "train_aug": ["a", "b", "d"]},
                          class_names=names, xml_objects=xml, aug_only=("d",))


def write_tiny_coco(root: Path) -> Path:
    """A COCO-2014-layout folder with 3 images: polygons, a crowd RLE, and an image without annotations."""
    (root / "annotations").mkdir(parents=True)
    (root / "train2014").mkdir()
    images = [
        {"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "height": 20, "width": 30},
        {"id": 3, "file_name": "COCO_train2014_000000000003.jpg", "height": 16, "width": 16},
        {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": 10, "width": 10},
    ]
    for im in images:
        Image.fromarray(np.full((im["height"], im["width"], 3), 128, np.uint8)).save(root / "train2014" / im["file_name"])
    anns = [
        # big square of category 18 (dog) under a small square of category 1 (person) in image 7
        {"id": 1, "image_id": 7, "category_id": 18, "iscrowd": 0, "area": 200.0, "bbox": [0, 0, 20, 10],
         "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]]},
        {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 16.0, "bbox": [2, 2, 4, 4],
         "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
        # a crowd region of category 1 in image 3 (uncompressed RLE, column-major): first 32 pixels
        {"id": 3, "image_id": 3, "category_id": 1, "iscrowd": 1, "area": 32.0, "bbox": [0, 0, 2, 16],
         "segmentation": {"counts": [0, 32, 224], "size": [16, 16]}},
        {"id": 4, "image_id": 3, "category_id": 3, "iscrowd": 0, "area": 36.0, "bbox": [8, 8, 6, 6],
         "segmentation": [[8, 8, 14, 8, 14, 14, 8, 14]]},
    ]
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A 64-px synthetic benchmark (train 8, train_aug 16, val 4), generated once per test session (read-only)."""
    from wsss_lib.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("tiny_synthetic") / "data"
    generate(SyntheticConfig(image_size=64, n_train=8, n_train_aug_extra=8, n_val=4), root, workers=1, progress=False)
    return root


TINY_LITE0 = {"name": "tf_efficientnet_lite0", "weights": "offline-lite0"}
TINY_PARAMS = {
    "classifier": {"backbone": TINY_LITE0, "augment": {"crop_size": 64, "resize_long_side": [48, 64]},
                   "train": {"epochs": 1, "batch_size": 4, "eval": {"size": 64}}, "optim": {"accumulate_steps": 1}},
    "ordinary": {},
    "tta": {"scales": [1.0]},
    "c2am": {"backbone": TINY_LITE0, "augment": {"crop_size": 64, "resize_fixed": 72}, "train": {"epochs": 1, "batch_size": 4},
             "train_split": "train"},
    "detector": {"backbone": TINY_LITE0, "detector": {"width": 16}, "augment": {"crop_size": 64},
                 "train": {"epochs": 1, "batch_size": 4}, "optim": {"accumulate_steps": 1}, "train_split": "train"},
    "pseudo_saliency": {},
}
"""CPU-second stage dicts of the priors and saliency notebooks on :func:`tiny_synthetic` (for stage tests)."""


def tiny_configs(data_root: Path, num_workers: int = 0, **params):
    """The typed configs of :data:`TINY_PARAMS` (``params`` merged over them, field by field) on ``data_root``, as a
    notebook builds them (``wsss_lib.stages.parameters.notebook_configs``), on the CPU."""
    from wsss_lib.config import merge
    from wsss_lib.stages.parameters import notebook_configs

    given = {name: merge(TINY_PARAMS.get(name, {}), value) for name, value in params.items()}
    return notebook_configs("tests", dataset="synthetic", data_root=str(data_root),
                            runtime={"device": "cpu", "num_workers": num_workers}, **{**TINY_PARAMS, **given})
