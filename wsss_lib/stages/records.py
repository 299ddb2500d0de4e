"""Run records, shared by the notebook-level stage chains.

A *run record* is a small JSON file under ``<work_dir>/runs/<kind>/`` naming, relative to the work directory,
the stage directories one notebook run used, so that a later notebook finds them without guessing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from wsss_lib.artifacts import StageDir
from wsss_lib.io import atomic_write_json, reading
from wsss_lib.stages.context import RunContext

__all__ = ["slug", "relative", "stage_from_record", "write_record", "read_records"]


def slug(text: str) -> str:
    """A file-name-safe, lower-case form of a run label (``"C2AM-H (P-NOC+LS)"`` -> ``"c2am_h_p_noc_ls"``)."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_").lower()


def relative(ctx: RunContext, sd: StageDir | None) -> str:
    """``sd``'s path relative to the work directory (``""`` for none), as records store it."""
    return sd.path.relative_to(ctx.work_dir).as_posix() if sd is not None else ""


def stage_from_record(ctx: RunContext, rel: str, producer: str) -> StageDir:
    """The finished stage a record points to; a missing or unfinished one names the notebook to rerun."""
    path = ctx.work_dir / rel
    sd = StageDir(stage=Path(rel).parts[0], key=path.name.rsplit("-", 1)[-1], path=path)
    if not sd.done:
        raise FileNotFoundError(f"{path}: the stage a run record points to is missing or unfinished; rerun {producer}")
    return sd


def write_record(ctx: RunContext, kind: str, name: str, record: Mapping[str, Any]) -> Path:
    """Write (atomically, replacing an older one) the record ``<work_dir>/runs/<kind>/<name>.json``."""
    path = ctx.work_dir / "runs" / kind / f"{name}.json"
    atomic_write_json(path, dict(record))
    return path


def read_records(ctx: RunContext, kind: str) -> list[dict[str, Any]]:
    """Every record of ``kind`` in this profile's work directory, in file-name order."""
    folder = ctx.work_dir / "runs" / kind
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        with reading(path, f"a {kind!r} run record (JSON)", "delete it and rerun the notebook that wrote it"):
            records.append(json.loads(path.read_text()))
    return records
