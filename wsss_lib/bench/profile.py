"""Where a run's wall time goes: ``python -m wsss_lib.bench.profile`` (``make profile``).

Runs the real stages of one row of a profile's notebook, in a fresh work directory, under a
:class:`wsss_lib.timing.Recorder`, and splits its wall time into the sections the code marks (:mod:`wsss_lib.timing`):
the trainer's ``data`` (waiting for the next batch and moving it), ``forward``, ``backward``, ``optimizer``,
``checks`` (the non-finite guards), ``eval`` (the per-epoch quick mIoU) and ``checkpoint``; every per-image stage's
``forward``, ``read``, ``write``, ``count``, ``crf`` and ``walk``; each stage's ``other``. Targets:

- ``cam``: notebook 01's CAM row, seed 0: train the classifier, TTA CAMs of the evaluation split, the threshold
  sweep and the region counts (the "study CAM run");
- ``ordinary``: notebook 01's ordinary classifier (RandAugment + LS), trained once and shared by OC-CSE, P-OC, P-NOC;
- ``pnoc``: notebook 05's P-NOC row, seed 0, without label smoothing (its ordinary classifier is trained untimed
  first, or reused from the profile's ``base`` folder);
- ``poc``, ``occse``, ``puzzle``: the other priors rows, as ``pnoc``/``cam``.

Each setting variant (``--variant LABEL:NAME=VALUE,...``) runs once per repetition, the variants interleaved
(``A B A B ...``), each in its own work directory, so variants are measured side by side on the same machine in one
run; the dataset is generated once, untimed, and linked into each. Each run also records what it produced (a digest
of the trained weights and the TTA mIoU), so a variant that changes a number shows it. Writes ``<out>/profile-<profile>.csv`` (one row
per run and section, appended as each run ends) and ``<out>/profile-<profile>.md`` (this command's runs so far, rewritten
as each ends: median seconds per section and variant, the spread of the end-to-end time, and each variant's ratio to the
first).

``--set NAME=VALUE`` changes a parameter of the notebook for every variant (``classifier.train.epochs=1`` for a short
look); both take the runner's dotted names (``runtime.num_workers=0``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from wsss_lib import timing
from wsss_lib.config import apply_overrides, load_profile
from wsss_lib.io import append_csv_rows, atomic_write_text
from wsss_lib.paths import repo_root
from wsss_lib.paths import work_dir as default_work_dir
from wsss_lib.provenance import code_state, machine

__all__ = ["TARGETS", "Variant", "profile_run", "report", "main"]

TARGETS = {"cam": ("01_cam_baseline", "cam"), "ordinary": ("01_cam_baseline", "ordinary"),
           "puzzle": ("02_puzzle_cam", "puzzle"), "occse": ("03_oc_cse", "occse"), "poc": ("04_p_oc", "poc"),
           "pnoc": ("05_p_noc", "pnoc")}
"""Target name -> (the notebook whose parameters it uses, the method it trains)."""


class Variant:
    """A label and the dotted parameter overrides it runs with (``"workers0:runtime.num_workers=0"``)."""

    def __init__(self, text: str):
        from wsss_lib.runner.overrides import parse_override

        label, _, settings = text.partition(":")
        if not label:
            raise argparse.ArgumentTypeError(f"a variant is LABEL[:NAME=VALUE,...], got {text!r}")
        self.label = label
        self.overrides = dict(parse_override(s) for s in settings.split(",") if s) if settings else {}

    def __repr__(self) -> str:
        return f"Variant({self.label!r}, {self.overrides})"


def _configs(profile: str, notebook: str, overrides: dict[str, Any]):
    """The typed stage configs notebook ``notebook`` builds under ``profile`` with ``overrides`` (dotted)."""
    from wsss_lib.runner.notebooks import notebook_defaults, notebook_parameters
    from wsss_lib.stages.parameters import PARAMETER_TYPES, notebook_configs

    path = repo_root() / "notebooks" / f"{notebook}.ipynb"
    params = {**notebook_defaults(path), **notebook_parameters(load_profile(profile), path, None)}
    params = apply_overrides(params, overrides, where="bench.profile --set/--variant")
    stage = {k: v for k, v in params.items() if k in PARAMETER_TYPES and k != "runtime"}
    return notebook_configs(notebook, dataset=params["dataset"], data_root=params.get("data_root", ""),
                            runtime=params["runtime"], overrides=params.get("overrides") or {}, **stage)


def _link_shared(base: Path, work: Path) -> None:
    """The dataset, its label cache and the ordinary classifiers of ``base`` linked into ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("data", "cache"):
        if (base / name).exists() and not (work / name).exists():
            (work / name).symlink_to(base / name, target_is_directory=True)
    for stage in (base / "classifier").glob("cam-ls*"):
        (work / "classifier").mkdir(exist_ok=True)
        (work / "classifier" / stage.name).symlink_to(stage, target_is_directory=True)


