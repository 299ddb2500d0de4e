"""Pascal VOC 2012 + SBD in the standard ``VOCdevkit/VOC2012`` layout (also used by the synthetic benchmark).

Expected tree (``data_root`` may point at ``VOCdevkit`` or directly at ``VOC2012``)::

    VOC2012/
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png        # VOC's own masks (train, val), palette PNGs, 255 = void
      SegmentationClassAug/<id>.png     # SBD-augmented masks (train_aug and val), palette or grayscale
      Annotations/<id>.xml              # object names, checked against the masks
      ImageSets/Segmentation/{train,val,train_aug}.txt
      class_names.txt                   # optional: one name per line, line 0 = background (synthetic data)

Splits: ``train`` (1,464), ``val`` (1,449), ``train_aug`` (10,582) for the real dataset. Masks come from
``SegmentationClass`` for ``train``/``val`` and ``SegmentationClassAug`` for ``train_aug``
(``mask_source`` overrides). Image-level labels are derived from the masks and checked against the XML
annotations (``label_check``: ``"error"``, ``"warn"`` or ``"off"``).
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Literal, Sequence

import numpy as np

from wsss_lib.data.base import SegmentationDataset
from wsss_lib.formats.errors import DatasetError

__all__ = ["VOC_CLASSES", "VOC_PAPER_GROUPS", "VOC_SPLIT_SIZES", "VOCSegmentation", "resolve_voc_root",
           "read_class_names", "read_xml_objects"]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

VOC_SPLIT_SIZES = MappingProxyType({"train": 1464, "val": 1449, "train_aug": 10582})

# The class groups of the main paper's Tables 1 and 3 (P-NOC, section 2.3). The group rows print Singleton as
# "a.plane bird boat sheep train", but Table 3's per-class column also marks cat and cow as singleton and the
# printed Singleton averages are the means over all seven (O 87.4 vs 83.4 for the five): we use the seven.
VOC_PAPER_GROUPS = MappingProxyType({
    "Occurrence": MappingProxyType({
        "Low freq.": ("bicycle", "boat", "bus", "cow", "horse", "sheep"),
        "Mid freq.": ("aeroplane", "bottle", "diningtable", "motorbike", "pottedplant", "sofa", "train", "tvmonitor"),
        "High freq.": ("bird", "car", "cat", "chair", "dog", "person"),
    }),
    "Size": MappingProxyType({
        "Small": ("aeroplane", "bicycle", "bird", "boat", "bottle", "chair", "pottedplant"),
        "Mid": ("car", "cow", "person", "tvmonitor"),
        "Large": ("bus", "cat", "diningtable", "dog", "horse", "motorbike", "sheep", "sofa", "train"),
    }),
    "Group": MappingProxyType({
        "Singleton": ("aeroplane", "bird", "boat", "cat", "cow", "sheep", "train"),
        "Person": ("person",),
        "Animal": ("dog", "horse"),
        "Room": ("bottle", "chair", "diningtable", "pottedplant", "sofa", "tvmonitor"),
        "Traffic": ("bicycle", "bus", "car", "motorbike"),
    }),
})

MaskSource = Literal["auto", "SegmentationClass", "SegmentationClassAug"]


def resolve_voc_root(data_root: str | Path | None) -> Path:
    """The ``VOC2012`` folder under ``data_root`` (a ``VOCdevkit`` folder or the ``VOC2012`` folder itself)."""
    if not data_root:
        raise DatasetError("no dataset root given: pass data_root (or set WSSS_DATA) to the VOCdevkit folder")
    root = Path(data_root).expanduser()
    if not root.exists():
        raise DatasetError(f"dataset root {root} does not exist; expected a VOCdevkit folder containing VOC2012/")
    for candidate in (root / "VOC2012", root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DatasetError(f"{root}: no JPEGImages/ found in {root} or {root / 'VOC2012'}; expected the VOCdevkit layout")


def read_class_names(voc_root: Path) -> tuple[str, ...]:
    """``class_names.txt`` if present (synthetic data), else the 21 VOC names."""
    path = voc_root / "class_names.txt"
    if not path.is_file():
        return VOC_CLASSES
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not names or names[0] != "background":
        raise DatasetError(f"{path}: the first class must be 'background', got {names[:1]}")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: duplicated class names")
    return names


def read_xml_objects(path: Path) -> list[str]:
    """Object names of a VOC XML annotation, in file order."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise DatasetError(f"annotation {path} cannot be parsed ({exc}); expected VOC XML") from exc
    return [(obj.findtext("name") or "").strip() for obj in tree.getroot().iter("object")]


