"""Where a profile's wall time went, read from what its runs recorded (nothing is re-measured):
``python -m wsss_lib.bench.ledger --profile study``.

- **Stages** (``work/<profile>/<stage>/<name>-<key>/DONE.json``): a training stage's seconds are the sum of its
  epochs' times over every session (``seconds``, from ``history.csv``); any other stage's are those of the session
  that finished it (``computed_by.seconds``: from taking its lock to ``DONE.json``; *last session* when that session
  computed only some of the images, after a stop or as one shard), or the seconds a cached computation recorded
  itself. A stage finished before any of these was recorded is counted as *untimed*; a sum beside untimed or
  last-session stages is a lower bound and says so.
- **Notebooks** (``reports/<profile>/manifest.json``, ``executions``): every execution the runner made into that
  folder, kept across runs, so a profile run in steps (``make study``) or resumed after a stop still adds up.
  A notebook's executions include the stages it computed and the time it spent reading finished ones.

Writes ``reports/<profile>/tables/costs_{stages,by_stage,notebooks}.{csv,md}`` and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from wsss_lib.io import atomic_write_text
from wsss_lib.paths import reports_dir, work_dir

__all__ = ["stage_ledger", "by_stage", "notebook_ledger", "write_ledger", "main"]


def _stage_row(done_path: Path) -> dict[str, Any]:
    try:
        done = json.loads(done_path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{done_path}: not a readable DONE.json ({exc}); delete the stage folder to recompute it") from exc
    provenance = done.get("provenance") or {}
    computed_by = done.get("computed_by") or {}
    if "epochs" in done and done.get("seconds") is not None:
        seconds, timed = float(done["seconds"]), "epochs"
    elif computed_by.get("seconds") is not None:
        partial = done.get("computed") is not None and done.get("images") is not None and done["computed"] < done["images"]
        seconds, timed = float(computed_by["seconds"]), "last session" if partial else "session"
    elif done.get("seconds") is not None:  # a cached computation that timed itself (scores, class statistics)
        seconds, timed = float(done["seconds"]), "session"
    else:
        seconds, timed = float("nan"), "untimed"
    return {"stage": done_path.parent.parent.name, "name": done_path.parent.name, "seconds": seconds, "timed": timed,
            "epochs": done.get("epochs"), "images": done.get("images"), "computed": done.get("computed"),
            "finished": done.get("finished", ""), "commit": (provenance.get("commit") or "")[:10],
            "cpu": (provenance.get("machine") or {}).get("cpu", ""), "gpu": (provenance.get("machine") or {}).get("gpu") or ""}


def stage_ledger(work: str | Path) -> pd.DataFrame:
    """One row per finished stage of the work directory ``work`` (see the module docstring), slowest first."""
    rows = [_stage_row(path) for path in sorted(Path(work).glob("*/*/DONE.json"))]
    frame = pd.DataFrame(rows, columns=["stage", "name", "seconds", "timed", "epochs", "images", "computed", "finished",
                                        "commit", "cpu", "gpu"])
    return frame.sort_values("seconds", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def by_stage(stages: pd.DataFrame) -> pd.DataFrame:
    """The ledger summed per stage kind: finished and untimed stages, hours, and the share of the timed total."""
    grouped = stages.groupby("stage", sort=False).agg(finished=("name", "size"),
                                                      untimed=("timed", lambda t: int((t == "untimed").sum())),
                                                      seconds=("seconds", lambda x: x.sum(min_count=1)))
    total = grouped["seconds"].sum()
    grouped["hours"] = grouped["seconds"] / 3600
    grouped["share (%)"] = 100 * grouped["seconds"] / total if total else float("nan")
    return grouped.sort_values("seconds", ascending=False, na_position="last").reset_index()


def notebook_ledger(manifest: dict[str, Any]) -> pd.DataFrame:
    """One row per notebook: its executions (every run recorded in the manifest) and their seconds, by status."""
    executions = pd.DataFrame(manifest.get("executions", []), columns=["notebook", "started", "seconds", "status",
                                                                      "commit", "overrides"])
    if executions.empty:
        return pd.DataFrame(columns=["notebook", "executions", "ok", "seconds", "hours", "first", "last"])
    grouped = executions.groupby("notebook").agg(executions=("seconds", "size"),
                                                 ok=("status", lambda s: int((s == "ok").sum())),
                                                 seconds=("seconds", "sum"), first=("started", "min"),
                                                 last=("started", "max"))
    grouped["hours"] = grouped["seconds"] / 3600
    return grouped.reset_index()[["notebook", "executions", "ok", "seconds", "hours", "first", "last"]]


def _markdown(frame: pd.DataFrame, caption: str) -> str:
    return caption + "\n\n" + (frame.round(2).to_markdown(index=False) if len(frame) else "(none)") + "\n"


def write_ledger(profile: str) -> str:
    """Write the three tables of ``profile`` (see the module docstring) and return the summary text."""
    work, reports = work_dir(profile), reports_dir(profile)
    if not work.is_dir():
        raise FileNotFoundError(f"{work}: no work directory of profile {profile!r} (run its notebooks first)")
    stages = stage_ledger(work)
    kinds = by_stage(stages)
    manifest_path = reports / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    notebooks = notebook_ledger(manifest)
    untimed, resumed = (int((stages["timed"] == kind).sum()) for kind in ("untimed", "last session"))
    gaps = ([f"{untimed} finished stage(s) recorded no time"] if untimed else []) + \
           ([f"{resumed} resumed stage(s) timed by their last session only"] if resumed else [])
    bound = f" (a lower bound: {'; '.join(gaps)})" if gaps else ""
    total_h = stages["seconds"].sum() / 3600
    lines = [f"Profile {profile}: {len(stages)} finished stages, {total_h:.2f} h of recorded stage time{bound}."]
    top = kinds.dropna(subset=["seconds"]).head(3)
    if len(top):
        lines.append("Most of it: " + ", ".join(f"{r['stage']} {r['hours']:.2f} h ({r['share (%)']:.0f} %)"
                                                for r in top.to_dict("records")) + ".")
    if len(notebooks):
        lines.append(f"Notebook executions: {int(notebooks['executions'].sum())}, {notebooks['hours'].sum():.2f} h "
                     f"from {notebooks['first'].min()} to {notebooks['last'].max()}.")
    summary = " ".join(lines)
    tables = reports / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    for name, frame, caption in (
            ("costs_stages", stages, f"Every finished stage of work/{profile}: training stages timed by their epochs "
                                     "(every session), other stages by the session that finished them."),
            ("costs_by_stage", kinds, f"Stage time of work/{profile} per stage kind (blank: no stage of that kind "
                                      "recorded its time)."),
            ("costs_notebooks", notebooks, f"Every notebook execution the runner recorded in reports/{profile}.")):
        frame.to_csv(tables / f"{name}.csv", index=False)
        atomic_write_text(tables / f"{name}.md", _markdown(frame, f"{caption} {summary}"))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.bench.ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="study")
    args = parser.parse_args(argv)
    print(write_ledger(args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
