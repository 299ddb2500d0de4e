"""Affinity labels: which pixels of a training image are confidently background, a class, or uncertain (255).

Two rules (P-NOC section 5, ``official-code-facts.md`` 1.13 and 6), both on the full-resolution CAMs ``hr_cam``
of the image's classes (``keys``) and refined by the IRN label CRF (preset ``label``: t = 10, gt_prob 0.7):

- ``conventional`` (AffinityNet / IRN ``cam_to_ir_label``): two thresholdings of the CAMs, one with a high
  background score ``fg_threshold`` (what survives is confident foreground) and one with a low background score
  ``bg_threshold`` (what falls below is confident background), each refined by the CRF;
  ``label = fg_conf``, ``label[fg_conf == 0] = 255``, ``label[bg_conf + fg_conf == 0] = 0``.
- ``saliency`` (P-NOC ``make_affinity_labels.py``): background is where the saliency ``S`` is below
  ``bg_threshold`` (``bg_conf = CRF_2(S > bg_threshold)``, 2 labels), a class where the CAM exceeds
  ``fg_threshold`` inside the salient region (``fg_conf = keys[CRF(bg_conf * argmax(pad(hr_cam, fg_threshold)))]``),
  uncertain where the saliency is strong and the CAMs weak; combined as above.

``coarse`` is the conventional rule without CRF (Figure 5, column b). Labels are stored as ``uint8`` PNGs of
class ids (0 = background, 1..C-1, 255 = uncertain), one per image, written atomically and resumably.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from wsss_lib.formats.cam_io import CamRecord, cam_path, load_cam
from wsss_lib.formats.saliency_io import load_saliency, saliency_path
from wsss_lib.io import atomic_save_image, for_each_missing
from wsss_lib.ops.crf import crf_labels

__all__ = ["AffinityLabelConfig", "coarse_affinity_labels", "conventional_affinity_labels",
           "saliency_affinity_labels", "affinity_labels", "make_affinity_labels",
           "IGNORE"]

IGNORE = 255


@dataclass(frozen=True)
class AffinityLabelConfig:
    """How affinity labels are made.

    Attributes:
        mode: ``"saliency"`` (P-NOC, needs saliency maps), ``"conventional"`` (AffinityNet / IRN) or ``"coarse"``
            (conventional without CRF).
        fg_threshold: CAM score above which a pixel is confidently its class. P-NOC VOC 0.40 (paper-time tag
            0.30); IRN 0.30.
        bg_threshold: saliency (``saliency`` mode) or CAM (``conventional``) score below which a pixel is
            confidently background. P-NOC 0.10 (saliency); IRN 0.05, Puzzle-CAM README 0.10 (CAMs).
        crf: label-CRF preset of ``wsss_lib.ops.crf`` (``"label"``: IRN/P-NOC, t = 10, gt_prob 0.7).
    """

    mode: Literal["saliency", "conventional", "coarse"] = "saliency"
    fg_threshold: float = 0.40
    bg_threshold: float = 0.10
    crf: str = "label"

    def __post_init__(self) -> None:
        if self.mode not in ("saliency", "conventional", "coarse"):
            raise ValueError(f"mode must be 'saliency', 'conventional' or 'coarse', got {self.mode!r}")
        for name in ("fg_threshold", "bg_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mode == "conventional" and self.bg_threshold > self.fg_threshold:
            raise ValueError(f"conventional labels need bg_threshold <= fg_threshold, got {self.bg_threshold} > "
                             f"{self.fg_threshold}")

    @property
    def needs_saliency(self) -> bool:
        return self.mode == "saliency"


def _argmax_with_background(record: CamRecord, threshold: float) -> np.ndarray:
    """Channel index (0 = background at score ``threshold``, k = ``keys[k-1]``) of the padded ``hr_cam``."""
    scores, _ = record.with_background(threshold, high_res=True)
    return np.argmax(scores, axis=0).astype(np.uint8)


def _keys(record: CamRecord) -> np.ndarray:
    return np.concatenate([[0], record.keys]).astype(np.uint8)


def _combine(fg_conf: np.ndarray, bg_conf: np.ndarray) -> np.ndarray:
    label = fg_conf.copy()
    label[fg_conf == 0] = IGNORE
    label[(bg_conf == 0) & (fg_conf == 0)] = 0
    return label


def _refine(image: np.ndarray, channels: np.ndarray, n_labels: int, crf: str) -> np.ndarray:
    return crf_labels(image, channels, n_labels, crf) if crf else channels


def coarse_affinity_labels(record: CamRecord, fg_threshold: float, bg_threshold: float) -> np.ndarray:
    """The conventional rule without CRF: class where the CAM beats ``fg_threshold``, background where every CAM is
    below ``bg_threshold``, 255 in between."""
    keys = _keys(record)
    return _combine(keys[_argmax_with_background(record, fg_threshold)],
                    keys[_argmax_with_background(record, bg_threshold)])


def conventional_affinity_labels(image: np.ndarray, record: CamRecord, fg_threshold: float, bg_threshold: float,
                                 crf: str = "label") -> np.ndarray:
    """AffinityNet / IRN labels: the two CRF-refined thresholdings of the CAMs, disagreement = 255."""
    keys = _keys(record)
    if len(record.keys) == 0:
        return np.zeros(image.shape[:2], np.uint8)
    fg_conf = keys[_refine(image, _argmax_with_background(record, fg_threshold), len(keys), crf)]
    bg_conf = keys[_refine(image, _argmax_with_background(record, bg_threshold), len(keys), crf)]
    return _combine(fg_conf, bg_conf)


def saliency_affinity_labels(image: np.ndarray, record: CamRecord, saliency: np.ndarray, fg_threshold: float,
                             bg_threshold: float, crf: str = "label") -> np.ndarray:
    """P-NOC labels: background where the saliency is weak, a class where the CAM is strong inside the salient
    region, 255 where the saliency is strong and the CAM weak (see the module docstring for the exact rule)."""
    if saliency.shape != image.shape[:2]:
        raise ValueError(f"saliency shape {saliency.shape} does not match image shape {image.shape[:2]}")
    salient = _refine(image, (saliency > bg_threshold).astype(np.uint8), 2, crf)
    if len(record.keys) == 0:  # no class: the salient pixels cannot be named
        return np.where(salient == 0, 0, IGNORE).astype(np.uint8)
    keys = _keys(record)
    channels = salient * _argmax_with_background(record, fg_threshold)
    fg_conf = keys[_refine(image, channels, len(keys), crf)]
    return _combine(fg_conf, salient)


def affinity_labels(image: np.ndarray, record: CamRecord, cfg: AffinityLabelConfig,
                    saliency: np.ndarray | None = None) -> np.ndarray:
    """The affinity label map of one image under ``cfg`` (``saliency`` is needed in ``saliency`` mode)."""
    if record.hr_cam.shape[1:] != image.shape[:2]:
        raise ValueError(f"CAM size {record.hr_cam.shape[1:]} does not match the image size {image.shape[:2]}")
    if cfg.mode == "saliency":
        if saliency is None:
            raise ValueError("saliency-aware affinity labels need the image's saliency map")
        return saliency_affinity_labels(image, record, saliency, cfg.fg_threshold, cfg.bg_threshold, cfg.crf)
    if cfg.mode == "conventional":
        return conventional_affinity_labels(image, record, cfg.fg_threshold, cfg.bg_threshold, cfg.crf)
    return coarse_affinity_labels(record, cfg.fg_threshold, cfg.bg_threshold)


def make_affinity_labels(dataset, cams_dir: str | Path, out_dir: str | Path, cfg: AffinityLabelConfig,
                         saliency_dir: str | Path | None = None, progress: bool = True,
                         workers: int = 1) -> dict[str, int]:
    """One label PNG per image of ``dataset`` in ``out_dir`` (resumable, atomic; ``workers`` processes for the
    CRFs); returns the counts."""
    if cfg.needs_saliency and saliency_dir is None:
        raise ValueError("affinity labels in 'saliency' mode need saliency_dir (a saliency stage of this split)")

    def write(image_id: str, path: Path) -> None:
        image = dataset.load_image(image_id)
        record = load_cam(cam_path(cams_dir, image_id))
        saliency = load_saliency(saliency_path(saliency_dir, image_id), image.shape[:2]) if cfg.needs_saliency else None
        atomic_save_image(path, Image.fromarray(affinity_labels(image, record, cfg, saliency), mode="L"))

    return for_each_missing(dataset.ids, lambda i: Path(out_dir) / f"{i}.png", write,
                            desc=f"affinity labels ({dataset.split})", progress=progress, workers=workers)


