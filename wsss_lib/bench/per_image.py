"""Cost per image of the per-image stages: ``python -m wsss_lib.bench.per_image`` (part of ``make bench``).

Each *part* below is timed on one random image of the given size, with the paper's settings and the given backbone
(random weights: the cost does not depend on them), after one warm-up, as the median of ``--repeat`` runs, each part
in its own process so that its peak memory is its own (CUDA ``max_memory_allocated``, or the process's peak
resident set size on the CPU). One row per part is appended to ``reports/bench/<device>.csv`` (column ``part``); the
dry run's plan (:mod:`wsss_lib.runner.plan`, ``IMAGE_COSTS``) adds these parts up per stage:

- ``tta``: the CAM classifier's TTA (:func:`wsss_lib.inference.tta.tta_cams`, the ``scales`` and flip): the CAMs,
  and the cost of every other classifier-shaped TTA (saliency maps, AMN's CAMs, the hint CAMs);
- ``seg``: DeepLab's TTA (:func:`wsss_lib.inference.segmentation.segmentation_probabilities`), without its CRF;
- ``affinity``: the affinity network's flip-averaged output at scale 1 (:func:`~wsss_lib.inference.affinity.affinity_output`);
- ``walk``: the sparse random walk on the image's stride-4 grid (radius 5, 2^8 steps, 3 classes);
- ``crf``: one dense CRF of each preset of ``wsss_lib.ops.crf`` (``--crf``), 3 labels for the label presets and
  ``--classes`` for the softmax ones (DeepLab's CRF runs over every class);
- ``io``: writing and reading a CAM file of 3 classes and scoring it at 16 thresholds (sweeps, scores, exports).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from wsss_lib.io import append_csv_rows
from wsss_lib.paths import repo_root
from wsss_lib.provenance import cpu_model
from wsss_lib.train.precision import autocast_dtype, resolve_device

__all__ = ["PARTS", "measure", "main"]

PARTS = ("tta", "seg", "affinity", "walk", "crf", "io")


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_seconds(fn: Callable[[], Any], device: torch.device, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _image(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


def _timers(part: str, args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], Any]]:
    """``{row label: the function to time}`` of one part (several for ``crf``: one per preset)."""
    from wsss_lib.methods.registry import build_method, method_config
    from wsss_lib.models.backbone import BackboneConfig

    width, height = args.image
    image = _image(width, height)
    autocast = autocast_dtype(args.amp, device)
    if part == "tta":
        from wsss_lib.inference.tta import TTAConfig, tta_cams

        method = build_method("cam", method_config("cam"), BackboneConfig(name=args.backbone, output_stride=16),
                              args.classes - 1).eval().to(device).to(memory_format=torch.channels_last)
        mean, std = method.normalization
        cfg = TTAConfig(scales=tuple(args.scales), flip=True)
        return {"": lambda: tta_cams(method.cam_model(), image, np.array([1, 2]), mean, std, cfg, device, autocast,
                                     True)}
    if part == "seg":
        from wsss_lib.inference.segmentation import segmentation_probabilities
        from wsss_lib.methods.registry import SegmentationMethodConfig
        from wsss_lib.stages.segmentation import SegmentationStageConfig

        stage = SegmentationStageConfig()
        backbone = replace(stage.backbone, name=args.backbone, weights="none")
        method = build_method("segmentation", SegmentationMethodConfig(stage.network, stage.loss), backbone,
                              args.classes).eval().to(device).to(memory_format=torch.channels_last)
        mean, std = method.normalization
        return {"": lambda: segmentation_probabilities(method.cam_model(), image, mean, std, tuple(args.scales), True,
                                                       device, autocast, True)}
    if part == "affinity":
        from wsss_lib.inference.affinity import affinity_output
        from wsss_lib.methods.registry import AffinityMethodConfig
        from wsss_lib.stages.refinement import AffinityStageConfig

        stage = AffinityStageConfig()
        backbone = replace(stage.backbone, name=args.backbone, weights="none")
        method = build_method("affinity", AffinityMethodConfig(stage.network, stage.loss), backbone, 0)
        network = method.cam_model().eval().to(device).to(memory_format=torch.channels_last)
        mean, std = method.normalization
        return {"": lambda: affinity_output(network, image, mean, std, True, device, autocast, True)}
    if part == "walk":
        from wsss_lib.ops.random_walk import propagate_to_edge

        grid = (math.ceil(height / 4), math.ceil(width / 4))
        generator = torch.Generator().manual_seed(0)
        edge = (torch.rand(grid, generator=generator) ** 4).to(device)
        cams = torch.rand(3, *grid, generator=generator).to(device)
        return {"": lambda: propagate_to_edge(cams, edge, 5, 10.0, 8)}
    if part == "crf":
        from wsss_lib.ops.crf import CRF_PRESETS, crf_labels, crf_softmax

        labels = np.random.default_rng(1).integers(0, 3, (height, width))
        logits = np.random.default_rng(2).random((args.classes, height, width)).astype(np.float32)
        probs = logits / logits.sum(axis=0, keepdims=True)
        timers = {}
        for name in args.crf:
            if CRF_PRESETS[name].unary == "labels":
                timers[name] = lambda name=name: crf_labels(image, labels, 3, name)
            else:
                timers[name] = lambda name=name: crf_softmax(image, probs, name)
        return timers
    if part == "io":
        from wsss_lib.evaluation.sweep import DEFAULT_THRESHOLDS, sweep_counts
        from wsss_lib.formats.cam_io import load_cam, save_cam

        folder = Path(tempfile.mkdtemp(prefix="wsss-bench-io-"))
        keys = np.array([1, 2, 3])
        hr_cam = np.random.default_rng(3).random((3, height, width)).astype(np.float32)
        cam = hr_cam[:, ::4, ::4].copy()
        gt = np.random.default_rng(4).integers(0, 4, (height, width)).astype(np.uint8)

        def io() -> None:
            save_cam(folder / "x.npz", keys, cam, hr_cam)
            record = load_cam(folder / "x.npz")
            sweep_counts(record.hr_cam, record.keys, gt, np.asarray(DEFAULT_THRESHOLDS), args.classes)

        return {"": io}
    raise ValueError(f"unknown part {part!r}; parts: {PARTS}")


def measure(part: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows of one part (run it in a fresh process: the CPU's peak memory is the process's)."""
    device = resolve_device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rows = []
    for label, fn in _timers(part, args, device).items():
        seconds = _median_seconds(fn, device, args.repeat)
        rows.append({"part": part, "crf": label, "backbone": args.backbone if part in ("tta", "seg", "affinity") else "",
                     "head": "v3+" if part == "seg" else "",
                     "scales": ",".join(f"{s:g}" for s in args.scales) if part in ("tta", "seg") else "",
                     "flip": True if part in ("tta", "seg", "affinity") else "",
                     "radius": 5 if part == "walk" else "", "exp_times": 8 if part == "walk" else "",
                     "image": f"{args.image[0]}x{args.image[1]}", "classes": args.classes, "device": device.type,
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
                     "amp": args.amp if device.type == "cuda" else "off", "threads": torch.get_num_threads(),
                     "repeat": args.repeat, "seconds_per_image": seconds, "peak_memory_mb": _peak_mb(device)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.bench.per_image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--backbone", default="resnest269e")
    parser.add_argument("--image", nargs=2, type=int, default=[500, 375], metavar=("W", "H"))
    parser.add_argument("--scales", nargs="+", type=float, default=[0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--classes", type=int, default=21, help="classes with background (VOC 21, COCO 81)")
    parser.add_argument("--crf", nargs="+", default=["label", "label_pseudo_mask", "deeplab_v2"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="fp16", choices=["off", "fp16", "bf16"], help="on CUDA (the paper's fp16)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="CSV to append to (default reports/bench/<device>.csv)")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # one part, in this process, as JSON
    args = parser.parse_args(argv)
    if args.single:
        print("ROWS " + json.dumps(measure(args.single, args)), flush=True)
        return 0
    device = resolve_device(args.device).type
    out = Path(args.out) if args.out else repo_root() / "reports" / "bench" / f"{device}.csv"
    passed = [a for a in (argv if argv is not None else sys.argv[1:])]
    rows = []
    for part in args.parts:
        done = subprocess.run([sys.executable, "-m", "wsss_lib.bench.per_image", *passed, "--single", part],
                              capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"per-image bench of part {part!r} failed:\n{done.stderr[-3000:]}")
        for row in json.loads(lines[-1][5:]):
            rows.append(row)
            print(f"{part}{' ' + row['crf'] if row['crf'] else ''} at {row['image']} on {row['device_name']}: "
                  f"{row['seconds_per_image']:.3f} s/image, peak {row['peak_memory_mb']:.0f} MB", flush=True)
    append_csv_rows(out, rows)
    print(f"appended {len(rows)} row(s) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
