"""One prepared GPU check: ``make gpu-check`` (``python -m wsss_lib.bench.gpu_check``), which writes everything under
``reports/bench/``. Measured on an H200 (2026-12-04, ``reports/bench/gpu-check-cuda.md``): the eight training rows
without compile take about 50 s, the compile row 288 s (compilation), the study rows, the walk and the per-image rows
at 500 x 375 about 2 min, those at 640 x 480 about 1 min, and the dry run over 95 s for 3 of its 12 notebooks (about
25 s each): all of it is about 13-15 min, more than one 10-minute command. ``--no-compile`` drops the compile row.
Built for a time-limited lease: every row is saved as soon as it is measured, ``--budget`` skips the training rows
left once it is spent (and says so), the dry run runs under ``--dry-run-timeout``, and the summary is written
whatever happened.

1. **Training throughput at paper scale** (ResNeSt-269, crop 512, batch 16; :mod:`wsss_lib.bench.throughput`): images/s and
   peak memory of a CAM step in fp32, fp16 and bf16, each in NCHW and channels_last, and fp16 + channels_last with
   ``torch.compile``; of a P-NOC step (its two networks and three phases) in the official recipe and this code's
   default. The **official recipe** (the official code: fp16 autocast, NCHW, no compile) and **this code's
   default** (the paper profiles: fp16 autocast, channels_last, no compile) are measured in the same run, so the
   speed-up is one ratio (goal: >= 1.3x images/s at no more peak memory).
2. **A paper-voc dry run on this device** (``--dry-run``, the profile's own architectures; its manifest records the
   device): catches device, AMP, pinned-memory and worker errors that no CPU run can.
3. **The random walk at 1024 px** (:mod:`wsss_lib.bench.random_walk`, the sparse walk).
4. **The study's scale** (tf_efficientnet_lite0, crop 160, batch 16): CAM and P-NOC steps in this code's default, to
   turn the study's CPU hours into GPU minutes.
5. **The per-image stages at paper scale** (:mod:`wsss_lib.bench.per_image`): ResNeSt-269's TTA CAMs (4 scales +
   flip), DeepLab's TTA, the affinity network and the random walk, the dense CRFs and the file IO, at VOC's
   500 x 375 and COCO's 640 x 480 (81 classes), and the CRFs and the walk at 512 x 512: the GPU-hours column of the
   dry run's plan (:mod:`wsss_lib.runner.plan`).

Order on the device: training rows, study rows, walk, per-image rows, dry run (the longest, last, under its own
timeout).

Rows are appended to ``reports/bench/<device>.csv`` and ``reports/bench/rw-<device>.csv``; the summary with the
ratios goes to ``reports/bench/gpu-check-<device>.md``. ``--quick`` runs the same steps at toy sizes (the wiring
check of this script on a CPU: lite0, crop 64, batch 2, random walk at 128 px).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from wsss_lib.bench.throughput import BenchConfig, benchmark
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
    ("pnoc", "fp16", False, False), ("pnoc", "fp16", True, False),
    ("cam", "fp16", True, True),
)
"""The training rows: every precision in both layouts for CAM, P-NOC official vs default, then compile (slowest to
set up, so last: a spent budget drops it first)."""
STUDY_ROWS: tuple[str, ...] = ("cam", "pnoc")
"""Methods timed at the study's scale (this code's default: fp16, channels_last)."""


def _label(row: dict) -> str:
    return (f"{row['method']} {row['amp']} {'channels_last' if row['channels_last'] else 'NCHW'}"
            + (" compile" if row["compile"] else ""))


def _find(rows: list[dict], method: str, amp: str, channels_last: bool, compile: bool) -> dict:
    return next(r for r in rows if (r["method"], r["amp"], r["channels_last"], r["compile"])
                == (method, amp, channels_last, compile))


def summary(rows: list[dict], device: str, dry_run: str, rw: str, study: list[dict] | None = None,
            skipped: list[str] | None = None, per_image: str = "", dropped: list[str] | None = None) -> str:
    """The Markdown summary: one line per training row, the default/official ratios, the study rows, the dry run,
    the walk, the per-image rows. Rows the budget skipped and rows left out on request (``dropped``) are named; a
    ratio whose rows are missing says so."""
    lines = [f"# GPU check on {rows[0]['device_name'] if rows else device} ({device}), "
             f"{time.strftime('%Y-%m-%d %H:%M')}", ""]
    if rows:
        lines += [f"Training steps: {rows[0]['backbone']}, crop {rows[0]['crop']}, batch {rows[0]['batch']} "
                  f"(wsss_lib.bench, median of {rows[0]['steps']} timed steps after {rows[0]['warmup']} warm-up).", "",
                  "| configuration | images/s | peak memory (MB) |", "|---|---|---|"]
        lines += [f"| {_label(r)} | {r['train_images_per_s']:.2f} | {r['train_peak_memory_mb']:.0f} |" for r in rows]
    lines += [f"- not measured (budget spent): {name}" for name in skipped or []]
    lines += [f"- not measured (--no-compile): {name}" for name in dropped or []]
    lines += ["", "This code's default (fp16, channels_last) against the official recipe (fp16, NCHW), same run:", ""]
    for method in sorted({m for m, *_ in TRAIN_ROWS}):
        try:
            official, default = _find(rows, method, "fp16", False, False), _find(rows, method, "fp16", True, False)
        except StopIteration:
            lines.append(f"- {method}: not measured")
            continue
        speed = default["train_images_per_s"] / official["train_images_per_s"]
        memory = default["train_peak_memory_mb"] / official["train_peak_memory_mb"]
        lines.append(f"- {method}: {speed:.2f}x images/s, {memory:.2f}x peak memory "
                     f"(goal >= 1.3x at <= 1.0x: {'met' if speed >= 1.3 and memory <= 1.0 else 'not met'})")
    if study:
        lines += ["", f"The study's scale: {study[0]['backbone']}, crop {study[0]['crop']}, batch {study[0]['batch']}, "
                  "fp16, channels_last:", "", "| method | images/s | peak memory (MB) |", "|---|---|---|"]
        lines += [f"| {r['method']} | {r['train_images_per_s']:.1f} | {r['train_peak_memory_mb']:.0f} |" for r in study]
    lines += ["", f"Random walk: {rw}", "", f"Per-image stages: {per_image or 'not run'}", "", f"Dry run: {dry_run}", ""]
    return "\n".join(lines)


def _dry_run_outcome(returncode: int | None, seconds: float, timeout: float, manifest_path: Path) -> str:
    """One line on the dry run: its exit status (or the timeout), and each notebook's status from its manifest."""
    head = (f"exit status {returncode} in {seconds:.0f} s" if returncode is not None
            else f"stopped by its timeout after {timeout:.0f} s")
    try:
        notebooks = json.loads(manifest_path.read_text())["notebooks"]
    except (OSError, ValueError, KeyError):
        return f"{head}; no manifest at {manifest_path}"
    states = ", ".join(f"{stem[:2]} {entry.get('status', '?')}"
                       + (f" ({entry['seconds']:.0f} s)" if "seconds" in entry else "")
                       for stem, entry in sorted(notebooks.items()))
    failed = [f"{stem}: {entry.get('error', '')}" for stem, entry in sorted(notebooks.items())
              if entry.get("status") == "failed"]
    return f"{head}; notebooks: {states}" + "".join(f"; FAILED {f}" for f in failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes: the wiring check of this script on a CPU")
    parser.add_argument("--no-dry-run", action="store_true", help="skip step 2 (the paper-voc dry run)")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the torch.compile training row (its compilation alone took 288 s on an H200)")
    parser.add_argument("--budget", type=float, default=float("inf"),
                        help="seconds for the training rows; the rows left when it is spent are skipped and named")
    parser.add_argument("--dry-run-timeout", type=float, default=None,
                        help="seconds before the dry run is stopped (its manifest still says how far it got)")
    parser.add_argument("--out", default=None, help="folder of the CSVs and the summary (default reports/bench)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else repo_root() / "reports" / "bench"
    size = (dict(backbone="tf_efficientnet_lite0", crop=64, batch=2, warmup=1, steps=1) if args.quick else
            dict(backbone="resnest269e", crop=512, batch=16, warmup=3, steps=5))
    study_size = (dict(size) if args.quick else
                  dict(backbone="tf_efficientnet_lite0", crop=160, batch=16, warmup=3, steps=10))
    device = args.device
    rows, skipped, dropped = [], [], []
    begun = time.perf_counter()
    for method, amp, channels_last, compile in TRAIN_ROWS:
        label = _label(dict(method=method, amp=amp, channels_last=channels_last, compile=compile))
        if compile and args.no_compile:
            dropped.append(label)
            print(f"{label}: skipped (--no-compile)", flush=True)
            continue
        if time.perf_counter() - begun > args.budget:
            skipped.append(label)
            print(f"{label}: skipped, the budget of {args.budget:.0f} s is spent", flush=True)
            continue
        started = time.perf_counter()
        row = benchmark(BenchConfig(method=method, amp=amp, channels_last=channels_last, compile=compile,
                                    device=args.device, **size))
        rows.append(row)
        device = row["device"] if row["device"] != "auto" else args.device
        append_csv_rows(out / f"{device}.csv", [row])  # saved now: a lease that ends early keeps what was measured
        print(f"{label}: {row['train_images_per_s']:.2f} images/s, {row['train_peak_memory_mb']:.0f} MB "
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    study = []
    for method in STUDY_ROWS:
        row = benchmark(BenchConfig(method=method, amp="fp16", channels_last=True, device=args.device, **study_size))
        study.append(row)
        append_csv_rows(out / f"{device}.csv", [row])
        print(f"study scale, {method}: {row['train_images_per_s']:.1f} images/s", flush=True)

    rw_out = out / f"rw-{device}.csv"
    image = "128" if args.quick else "1024"
    walk = subprocess.run([sys.executable, "-m", "wsss_lib.bench.random_walk", "--device", args.device, "--image", image,
                           "--impl", "sparse", "--out", str(rw_out)], cwd=repo_root(), capture_output=True, text=True)
    rw = (f"sparse walk at {image} px: exit status {walk.returncode}; "
          + (walk.stdout.strip().splitlines() or walk.stderr.strip().splitlines() or ["no output"])[-1]
          + f" ({rw_out.name})")
    print(rw, flush=True)
    per_image_ok = True
    sizes = ([["64", "48", "21"]] if args.quick else [["500", "375", "21"], ["640", "480", "81"], ["512", "512", "21"]])
    for width, height, classes in sizes:
        parts = (["crf", "walk"] if (width, height) == ("512", "512") else
                 ["tta", "seg", "affinity", "walk", "crf", "io"])
        command = [sys.executable, "-m", "wsss_lib.bench.per_image", "--device", args.device, "--image", width, height,
                   "--classes", classes, "--parts", *parts, "--out", str(out / f"{device}.csv")]
        if args.quick:
            command += ["--backbone", "tf_efficientnet_lite0", "--scales", "0.5", "1.0", "--repeat", "1"]
        done = subprocess.run(command, cwd=repo_root(), capture_output=True, text=True)
        per_image_ok &= done.returncode == 0
        print(done.stdout.strip() or done.stderr.strip()[-2000:], flush=True)
    per_image = f"per-image rows at {', '.join(f'{w}x{h}' for w, h, _ in sizes)}: " + (
        f"appended to {device}.csv" if per_image_ok else "FAILED (see the output above)")
    atomic_write_text(out / f"gpu-check-{device}.md", summary(rows, device, "not run yet", rw, study, skipped,
                                                             per_image, dropped))

    dry_ok = True
    if args.no_dry_run:
        dry = "skipped (--no-dry-run)"
    else:
        started = time.perf_counter()
        try:
            code = subprocess.run([sys.executable, "-m", "wsss_lib.reproduce", "--profile", "paper-voc", "--dry-run",
                                   "--force"], cwd=repo_root(), timeout=args.dry_run_timeout).returncode
        except subprocess.TimeoutExpired:
            code = None
        dry_ok = code == 0
        dry = (f"paper-voc --dry-run on {device} (reports/paper-voc-dry/manifest.json): "
               + _dry_run_outcome(code, time.perf_counter() - started, args.dry_run_timeout or 0,
                                  repo_root() / "reports" / "paper-voc-dry" / "manifest.json"))
        print(dry, flush=True)

    text = summary(rows, device, dry, rw, study, skipped, per_image, dropped)
    atomic_write_text(out / f"gpu-check-{device}.md", text)
    print(text)
    return 0 if dry_ok and walk.returncode == 0 and per_image_ok and not skipped else 1


if __name__ == "__main__":
    raise SystemExit(main())
