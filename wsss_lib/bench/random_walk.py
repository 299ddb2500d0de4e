"""Random-walk benchmark: ``python -m wsss_lib.bench.random_walk [--device cuda] [--image 256 512 1024] [--impl sparse dense]``.

Times one image's random walk (affinity weights from a boundary map, transition matrix, 2^exp_times steps; 3
class maps) for the sparse walk of ``wsss_lib.ops.random_walk`` and the official dense formulation (the
``HW x HW`` matrix squared ``exp_times`` times), on the stride-4 grid of square images of the given sides (the
smoke images are 256 px: 1x, 2x, 4x = 256, 512, 1024). Each measurement runs in a fresh subprocess, so the peak
memory is that run's own: CUDA ``max_memory_allocated``, or on CPU the growth of the peak resident set size
(``ru_maxrss``) over the process's size before the walk. A dense walk whose matrices (3 x 4 (HW)^2 bytes) do not
fit in the available memory is not run and says so; one that exceeds ``--dense-budget`` seconds stops after the
squarings done so far and its time is extrapolated (marked in the ``note`` column). Rows are appended to
``reports/bench/rw-<device>.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from wsss_lib.io import append_csv_rows
from wsss_lib.ops.random_walk import affinity_weights, dense_transition, random_walk, transition_bytes
from wsss_lib.paths import repo_root
from wsss_lib.train.precision import resolve_device

__all__ = ["measure", "main"]


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info.get("MemAvailable", 0)


def measure(impl: str, grid: int, device: torch.device, radius: int = 5, beta: float = 10.0, exp_times: int = 8,
            classes: int = 3, dense_budget: float = 60.0) -> dict:
    """One walk of ``impl`` ("sparse" or "dense") on a ``grid x grid`` map; run it in a fresh process."""
    torch.manual_seed(0)
    edge = (torch.rand(grid, grid, device=device) ** 4).contiguous()
    cams = torch.rand(classes, grid, grid, device=device)
    row = {"impl": impl, "grid": grid, "image_side": 4 * grid, "radius": radius, "exp_times": exp_times,
           "device": str(device), "note": ""}
    dense_need = 3 * transition_bytes(grid, grid, radius)["dense"]
    if impl == "dense" and dense_need > _available_bytes(device):
        row.update(seconds=float("nan"), peak_memory_mb=float("nan"),
                   note=f"not run: needs ~{dense_need / 2**30:.1f} GiB, {_available_bytes(device) / 2**30:.1f} GiB available")
        return row
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    v = cams * (1 - edge)
    weights = affinity_weights(edge, radius, beta)
    if impl == "sparse":
        random_walk(v, weights, radius, exp_times)
    else:
        transition = dense_transition(weights, radius)
        squarings_started, done = time.perf_counter(), 0
        for done in range(1, exp_times + 1):
            transition = transition @ transition
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if time.perf_counter() - started > dense_budget and done < exp_times:
                per = (time.perf_counter() - squarings_started) / done
                started -= per * (exp_times - done)  # extrapolate the remaining squarings
                row["note"] = f"time extrapolated from {done}/{exp_times} squarings"
                break
        (v.flatten(1) @ transition).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    row["seconds"] = time.perf_counter() - started
    if device.type == "cuda":
        row["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        row["peak_memory_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.bench.random_walk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=int, nargs="+", default=[256, 512, 1024], help="square image sides (px)")
    parser.add_argument("--impl", nargs="+", default=["sparse", "dense"], choices=["sparse", "dense"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--exp-times", type=int, default=8)
    parser.add_argument("--dense-budget", type=float, default=60.0, help="seconds before a dense walk is extrapolated")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="CSV to append to (default reports/bench/rw-<device>.csv)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.single:  # child process: one measurement, one JSON line
        row = measure(args.impl[0], args.image[0] // 4, device, exp_times=args.exp_times, dense_budget=args.dense_budget)
        print(json.dumps(row))
        return 0
    rows = []
    for side in args.image:
        for impl in args.impl:
            command = [sys.executable, "-m", "wsss_lib.bench.random_walk", "--single", "--impl", impl, "--image", str(side),
                       "--device", args.device, "--exp-times", str(args.exp_times), "--dense-budget", str(args.dense_budget)]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
            if done.returncode != 0:
                row = {"impl": impl, "image_side": side, "grid": side // 4, "device": str(device), "seconds": float("nan"),
                       "peak_memory_mb": float("nan"), "note": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
            else:
                row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    out = Path(args.out) if args.out else repo_root() / "reports" / "bench" / f"rw-{device.type}.csv"
    append_csv_rows(out, rows)
    print(f"appended {len(rows)} row(s) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
