"""One entry point for every dataset: ``open_dataset(DatasetConfig(...), split, work_dir=...)``.

- ``voc``: Pascal VOC 2012 + SBD read from ``data_root`` (or ``$WSSS_DATA``), the ``VOCdevkit`` folder.
- ``coco``: MS COCO 2014 read from ``data_root`` (or ``$WSSS_DATA``).
- ``folder``: your own images with image-level labels (``wsss_lib.data.folder``), read from ``data_root``.
- ``synthetic``: the project's benchmark in VOC layout; with an empty ``data_root`` it is generated (once,
  with the default ``SyntheticConfig``) under ``<work_dir>/data/synthetic-<config hash>/``.
- ``synthetic-<preset>``: the same generator with one of the named settings of :data:`SYNTHETIC_PRESETS`
  (``synthetic-tiny``: the smoke profile's wiring-check data). Its datasets are named ``synthetic`` (class
  groups, tables): the preset only changes the scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from wsss_lib.config import config_hash
from wsss_lib.data.base import SegmentationDataset
from wsss_lib.data.coco import COCOSegmentation
from wsss_lib.data.folder import FolderDataset
from wsss_lib.data.voc import VOC_PAPER_GROUPS, VOCSegmentation, resolve_voc_root
from wsss_lib.formats.errors import DatasetError
from wsss_lib.paths import data_root_from_env

__all__ = ["DatasetConfig", "SYNTHETIC_PRESETS", "dataset_family", "synthetic_config", "open_dataset", "dataset_root",
           "class_groups"]

_V2 = {"image_size": 160, "part_size_fraction": 0.25, "body_class_tint": 0.08, "emit_regions": True,
       "far_body_distance": 0.3}
SYNTHETIC_PRESETS: dict[str, dict] = {
    "synthetic": {},
    "synthetic-tiny": {"image_size": 128, "n_train": 32, "n_train_aug_extra": 16, "n_val": 16},
    "synthetic-v2": {**_V2, "context_prob": 0.3, "context_alone_prob": 0.05, "room_cooccurrence_prob": 0.2,
                     "person_cooccurrence_prob": 0.3, "extra_class_prob": 0.1},
    "synthetic-v2-stress": {**_V2, "context_prob": 0.9, "context_alone_prob": 0.1, "room_cooccurrence_prob": 0.6,
                            "person_cooccurrence_prob": 0.7, "extra_class_prob": 0.25},
}
"""Named settings of the synthetic generator, as overrides of ``SyntheticConfig``'s defaults.

- ``synthetic``: the defaults (generator v1: 200 train, 600 more in train_aug, 200 val, 256 px).
- ``synthetic-tiny``: 32 train, 16 more in train_aug, 16 val, 128 px: the smoke profile's data, the least that
  runs every code path of every notebook (some classes are absent from some splits, as in a VOC subset). Its
  numbers compare nothing.
- ``synthetic-v2``: benchmark v2, the study's data (``data_cards/synthetic_wsss.md``, "Benchmark v2"): 160 px
  images trained at their native scale, smaller parts (0.25 of the body's minor half-axis), weakly class-tinted
  bodies, the region annotation, and *clean* context and co-occurrence (the method ranking).
- ``synthetic-v2-stress``: the same with strong context and co-occurrence (the class-group analysis)."""


def dataset_family(name: str) -> str:
    """``voc``, ``coco``, ``folder`` or ``synthetic`` (every synthetic preset); a ``ValueError`` names the known
    datasets."""
    if name in ("voc", "coco", "folder"):
        return name
    if name in SYNTHETIC_PRESETS:
        return "synthetic"
    known = ["voc", "coco", "folder", *SYNTHETIC_PRESETS]
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(known)}")


def synthetic_config(name: str):
    """The ``SyntheticConfig`` of the synthetic preset ``name`` (see :data:`SYNTHETIC_PRESETS`)."""
    from wsss_lib.data.synthetic import SyntheticConfig

    if dataset_family(name) != "synthetic":
        raise ValueError(f"{name!r} is not a synthetic dataset")
    return SyntheticConfig(**SYNTHETIC_PRESETS[name])


@dataclass(frozen=True)
class DatasetConfig:
    """Which dataset a stage reads."""

    name: str = "synthetic"
    """``voc``, ``coco``, ``folder`` (your own data), ``synthetic`` or a synthetic preset (:data:`SYNTHETIC_PRESETS`)."""
    data_root: str = ""
    """Dataset folder; empty: ``$WSSS_DATA`` (voc, coco) or the generated benchmark (synthetic presets)."""
    label_check: Literal["error", "warn", "off"] = "warn"
    """VOC layout: what a mismatch between mask labels and XML annotations does (synthetic: always error)."""

    def __post_init__(self) -> None:
        dataset_family(self.name)


def dataset_root(cfg: DatasetConfig, work_dir: str | Path, progress: bool = True) -> Path:
    """The folder the loader reads, generating the synthetic benchmark if needed."""
    if dataset_family(cfg.name) == "synthetic" and not cfg.data_root:
        from wsss_lib.data.synthetic import ensure_synthetic

        synthetic = synthetic_config(cfg.name)
        out_dir = Path(work_dir) / "data" / f"synthetic-{config_hash(synthetic)}"
        ensure_synthetic(synthetic, out_dir, progress=progress)
        return out_dir
    root = data_root_from_env(cfg.data_root)
    if root is None:
        raise DatasetError(f"dataset {cfg.name!r} needs a data root: set the notebook parameter data_root "
                           "(make reproduce DATA=...) or the WSSS_DATA environment variable")
    return root


def open_dataset(cfg: DatasetConfig, split: str, *, work_dir: str | Path, transform: Callable | None = None,
                 progress: bool = True) -> SegmentationDataset:
    """Open one split of the configured dataset (labels cached under ``<work_dir>/cache``)."""
    root = dataset_root(cfg, work_dir, progress=progress)
    cache_dir = Path(work_dir) / "cache"
    if cfg.name == "coco":
        return COCOSegmentation(root, split, transform=transform, cache_dir=cache_dir, progress=progress)
    if cfg.name == "folder":
        return FolderDataset(root, split, transform=transform, cache_dir=cache_dir, progress=progress,
                             label_check=cfg.label_check)
    family = dataset_family(cfg.name)
    dataset = VOCSegmentation(root, split, transform=transform, cache_dir=cache_dir, progress=progress,
                              label_check="error" if family == "synthetic" else cfg.label_check)
    dataset.name = family
    return dataset


def class_groups(dataset: SegmentationDataset) -> dict[str, dict[str, tuple[str, ...]]] | None:
    """The dataset's named class groups: the paper's (VOC), the generator's (synthetic), or ``None`` (COCO:
    use ``wsss_lib.data.stats.tertile_groups``)."""
    if dataset.name == "voc":
        return {family: dict(groups) for family, groups in VOC_PAPER_GROUPS.items()}
    if dataset.name == "synthetic":
        path = resolve_voc_root(dataset.root) / "class_groups.json"
        if not path.is_file():
            raise DatasetError(f"{path} is missing; the synthetic generator writes it beside class_names.txt")
        return {family: {g: tuple(m) for g, m in groups.items()} for family, groups in json.loads(path.read_text()).items()}
    return None