def read_split(voc_root: Path, split: str) -> list[str]:
    path = voc_root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise DatasetError(f"split file {path} is missing; available splits: {available}")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class VOCSegmentation(SegmentationDataset):
    """One split of a dataset in VOC layout (Pascal VOC 2012 + SBD, or the synthetic benchmark)."""

    name = "voc"

    def __init__(self, data_root: str | Path, split: str = "train", *, mask_source: MaskSource = "auto",
                 label_check: Literal["error", "warn", "off"] = "warn", class_names: Sequence[str] | None = None,
                 transform: Callable | None = None, cache_dir: Path | None = None, progress: bool = True):
        voc_root = resolve_voc_root(data_root)
        names = read_class_names(voc_root)
        if class_names is not None and tuple(class_names) != names:
            raise DatasetError(
                f"{voc_root}: class list {list(names)} does not match the expected {list(class_names)}"
            )
        if mask_source == "auto":
            mask_source = "SegmentationClassAug" if split == "train_aug" else "SegmentationClass"
        if mask_source not in ("SegmentationClass", "SegmentationClassAug"):
            raise ValueError(f"mask_source must be 'auto', 'SegmentationClass' or 'SegmentationClassAug', got {mask_source!r}")
        if label_check not in ("error", "warn", "off"):
            raise ValueError(f"label_check must be 'error', 'warn' or 'off', got {label_check!r}")
        self.mask_dir = voc_root / mask_source
        if not self.mask_dir.is_dir():
            raise DatasetError(f"mask folder {self.mask_dir} is missing; split {split!r} reads its masks there")
        self.label_check = label_check
        super().__init__(voc_root, split, names, read_split(voc_root, split), transform=transform,
                         cache_dir=cache_dir, progress=progress)

    def image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def mask_path(self, image_id: str) -> Path:
        return self.mask_dir / f"{image_id}.png"

    def xml_path(self, image_id: str) -> Path:
        return self.root / "Annotations" / f"{image_id}.xml"

    def compute_labels(self) -> np.ndarray:
        labels = super().compute_labels()
        if self.label_check != "off":
            self._check_against_xml(labels)
        return labels

    def _check_against_xml(self, labels: np.ndarray) -> None:
        """Compare mask-derived labels with the XML objects wherever an XML file exists."""
        index = {name: i for i, name in enumerate(self.foreground_names)}
        problems: list[str] = []
        for row, image_id in zip(labels, self.ids):
            xml = self.xml_path(image_id)
            if not xml.is_file():
                continue
            names = read_xml_objects(xml)
            unknown = sorted({n for n in names if n not in index})
            if unknown:
                raise DatasetError(f"{xml}: object name(s) {unknown} are not in the class list {list(self.class_names)}")
            from_xml = {index[n] for n in names}
            from_mask = set(np.flatnonzero(row).tolist())
            if from_xml != from_mask:
                only_xml = sorted(self.foreground_names[i] for i in from_xml - from_mask)
                only_mask = sorted(self.foreground_names[i] for i in from_mask - from_xml)
                problems.append(f"{image_id}: only in XML {only_xml}, only in mask {only_mask}")
        if problems:
            message = (f"{self.root}: {len(problems)} image(s) of split {self.split!r} have mask labels that differ "
                       f"from Annotations/*.xml (labels are taken from the masks): " + "; ".join(problems[:10])
                       + (" ..." if len(problems) > 10 else ""))
            if self.label_check == "error":
                raise DatasetError(message)
            warnings.warn(message, stacklevel=3)
