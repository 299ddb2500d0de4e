"""Check a work directory against what its stages recorded: ``python -m wsss_lib.runner.verify WORK_DIR``.

For every stage folder (``<WORK_DIR>/<stage>/<name>-<key>/``) it reports one line: ``ok`` (every file has the
size and, unless ``--sizes-only``, the SHA-256 its ``DONE.json`` manifest recorded), ``CORRUPT`` (naming the
files and the folder to delete to recompute the stage), ``unfinished`` (no ``DONE.json``: the stage resumes
there on its next run), or ``no manifest`` (finished before manifests existed). Temporary files left by killed
writers are listed (``--clean`` removes those whose writer is gone). The exit status is 1 when any stage is
corrupt, else 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsss_lib.artifacts import ArtifactCorruptError, StageDir
from wsss_lib.io import ArtifactReadError, remove_stale_temporaries
from wsss_lib.paths import work_dir

__all__ = ["verify_work_dir", "main"]


def _stage_dirs(work_dir: Path) -> list[StageDir]:
    found = []
    for config in sorted(work_dir.glob("*/*/config.json")):
        path = config.parent
        found.append(StageDir(stage=path.parent.name, key=path.name.rsplit("-", 1)[-1], path=path))
    return found


def verify_work_dir(work_dir: str | Path, hashes: bool = True, clean: bool = False) -> list[dict]:
    """One row per stage folder of ``work_dir``: ``stage``, ``folder``, ``status``, ``files``, ``bytes``,
    ``hashed``, ``temporaries`` and ``detail`` (see the module docstring)."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        raise FileNotFoundError(f"work directory {work_dir} does not exist")
    rows = []
    for sd in _stage_dirs(work_dir):
        temporaries = sorted(sd.path.rglob(".*.tmp"))
        if clean and temporaries:
            removed = set(remove_stale_temporaries(sd.path))
            temporaries = [t for t in temporaries if t not in removed]
        row = {"stage": sd.stage, "folder": sd.path.relative_to(work_dir).as_posix(), "files": 0, "bytes": 0,
               "hashed": 0, "temporaries": len(temporaries), "detail": ""}
        if not sd.finished:
            row["status"] = "unfinished"
        else:
            try:
                result = sd.verify(hashes=hashes)
            except (ArtifactCorruptError, ArtifactReadError) as exc:
                row.update(status="CORRUPT", detail=str(exc))
            else:
                row.update(status="no manifest" if result.get("legacy") else "ok", files=result["files"],
                           bytes=result["bytes"], hashed=result["hashed"])
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.runner.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("work_dir", nargs="?", help="a work directory, e.g. work/smoke (default: --profile's)")
    parser.add_argument("--profile", default="smoke", help="the profile whose work directory to check (WSSS_WORK "
                                                         "moves it), when WORK_DIR is not given")
    parser.add_argument("--sizes-only", action="store_true", help="check file sizes only (no hashing)")
    parser.add_argument("--clean", action="store_true", help="remove temporary files left by killed writers")
    args = parser.parse_args(argv)
    rows = verify_work_dir(args.work_dir or work_dir(args.profile), hashes=not args.sizes_only, clean=args.clean)
    for row in rows:
        extra = f", {row['temporaries']} temporary file(s)" if row["temporaries"] else ""
        print(f"{row['status']:<12} {row['folder']}  ({row['files']} files, {row['bytes']} bytes, "
              f"{row['hashed']} hashed{extra})")
        if row["detail"]:
            print(f"             {row['detail']}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "CORRUPT", "unfinished", "no manifest")}
    print(f"{len(rows)} stage folders: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if counts["CORRUPT"] else 0


if __name__ == "__main__":
    sys.exit(main())
