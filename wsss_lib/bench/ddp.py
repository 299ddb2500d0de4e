"""Data-parallel scaling benchmark: ``python -m wsss_lib.bench.ddp --devices 1 2 [--device cuda] ...``.

Trains a method with the shared trainer (:func:`~wsss_lib.train.trainer.fit`, data loading included) on random
in-memory images for a fixed number of optimizer steps, once per ``--devices`` value: 1 in this process, ``N``
as ``torchrun`` processes started by :func:`~wsss_lib.train.distributed.launch` (gloo on CPU, NCCL on CUDA), as a
training stage with ``devices: N`` runs. Every run trains the same recipe: ``--batch`` images per forward pass,
``--accumulate`` forward passes per step. Reported per run: images/s of the training loop (rank 0's
``TrainResult.seconds``: every epoch's steps and evaluation), the wall time of the whole call, and the launcher's
overhead (wall time minus the loop: process start, imports, process group, model build, and each epoch's history
and checkpoint writes). One row per run is appended to
``reports/bench/ddp-<device>.csv``, so the ratios come from one invocation on one machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from wsss_lib.io import append_csv_rows
from wsss_lib.methods.registry import available_methods, build_method, method_config
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.paths import repo_root
from wsss_lib.train.distributed import launch, world
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.precision import resolve_device
from wsss_lib.train.trainer import TrainConfig, fit

__all__ = ["DDPBenchConfig", "run_once", "main"]


@dataclass(frozen=True)
class DDPBenchConfig:
    method: str = "cam"
    backbone: str = "tf_efficientnet_lite0"
    crop: int = 128
    batch: int = 8
    accumulate: int = 2
    steps: int = 6
    num_classes: int = 20
    device: str = "auto"
    amp: str = "off"
    num_workers: int = 0


class RandomImages(torch.utils.data.Dataset):
    """``n`` random images with random multi-labels (speed, not quality)."""

    def __init__(self, n: int, size: int, num_classes: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.labels = (torch.rand(n, num_classes, generator=g) > 0.8).float()
        self.labels[:, 0] = 1.0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"id": str(i), "image": self.images[i], "mask": torch.zeros(self.images.shape[-2:], dtype=torch.long),
                "label": self.labels[i]}


def _train(cfg: DDPBenchConfig, devices: int, out_dir: Path) -> None:
    """Train ``cfg.steps`` steps (one epoch) here or as one rank; rank 0 writes the loop's seconds."""
    backbone = BackboneConfig(name=cfg.backbone, weights="none")
    torch.manual_seed(0)  # as wsss_lib.bench: methods with an ordinary classifier get an untrained one
    method = build_method(cfg.method, method_config(cfg.method), backbone, cfg.num_classes, untrained_ordinary=True)
    images = cfg.steps * cfg.batch * cfg.accumulate
    train = TrainConfig(epochs=1, batch_size=cfg.batch, num_workers=cfg.num_workers, device=cfg.device, amp=cfg.amp,
                        eval_every=0, devices=devices)
    result = fit(method, RandomImages(images, cfg.crop, cfg.num_classes), None, train,
                 OptimConfig(lr=0.01, accumulate_steps=cfg.accumulate), out_dir, resume=False, progress=False)
    if world().main:
        (out_dir / "seconds.json").write_text(json.dumps({"seconds": result.seconds, "images": images}))


def run_once(cfg: DDPBenchConfig, devices: int) -> dict:
    """One run of ``cfg`` on ``devices`` processes: its row."""
    device = resolve_device(cfg.device)
    with tempfile.TemporaryDirectory(prefix="wsss-bench-ddp-") as folder:
        out = Path(folder)
        started = time.perf_counter()
        if devices == 1:
            _train(cfg, 1, out)
        else:
            launch(functools.partial(_train, cfg, devices, out), devices,
                   backend="nccl" if device.type == "cuda" else "gloo", progress=False)
        wall = time.perf_counter() - started
        loop = json.loads((out / "seconds.json").read_text())
    return {**asdict(cfg), "device": str(device), "devices": devices, "images": loop["images"],
            "loop_s": round(loop["seconds"], 2), "wall_s": round(wall, 2),
            "images_per_s": round(loop["images"] / loop["seconds"], 2),
            "overhead_s": round(wall - loop["seconds"], 2), "host": platform.node(), "torch": torch.__version__}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--method", default="cam", choices=available_methods("classifier"))
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="images per forward pass")
    parser.add_argument("--accumulate", type=int, default=2, help="forward passes per optimizer step")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="off", choices=["off", "fp16", "bf16"])
    parser.add_argument("--out", default=None, help="CSV to append to (default reports/bench/ddp-<device>.csv)")
    args = parser.parse_args(argv)
    cfg = DDPBenchConfig(method=args.method, backbone=args.backbone, crop=args.crop, batch=args.batch,
                         accumulate=args.accumulate, steps=args.steps, device=args.device, amp=args.amp)
    rows = []
    for devices in args.devices:
        row = run_once(cfg, devices)
        rows.append(row)
        print(f"devices={devices}: {row['images_per_s']} images/s in the loop ({row['loop_s']} s), wall "
              f"{row['wall_s']} s, launcher and set-up {row['overhead_s']} s", flush=True)
    base = rows[0]["images_per_s"]
    for row in rows:
        row["speedup_vs_first"] = round(row["images_per_s"] / base, 3)
    out = Path(args.out) if args.out else repo_root() / "reports" / "bench" / f"ddp-{rows[0]['device'].split(':')[0]}.csv"
    append_csv_rows(out, rows)
    print(f"appended {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
