"""Datasets: Pascal VOC 2012 + SBD, MS COCO 2014 and the synthetic WSSS benchmark (all in VOC layout or
read into the same ``SegmentationDataset`` interface), plus transforms and class-group statistics."""

from wsss_lib.data.base import SegmentationDataset
from wsss_lib.data.coco import COCOSegmentation
from wsss_lib.data.registry import (
                                    SYNTHETIC_PRESETS,
                                    DatasetConfig,
                                    class_groups,
                                    dataset_family,
                                    dataset_root,
                                    open_dataset,
                                    synthetic_config,
)
from wsss_lib.data.voc import VOC_CLASSES, VOC_PAPER_GROUPS, VOCSegmentation
from wsss_lib.formats.errors import DatasetError

__all__ = [
    "COCOSegmentation", "DatasetConfig", "DatasetError", "SegmentationDataset", "VOCSegmentation",
    "VOC_CLASSES", "VOC_PAPER_GROUPS", "SYNTHETIC_PRESETS", "class_groups", "dataset_family", "dataset_root",
    "open_dataset", "synthetic_config",
]