def weights_digest(state: dict) -> str:
    """A digest of a state dict's tensors (names, shapes, dtypes, values; not ``torch.save``'s bytes, which differ
    between two saves of the same weights): equal digests = bit-identical weights."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def profile_run(profile: str, target: str, overrides: dict[str, Any], work: Path,
                base: Path) -> tuple[timing.Recorder, dict[str, Any]]:
    """Run ``target`` (a :data:`TARGETS` name) of ``profile`` in ``work`` under a recorder; return it and what the
    run produced (``weights``: :func:`weights_digest` of the trained classifier, ``miou``: its TTA mIoU at the oracle
    threshold), so that variants are shown to give the same numbers. Untimed set-up: the dataset (and, for methods
    trained against it, the ordinary classifier) in ``base``."""
    from wsss_lib.data import open_dataset
    from wsss_lib.stages.classifier import ORDINARY_METHODS, train_classifier
    from wsss_lib.stages.context import RunContext
    from wsss_lib.stages.priors import ordinary_config, run_priors

    notebook, method = TARGETS[target]
    cfg = _configs(profile, notebook, overrides)
    base_ctx = RunContext.create(profile, str(base), str(base / "reports"))
    for split in (cfg.classifier.train_split, cfg.classifier.eval_split):
        open_dataset(cfg.data, split, work_dir=base_ctx.work_dir, progress=False)
    ordinary = None
    if method in ORDINARY_METHODS:
        ordinary = train_classifier(base_ctx, ordinary_config(cfg.classifier, cfg.ordinary), progress=False)
    _link_shared(base, work)
    ctx = RunContext.create(profile, str(work), str(work / "reports"))
    sync = None
    if str(cfg.classifier.train.device).startswith("cuda") or (cfg.classifier.train.device == "auto"
                                                                 and _cuda()):
        import torch

        sync = torch.cuda.synchronize
    with timing.recording(sync=sync) as recorder:
        if method == "ordinary":
            with timing.scope("ordinary"):
                trained = train_classifier(ctx, ordinary_config(cfg.classifier, cfg.ordinary), progress=False)
            produced = {"weights": weights_digest(trained.stage.load_state()), "miou": float("nan")}
        else:
            run = run_priors(ctx, cfg.classifier, method, tta=cfg.tta, ordinary=cfg.ordinary, seed=0,
                             trained_ordinary=ordinary, notebook=notebook, progress=False)
            produced = {"weights": weights_digest(run.classifier.load_state()), "miou": 100 * run.sweep.best.miou}
    return recorder, produced


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _machine() -> str:
    m = machine()
    return (f"{m['cpu']}, {m['cores']} cores{', ' + m['gpu'] if m['gpu'] else ''}; torch {m['torch']}, "
            f"{m['threads']} threads")


def summary(frame: pd.DataFrame) -> str:
    """Markdown: per target, the median seconds of each section per variant, then the end-to-end totals (median,
    min-max over repetitions) and each variant's ratio to the first (its median total over theirs)."""
    out = []
    for target, rows in frame.groupby("target", sort=False):
        labels = list(dict.fromkeys(rows["variant"]))
        table = rows.pivot_table(index="section", columns="variant", values="seconds", aggfunc="median")[labels]
        table = table.sort_values(labels[0], ascending=False)
        totals = rows[rows["section"] == "total"].groupby("variant", sort=False)["seconds"]
        first = totals.median()[labels[0]]
        lines = [f"### `{target}`", "", "Median seconds per section (exclusive times; `total` = the run's wall time):",
                 "", table.round(1).to_markdown(), "", "| variant | runs | total, median (s) | min-max (s) | "
                 "speed-up vs " + f"`{labels[0]}` | trained weights | TTA mIoU (%) |", "|---|---:|---:|---:|---:|---|---:|"]
        for label in labels:
            values = totals.get_group(label)
            made = rows[(rows["variant"] == label) & (rows["section"] == "total")]
            lines.append(f"| `{label}` | {len(values)} | {values.median():.1f} | {values.min():.1f}-{values.max():.1f} "
                         f"| {first / values.median():.2f}x | {', '.join(sorted(set(made['weights'])))} | "
                         f"{', '.join(sorted({f'{m:.2f}' for m in made['miou']}))} |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="study")
    parser.add_argument("--targets", nargs="+", default=["cam", "pnoc"], choices=sorted(TARGETS))
    parser.add_argument("--variant", dest="variants", nargs="+", type=Variant, default=None,
                        help="LABEL[:NAME=VALUE,...], run interleaved (default: one variant 'profile', as is)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter (dotted) for every variant, e.g. classifier.train.epochs=1")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of each variant (interleaved)")
    parser.add_argument("--work", default="", help="work folder (default work/bench-profile-<profile>)")
    parser.add_argument("--out", default="", help="output folder (default reports/bench)")
    parser.add_argument("--keep", action="store_true", help="keep each run's work directory")
    args = parser.parse_args(argv)
    from wsss_lib.runner.overrides import parse_override

    common = dict(parse_override(s) for s in args.overrides)
    variants = args.variants or [Variant("profile")]
    root = Path(args.work) if args.work else default_work_dir(f"bench-profile-{args.profile}")
    out = Path(args.out) if args.out else repo_root() / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    command = "python -m wsss_lib.bench.profile " + " ".join(argv if argv is not None else sys.argv[1:])
    commit = code_state()
    rows: list[dict] = []
    done, total = 0, args.repeat * len(args.targets) * len(variants)
    text = ''
    for rep in range(args.repeat):
        for target in args.targets:
            for variant in variants:
                work = root / f"{target}-{variant.label}-{rep}"
                shutil.rmtree(work, ignore_errors=True)
                started = time.perf_counter()
                recorder, produced = profile_run(args.profile, target, {**common, **variant.overrides}, work,
                                                 root / "base")
                print(f"{target} [{variant.label}] repetition {rep + 1}/{args.repeat}: {recorder.wall:.1f} s "
                      f"({time.perf_counter() - started:.1f} s with the untimed set-up); weights {produced['weights']}, "
                      f"TTA mIoU {produced['miou']:.2f}", flush=True)
                meta = {"time": stamp, "commit": commit["commit"], "dirty": commit["dirty"], "machine": _machine(),
                        "profile": args.profile, "target": target, "variant": variant.label, "repetition": rep,
                        **produced}
                sections = recorder.frame()
                run_rows = [{**meta, "section": r.section, "seconds": r.seconds, "calls": r.calls}
                            for r in sections.itertuples()]
                run_rows.append({**meta, "section": "total", "seconds": recorder.wall, "calls": 1})
                rows += run_rows
                # Each run's rows are kept as soon as it ends (an hour of P-NOC is not lost to a later failure)
                append_csv_rows(out / f"profile-{args.profile}.csv", run_rows)
                done += 1
                text = report(rows, command, stamp, commit, variants, common, args.repeat, done, total)
                atomic_write_text(out / f"profile-{args.profile}.md", text)
                if not args.keep:
                    shutil.rmtree(work, ignore_errors=True)
    print(text)
    return 0


def report(rows: list[dict], command: str, stamp: str, commit: dict, variants: list[Variant], common: dict,
           repeat: int, done: int, total: int) -> str:
    """The Markdown report of the runs so far (``done`` of ``total``; a partial report says so)."""
    status = "" if done == total else f" **Partial: {done} of {total} runs finished so far.**"
    return (f"# Where the wall time of a `{rows[0]['profile']}` run goes\n\n"
            f"Measured by this repository's code: `{command}`\n\n"
            f"{stamp}, commit {commit['commit'][:10]}{' (dirty)' if commit['dirty'] else ''}, {_machine()}. "
            f"Variants: {', '.join(f'`{v.label}` {v.overrides or {}}' for v in variants)}; common settings: "
            f"{common or 'none'}; {repeat} repetition(s), interleaved.{status}\n\n"
            + summary(pd.DataFrame(rows)) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
