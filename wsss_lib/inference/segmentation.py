"""Segmentation inference with test-time augmentation, dense CRF and the VOC evaluation-server export.

Per image (official P-NOC ``scripts/segmentation/inference.py``; official-code-facts 1.14): for each scale
(0.5, 1.0, 1.5, 2.0) the image is resized (bicubic) and forwarded with its horizontal flip; every logit map is
resized bilinearly to ``H x W`` (the flipped one flipped back), the maps are averaged and a softmax gives the
class probabilities. Optionally the DeepLab-v2 dense CRF (preset ``deeplab_v2``: softmax unary, t = 10) refines
them; the argmax is written as a palette PNG with the VOC colours:

- ``<out_dir>/SegmentationClass/<id>.png``: the final prediction (after the CRF when ``crf`` is set);
- ``<out_dir>/raw/SegmentationClass/<id>.png``: the prediction before the CRF (only when ``crf`` is set), so
  both can be scored from one network pass.

The network runs in this process; the CRFs (single-threaded, the slow part on CPU) run in ``workers`` forked
processes while the network goes on, with at most ``2 * workers`` images in flight. The workers only run numpy,
PIL and pydensecrf, never torch, so forking is safe after CUDA has started (as DataLoader workers are);
``forkserver``/``spawn`` would re-import a calling script's ``__main__``. Existing final PNGs are skipped (resume); every file is atomic.
"""

from __future__ import annotations

import multiprocessing
import tarfile
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss_lib.formats.masks import mask_path, to_palette_image
from wsss_lib.inference.tta import scaled_outputs
from wsss_lib.io import atomic_path, atomic_save_image
from wsss_lib.io.progress import tqdm
from wsss_lib.ops.crf import crf_softmax
from wsss_lib.timing import timed
from wsss_lib.train.precision import evaluating

__all__ = ["SegInferenceConfig", "segmentation_probabilities", "write_prediction", "infer_segmentation",
           "raw_dir", "VOC_TEST_FOLDER", "export_voc_test"]

RAW = "raw"
VOC_TEST_FOLDER = Path("results") / "VOC2012" / "Segmentation" / "comp6_test_cls"
"""Where the VOC evaluation server expects the test predictions (competition 6: ImageNet-pretrained models)."""


@dataclass(frozen=True)
class SegInferenceConfig:
    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    flip: bool = True
    crf: str = "deeplab_v2"
    """A softmax CRF preset of ``wsss_lib.ops.crf`` (official: ``deeplab_v2``), or empty for none."""


@torch.no_grad()
@timed("forward")
def segmentation_probabilities(model: torch.nn.Module, image: np.ndarray, mean: Sequence[float], std: Sequence[float],
                               scales: Sequence[float] = (1.0,), flip: bool = True, device: torch.device | str = "cpu",
                               autocast_dtype: torch.dtype | None = None, channels_last: bool = False) -> np.ndarray:
    """``(num_classes, H, W)`` float32 class probabilities of one ``uint8`` RGB image (see the module docstring)."""
    device = torch.device(device)
    height, width = image.shape[:2]
    total = None
    for logits in scaled_outputs(model, image, mean, std, scales, flip, device, autocast_dtype, channels_last):
        logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
        logits = logits[0] + logits[1].flip(-1) if flip else logits[0]
        total = logits if total is None else total + logits
    views = len(scales) * (2 if flip else 1)
    return torch.softmax(total / views, dim=0).cpu().numpy()


def raw_dir(out_dir: str | Path) -> Path:
    """The folder (VOC layout) of the predictions before the CRF."""
    return Path(out_dir) / RAW


def write_prediction(image: np.ndarray, probs: np.ndarray, crf: str, out_dir: str | Path, image_id: str) -> None:
    """Write the argmax of ``probs`` (and, with ``crf``, the CRF-refined one) as palette PNGs (see the module
    docstring); runs in the CRF worker processes, so errors name the image."""
    try:
        labels = np.argmax(probs, axis=0).astype(np.uint8)
        if crf:
            atomic_save_image(mask_path(raw_dir(out_dir), image_id), to_palette_image(labels))
            labels = np.argmax(crf_softmax(image, probs.astype(np.float32), crf), axis=0).astype(np.uint8)
        atomic_save_image(mask_path(out_dir, image_id), to_palette_image(labels))
    except Exception as exc:
        raise RuntimeError(f"segmentation prediction of {image_id!r} failed: {type(exc).__name__}: {exc}") from exc


