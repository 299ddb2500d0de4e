"""RIB's per-image fine-tuning and CAM accumulation (official ``obtain_RIB_CAM.py``; losses in ``wsss_lib.methods.rib``).

For every image of the split: reload the trained classifier's weights, then for each of ``steps`` steps

1. run the image's TTA views (each scale with its flip; the reference scale, 1.0 when present, first) and add the
   ReLU'd maps of its classes to that scale's running sum; from the second step on, stop if the reference view
   "exploded";
2. pool the views' raw maps (GNDP) except the excluded scales, and those of a batch of other images that share none
   of its classes; step SGD on ``-sum(logits * labels)``; stop if the target's part exceeds the stop threshold.

The summed maps of all scales are resized to the stride-4 grid and to the image (stride-16 padded, cropped) and
normalised by their maximum, as in TTA CAM inference, and saved in the project's CAM format. The network runs in
eval mode while it is fine-tuned (batch norm frozen, as the official IRN backbone's ``FixedBatchNorm``). Each image
gets its own random stream (seed, image index), so an interrupted stage resumes to the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wsss_lib.formats.cam_io import cam_path, save_cam
from wsss_lib.inference.tta import TTAConfig, scaled_outputs, strided_maps
from wsss_lib.io import for_each_missing
from wsss_lib.methods.rib import RIBConfig, disjoint_batches, exploded, gndp_pool, rib_loss
from wsss_lib.models.cam import CAMClassifier
from wsss_lib.train.optim import OptimConfig, PolySGD

__all__ = ["rib_optimizer", "rib_image_cams", "infer_rib_cams"]


def rib_optimizer(model: CAMClassifier, cfg: RIBConfig) -> PolySGD:
    """Official groups: the backbone at ``lr``, the classifier head at ``head_lr_multiplier × lr``, both with weight
    decay; poly decay over ``steps``; no momentum (the official PolyOptimizer's positional bug)."""
    head = {id(p) for m in model.new_modules() for p in m.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head], "lr_mult": 1.0},
              {"params": [p for p in model.parameters() if id(p) in head], "lr_mult": cfg.head_lr_multiplier}]
    return PolySGD(groups, OptimConfig(lr=cfg.lr, momentum=0.0, weight_decay=cfg.weight_decay), cfg.steps)


def _ordered_scales(scales: Sequence[float]) -> list[float]:
    reference = 1.0 if 1.0 in scales else scales[0]
    return [reference] + [s for s in scales if s != reference]


def rib_image_cams(model: CAMClassifier, state: dict, image: np.ndarray, labels: np.ndarray, pool, pool_labels: np.ndarray,
                   cfg: RIBConfig, tta: TTAConfig, mean: Sequence[float], std: Sequence[float],
                   rng: np.random.Generator, device: torch.device | str = "cpu",
                   exclude: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(cam, hr_cam, info)`` of one image after RIB; ``pool`` yields ``{"image", "label"}`` training samples of the
    images ``pool_labels`` describes; ``info`` says how many steps ran, why the loop stopped, and the target's part of
    the loss at each step (``target_loss``)."""
    device = torch.device(device)
    height, width = image.shape[:2]
    keys = np.flatnonzero(labels) + 1
    if len(keys) == 0:
        cam, hr_cam = strided_maps([], height, width, 0, device)
        return cam, hr_cam, {"steps": 0, "stop": "no class", "target_loss": []}
    model.load_state_dict(state)
    model.to(device).eval()
    optimizer = rib_optimizer(model, cfg)
    index = torch.as_tensor(keys - 1, device=device)
    present = torch.as_tensor(np.asarray(labels, np.float32), device=device)[None]
    scales = _ordered_scales(tta.scales)
    sums: list[torch.Tensor | None] = [None] * len(scales)
    batches = disjoint_batches(pool_labels, labels, cfg.batch_size, cfg.p_disjoint, rng, exclude=exclude)
    stop, steps, history = "steps", 0, []
    for step in range(cfg.steps):
        logits, targets = [], []
        for i, scale in enumerate(scales):
            in_loss = scale not in cfg.loss_excluded_scales
            with torch.set_grad_enabled(in_loss):  # a view left out of the loss needs no graph
                cams = next(scaled_outputs(model, image, mean, std, [scale], tta.flip, device)).cams.float()
            maps = F.relu(cams[:, index]).detach()
            maps = maps[0] + maps[1].flip(-1) if tta.flip else maps[0]
            sums[i] = maps if sums[i] is None else sums[i] + maps
            if i == 0 and step > 0 and exploded(maps, cfg.explode_threshold, cfg.explode_ratio):
                stop = "explosion"
                break
            if in_loss:
                views = present.expand(cams.shape[0], -1)
                logits.append(gndp_pool(cams, views, cfg.score_threshold, cfg.pooling))
                targets.append(views)
        if stop == "explosion":
            break
        target_loss = rib_loss(torch.cat(logits), torch.cat(targets)) if logits else torch.zeros((), device=device)
        samples = [pool[int(j)] for j in next(batches)]
        others = model(torch.stack([s["image"] for s in samples]).to(device)).cams.float()
        other_labels = torch.stack([s["label"] for s in samples]).to(device).float()
        loss = target_loss + rib_loss(gndp_pool(others, other_labels, cfg.score_threshold, cfg.pooling), other_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps = step + 1
        history.append(float(target_loss.detach()))
        if abs(history[-1]) > cfg.stop_threshold:
            stop = "stop threshold"
            break
    ordered = [sums[scales.index(s)] for s in tta.scales if sums[scales.index(s)] is not None]
    cam, hr_cam = strided_maps(ordered, height, width, len(keys), device)
    return cam, hr_cam, {"steps": steps, "stop": stop, "target_loss": history}


def infer_rib_cams(model: CAMClassifier, dataset, pool, out_dir: str | Path, mean: Sequence[float], std: Sequence[float],
                   cfg: RIBConfig, tta: TTAConfig = TTAConfig(), seed: int = 0, device: torch.device | str = "cpu",
                   progress: bool = True, **_: object) -> dict[str, int]:
    """RIB CAM files for every image of ``dataset`` (resumable, atomic, one progress bar); ``pool`` is the training
    split with its training transform, from which the disjoint-class batches are drawn."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    pool_labels = np.asarray(pool.labels)
    pool_index = {image_id: i for i, image_id in enumerate(pool.ids)}
    order = {image_id: i for i, image_id in enumerate(dataset.ids)}
    stops: dict[str, int] = {}

    def write(image_id: str, path: Path) -> None:
        torch.manual_seed(seed * 1_000_003 + order[image_id])  # the pool's augmentation
        rng = np.random.default_rng([seed, order[image_id]])
        labels = dataset.label_of(image_id)
        cam, hr_cam, info = rib_image_cams(model, state, dataset.load_image(image_id), labels, pool, pool_labels, cfg,
                                           tta, mean, std, rng, device, exclude=pool_index.get(image_id))
        stops[info["stop"]] = stops.get(info["stop"], 0) + 1
        save_cam(path, np.flatnonzero(labels) + 1, cam, hr_cam)

    try:
        counts = for_each_missing(dataset.ids, lambda i: cam_path(out_dir, i), write, desc=f"RIB CAMs ({dataset.split})",
                                  progress=progress)
    finally:
        model.load_state_dict(state)
    return {**counts, **{f"stop_{k.replace(' ', '_')}": v for k, v in stops.items()}}
