"""One prepared GPU check: ``make gpu-check`` (``python -m wsss_lib.gpu_check``), meant to finish within about
8 minutes on one GPU and to write everything under ``reports/bench/``.

1. **Training throughput at paper scale** (ResNeSt-269, crop 512, batch 16; :mod:`wsss_lib.bench`): images/s and
   peak memory of a CAM step in fp32, fp16 and bf16, each in NCHW and channels_last, and fp16 + channels_last with
   ``torch.compile``; of a P-NOC step (its two networks and three phases) in the official recipe and this code's
   default. The **official recipe** (the official code: fp16 autocast, NCHW, no compile) and **this code's
   default** (the paper profiles: fp16 autocast, channels_last, no compile) are measured in the same run, so the
   speed-up is one ratio (goal: >= 1.3x images/s at no more peak memory).
2. **A paper-voc dry run on this device** (``--dry-run``, the profile's own architectures; its manifest records the
   device): catches device, AMP, pinned-memory and worker errors that no CPU run can.
3. **The random walk at 1024 px** (:mod:`wsss_lib.bench_rw`, the sparse walk).

Rows are appended to ``reports/bench/<device>.csv`` and ``reports/bench/rw-<device>.csv``; the summary with the
ratios goes to ``reports/bench/gpu-check-<device>.md``. ``--quick`` runs the same steps at toy sizes (the wiring
check of this script on a CPU: lite0, crop 64, batch 2, random walk at 128 px).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from wsss_lib.bench import BenchConfig, benchmark
from wsss_lib.io import append_csv_rows, atomic_write_text
from wsss_lib.paths import repo_root

__all__ = ["TRAIN_ROWS", "OFFICIAL", "DEFAULT", "main"]

# (method, amp, channels_last, compile)
OFFICIAL = ("cam", "fp16", False, False)
DEFAULT = ("cam", "fp16", True, False)
TRAIN_ROWS: tuple[tuple[str, str, bool, bool], ...] = (
    ("cam", "off", False, False), ("cam", "off", True, False),
    OFFICIAL, DEFAULT,
    ("cam", "bf16", False, False), ("cam", "bf16", True, False),
    ("cam", "fp16", True, True),
    ("pnoc", "fp16", False, False), ("pnoc", "fp16", True, False),
)
"""The training rows: every precision in both layouts for CAM, compile where it may help, P-NOC official vs default."""


def _label(row: dict) -> str:
    return (f"{row['method']} {row['amp']} {'channels_last' if row['channels_last'] else 'NCHW'}"
            + (" compile" if row["compile"] else ""))


def _find(rows: list[dict], method: str, amp: str, channels_last: bool, compile: bool) -> dict:
    return next(r for r in rows if (r["method"], r["amp"], r["channels_last"], r["compile"])
                == (method, amp, channels_last, compile))


def summary(rows: list[dict], device: str, dry_run: str, rw: str) -> str:
    """The Markdown summary: one line per training row, the default/official ratios, the dry run, the walk."""
    lines = [f"# GPU check on {rows[0]['device_name']} ({device}), {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Training steps: {rows[0]['backbone']}, crop {rows[0]['crop']}, batch {rows[0]['batch']} "
             f"(wsss_lib.bench, median of {rows[0]['steps']} timed steps after {rows[0]['warmup']} warm-up).", "",
             "| configuration | images/s | peak memory (MB) |", "|---|---|---|"]
    lines += [f"| {_label(r)} | {r['train_images_per_s']:.2f} | {r['train_peak_memory_mb']:.0f} |" for r in rows]
    lines += ["", "This code's default (fp16, channels_last) against the official recipe (fp16, NCHW), same run:", ""]
    for method in sorted({r["method"] for r in rows}):
        official, default = _find(rows, method, "fp16", False, False), _find(rows, method, "fp16", True, False)
        speed = default["train_images_per_s"] / official["train_images_per_s"]
        memory = default["train_peak_memory_mb"] / official["train_peak_memory_mb"]
        lines.append(f"- {method}: {speed:.2f}x images/s, {memory:.2f}x peak memory "
                     f"(goal >= 1.3x at <= 1.0x: {'met' if speed >= 1.3 and memory <= 1.0 else 'not met'})")
    lines += ["", f"Dry run: {dry_run}", "", f"Random walk: {rw}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes: the wiring check of this script on a CPU")
    parser.add_argument("--no-dry-run", action="store_true", help="skip step 2 (the paper-voc dry run)")
    parser.add_argument("--out", default=None, help="folder of the CSVs and the summary (default reports/bench)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else repo_root() / "reports" / "bench"
    size = (dict(backbone="tf_efficientnet_lite0", crop=64, batch=2, warmup=1, steps=1) if args.quick else
            dict(backbone="resnest269e", crop=512, batch=16, warmup=3, steps=5))
    rows = []
    for method, amp, channels_last, compile in TRAIN_ROWS:
        started = time.perf_counter()
        row = benchmark(BenchConfig(method=method, amp=amp, channels_last=channels_last, compile=compile,
                                    device=args.device, **size))
        rows.append(row)
        print(f"{_label(row)}: {row['train_images_per_s']:.2f} images/s, {row['train_peak_memory_mb']:.0f} MB "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    device = rows[0]["device"] if rows[0]["device"] != "auto" else args.device
    append_csv_rows(out / f"{device}.csv", rows)

    if args.no_dry_run:
        dry = "skipped (--no-dry-run)"
    else:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "wsss_lib.reproduce", "--profile", "paper-voc", "--dry-run",
                               "--force"], cwd=repo_root())
        dry = (f"paper-voc --dry-run on {device}: exit status {done.returncode} in {time.perf_counter() - started:.0f} s "
               "(reports/paper-voc-dry/manifest.json)")
        print(dry, flush=True)

    rw_out = out / f"rw-{device}.csv"
    image = "128" if args.quick else "1024"
    walk = subprocess.run([sys.executable, "-m", "wsss_lib.bench_rw", "--device", args.device, "--image", image,
                           "--impl", "sparse", "--out", str(rw_out)], cwd=repo_root(), capture_output=True, text=True)
    rw = (f"sparse walk at {image} px: exit status {walk.returncode}; "
          + (walk.stdout.strip().splitlines() or ["no output"])[-1] + f" ({rw_out.name})")
    print(rw, flush=True)

    text = summary(rows, device, dry, rw)
    atomic_write_text(out / f"gpu-check-{device}.md", text)
    print(text)
    return 0 if (args.no_dry_run or "exit status 0" in dry) and walk.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
