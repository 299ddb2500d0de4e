"""One entry point for every dataset: ``open_dataset(DatasetConfig(...), split, work_dir=...)``.

- ``voc``: Pascal VOC 2012 + SBD read from ``data_root`` (or ``$WSSS_DATA``), the ``VOCdevkit`` folder.
- ``coco``: MS COCO 2014 read from ``data_root`` (or ``$WSSS_DATA``).
- ``synthetic``: the project's benchmark in VOC layout; with an empty ``data_root`` it is generated (once,
  with the default ``SyntheticConfig``) under ``<work_dir>/data/synthetic-<config hash>/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from wsss_lib.config import config_hash
from wsss_lib.data.base import SegmentationDataset
from wsss_lib.data.coco import COCOSegmentation
from wsss_lib.data.errors import DatasetError
from wsss_lib.data.voc import VOC_PAPER_GROUPS, VOCSegmentation, resolve_voc_root
from wsss_lib.paths import data_root_from_env

__all__ = ["DatasetConfig", "open_dataset", "dataset_root", "class_groups"]


@dataclass(frozen=True)
class DatasetConfig:
    """Which dataset a stage reads."""

    name: Literal["voc", "coco", "synthetic"] = "synthetic"
    data_root: str = ""
    """Dataset folder; empty: ``$WSSS_DATA`` (voc, coco) or the generated benchmark (synthetic)."""
    label_check: Literal["error", "warn", "off"] = "warn"
    """VOC layout: what a mismatch between mask labels and XML annotations does (synthetic: always error)."""


def dataset_root(cfg: DatasetConfig, work_dir: str | Path, progress: bool = True) -> Path:
    """The folder the loader reads, generating the synthetic benchmark if needed."""
    if cfg.name not in ("voc", "coco", "synthetic"):
        raise ValueError(f"dataset must be 'voc', 'coco' or 'synthetic', got {cfg.name!r}")
    if cfg.name == "synthetic" and not cfg.data_root:
        from wsss_lib.data.synthetic import SyntheticConfig, ensure_synthetic

        synthetic = SyntheticConfig()
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
    dataset = VOCSegmentation(root, split, transform=transform, cache_dir=cache_dir, progress=progress,
                              label_check="error" if cfg.name == "synthetic" else cfg.label_check)
    dataset.name = cfg.name
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
