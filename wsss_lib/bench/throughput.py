"""Throughput benchmark: ``python -m wsss_lib.bench [--device cuda] [--backbone resnest269e] ...``.

Times training steps of a method (images/s; forward, backward and optimizer step of every phase, through
the same ``Method.losses`` the trainer calls) and TTA CAM inference (images/s: 4 scales x 2 flips per image)
on random data of the requested size, and records peak memory: CUDA ``max_memory_allocated`` or, on CPU,
the process's peak resident set size (``ru_maxrss``, which never decreases within a process). Warm-up steps
are excluded; the median of the timed steps is reported. One row per configuration is appended to
``reports/bench/<device>.csv`` so ratios are measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from wsss_lib.inference.tta import TTAConfig, tta_cams
from wsss_lib.io import append_csv_rows
from wsss_lib.methods.base import StepInfo
from wsss_lib.methods.registry import available_methods, build_method, method_config
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.paths import repo_root
from wsss_lib.train.optim import OptimConfig, build_optimizer
from wsss_lib.train.precision import autocast_dtype, resolve_device

__all__ = ["BenchConfig", "benchmark", "main"]


@dataclass(frozen=True)
class BenchConfig:
    method: str = "cam"
    backbone: str = "tf_efficientnet_lite0"
    crop: int = 224
    output_stride: int = 16
    batch: int = 8
    num_classes: int = 20
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = True
    compile: bool = False
    """``torch.compile`` every network of the method (default mode); the first warm-up step includes compiling."""
    warmup: int = 2
    steps: int = 5
    tta_image: int = 0
    """Side of the square image for TTA inference timing (0 = skip)."""
    tta_images: int = 3


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(cfg: BenchConfig) -> dict:
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    amp = autocast_dtype(cfg.amp, device)
    torch.manual_seed(0)
    method = build_method(cfg.method, method_config(cfg.method), BackboneConfig(name=cfg.backbone, output_stride=cfg.output_stride),
                          cfg.num_classes,
                          untrained_ordinary=True).to(device)
    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if cfg.compile:
        for name, child in list(method.named_children()):
            setattr(method, name, torch.compile(child))
    optimizers = {p: build_optimizer(method.param_groups(p, 0.01, 1e-4), OptimConfig(lr=0.01), 10_000)
                  for p in method.phases}
    scalers = {p: torch.amp.GradScaler("cuda", enabled=amp == torch.float16) for p in method.phases}
    image = torch.randn(cfg.batch, 3, cfg.crop, cfg.crop, device=device)
    if cfg.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    label = (torch.rand(cfg.batch, cfg.num_classes, device=device) < 0.15).float()
    label[torch.arange(cfg.batch), torch.randint(cfg.num_classes, (cfg.batch,))] = 1.0
    batch = {"image": image, "label": label, "mask": torch.zeros(cfg.batch, cfg.crop, cfg.crop, dtype=torch.long, device=device)}
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    method.set_train_mode()
    times = []
    for step in range(cfg.warmup + cfg.steps):
        _sync(device)
        started = time.perf_counter()
        cache: dict = {}
        for phase in method.phases:
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                terms = method.losses(phase, batch, StepInfo(step=step, total_steps=100, epoch=0), cache)
            if terms:
                scalers[phase].scale(sum(terms.values())).backward()
        for phase in method.phases:
            scalers[phase].step(optimizers[phase])
            scalers[phase].update()
            optimizers[phase].zero_grad(set_to_none=True)
        _sync(device)
        if step >= cfg.warmup:
            times.append(time.perf_counter() - started)
    step_s = statistics.median(times)
    row = {**asdict(cfg), "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
           "train_step_s": step_s, "train_step_min_s": min(times), "train_images_per_s": cfg.batch / step_s,
           "train_peak_memory_mb": _peak_memory_mb(device)}
    if cfg.tta_image:
        model = method.cam_model()
        mean, std = method.normalization
        picture = np.random.default_rng(0).integers(0, 255, (cfg.tta_image, cfg.tta_image, 3), dtype=np.uint8)
        keys = np.array([1, 2])
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        tta_cams(model, picture, keys, mean, std, TTAConfig(), device, amp, cfg.channels_last)  # warm-up
        _sync(device)
        started = time.perf_counter()
        for _ in range(cfg.tta_images):
            tta_cams(model, picture, keys, mean, std, TTAConfig(), device, amp, cfg.channels_last)
        _sync(device)
        row.update({"tta_images_per_s": cfg.tta_images / (time.perf_counter() - started),
                    "tta_peak_memory_mb": _peak_memory_mb(device)})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", nargs="+", default=["cam"], choices=available_methods("classifier"))
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--output-stride", type=int, default=16, choices=[8, 16, 32])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--num-classes", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", nargs="+", default=["off"], choices=["off", "fp16", "bf16"])
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the method's networks")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--tta-image", type=int, default=0, help="square image side for TTA timing (0 = skip)")
    parser.add_argument("--out", default=None, help="CSV to append to (default reports/bench/<device>.csv)")
    args = parser.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    rows = []
    for method in args.method:
        for amp in args.amp:
            cfg = BenchConfig(method=method, backbone=args.backbone, crop=args.crop, output_stride=args.output_stride,
                              batch=args.batch,
                              num_classes=args.num_classes, device=args.device, amp=amp,
                              channels_last=not args.no_channels_last, compile=args.compile, warmup=args.warmup,
                              steps=args.steps,
                              tta_image=args.tta_image)
            row = benchmark(cfg)
            rows.append(row)
            print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    device = resolve_device(args.device).type
    out = Path(args.out) if args.out else repo_root() / "reports" / "bench" / f"{device}.csv"
    append_csv_rows(out, rows)
    if len(rows) > 1:
        base = rows[0]["train_step_s"]
        print("step-time ratios (same run):", {f"{r['method']}/{r['amp']}": round(r["train_step_s"] / base, 2) for r in rows})
    print(f"appended {len(rows)} row(s) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