class _Writers:
    """``write_prediction`` inline (``workers <= 1``) or in a bounded pool of forked processes."""

    def __init__(self, workers: int):
        self.pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
                     if workers > 1 and "fork" in multiprocessing.get_all_start_methods() else None)
        self.pending: deque[Future] = deque()
        self.limit = 2 * max(workers, 1)

    def submit(self, *args) -> None:
        if self.pool is None:
            write_prediction(*args)
            return
        self.pending.append(self.pool.submit(write_prediction, *args))
        while len(self.pending) > self.limit:
            self.pending.popleft().result()

    def close(self, cancel: bool = False) -> None:
        if self.pool is None:
            return
        try:
            while self.pending and not cancel:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=cancel)


def infer_segmentation(model: torch.nn.Module, dataset, out_dir: str | Path, mean: Sequence[float],
                       std: Sequence[float], cfg: SegInferenceConfig = SegInferenceConfig(),
                       device: torch.device | str = "cpu", autocast_dtype: torch.dtype | None = None,
                       channels_last: bool = False, progress: bool = True, workers: int = 1) -> dict[str, int]:
    """Predict every image of ``dataset`` (only its images are read) into ``out_dir``; returns
    ``{"computed", "skipped"}``. A failing CRF worker fails the call; finished files stay for the resume."""
    todo = [i for i in dataset.ids if not mask_path(out_dir, i).is_file()]
    writers = _Writers(workers if cfg.crf else 1)
    failed = True
    try:
        with evaluating(model):
            for image_id in tqdm(todo, desc=f"segmentation ({dataset.split})", disable=not progress):
                image = dataset.load_image(image_id)
                probs = segmentation_probabilities(model, image, mean, std, cfg.scales, cfg.flip, device,
                                                   autocast_dtype, channels_last)
                writers.submit(image, probs, cfg.crf, out_dir, image_id)
        failed = False
    finally:
        writers.close(cancel=failed)
    return {"computed": len(todo), "skipped": len(dataset.ids) - len(todo)}


def export_voc_test(dataset, predictions: str | Path, out_root: str | Path, archive: str = "results") -> Path:
    """Copy the predictions of every image of ``dataset`` (a VOC ``test`` split) into
    ``<out_root>/results/VOC2012/Segmentation/comp6_test_cls/<id>.png`` and pack ``<out_root>/<archive>.tar.gz``
    (the archive the evaluation server takes). Each PNG is checked: palette mode, the image's size, class ids
    below the dataset's class count. Returns the archive's path."""
    out_root = Path(out_root)
    folder = out_root / VOC_TEST_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    ids = set(dataset.ids)
    for stale in folder.glob("*.png"):  # an earlier export of another model or split
        if stale.stem not in ids:
            stale.unlink()
    for image_id in tqdm(dataset.ids, desc=f"VOC server export ({dataset.split})", disable=not dataset.progress):
        source = mask_path(predictions, image_id)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no prediction for {image_id!r}; run the prediction stage on "
                                    f"{dataset.split!r} first")
        with Image.open(source) as png:
            if png.mode != "P":
                raise ValueError(f"{source}: mode {png.mode!r}, the server expects palette ('P') PNGs")
            labels = np.asarray(png)
        height, width = dataset.load_image(image_id).shape[:2]
        if labels.shape != (height, width):
            raise ValueError(f"{source}: size {labels.shape} differs from the image's {(height, width)}")
        if labels.max() >= dataset.num_classes:
            raise ValueError(f"{source}: class id {labels.max()} >= {dataset.num_classes} classes")
        atomic_save_image(folder / f"{image_id}.png", to_palette_image(labels.astype(np.uint8)))
    path = out_root / f"{archive}.tar.gz"
    with atomic_path(path) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(out_root / "results", arcname="results")
    return path
