"""Stage outputs in the per-profile work directory, keyed by the stage and a hash of its configuration.

Layout: ``<work_dir>/<stage>/<name>-<hash>/`` holding ``config.json`` (the full configuration that
produced it), the stage's files, and ``DONE.json`` written last. A stage directory without ``DONE.json``
is incomplete: the stage resumes there (stages skip per-item files that already exist, and every file is
written atomically), so an interrupted run never leaves a result that looks finished.

A later stage finds an earlier one by rebuilding the earlier stage's configuration (the same dataclass the
earlier notebook used) and asking ``store.stage(...)`` for it; it includes the upstream key in its own
configuration so that changing an upstream setting changes every downstream key.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import pandas as pd

from wsss_lib.config import config_hash, to_dict
from wsss_lib.io import atomic_path, atomic_write_json

__all__ = ["ArtifactStore", "StageDir", "StageNotFoundError"]

T = TypeVar("T")


class StageNotFoundError(FileNotFoundError):
    """An upstream stage a notebook needs has not been run (with this configuration) yet."""


@dataclass(frozen=True)
class StageDir:
    stage: str
    key: str
    path: Path

    @property
    def done(self) -> bool:
        return (self.path / "DONE.json").is_file()

    def file(self, name: str) -> Path:
        return self.path / name

    def config(self) -> dict[str, Any]:
        return json.loads((self.path / "config.json").read_text())

    def mark_done(self, **summary: Any) -> None:
        atomic_write_json(self.path / "DONE.json", {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **summary})

    def clear_done(self) -> None:
        (self.path / "DONE.json").unlink(missing_ok=True)

    def write_frame(self, name: str, frame: pd.DataFrame) -> Path:
        path = self.path / name
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        return path

    def read_frame(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.path / name)


class ArtifactStore:
    """The work directory of one profile (``wsss_lib.paths.work_dir(profile)``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def stage(self, stage: str, config: Any, name: str | None = None) -> StageDir:
        """The directory of ``stage`` run with ``config`` (created, with its ``config.json``, if new)."""
        key = config_hash(stage, config)
        path = self.root / stage / (f"{name}-{key}" if name else key)
        path.mkdir(parents=True, exist_ok=True)
        cfg_file = path / "config.json"
        payload = {"stage": stage, "name": name, "key": key, "config": to_dict(config)}
        if cfg_file.is_file():
            stored = json.loads(cfg_file.read_text())
            if stored.get("config") != json.loads(json.dumps(payload["config"], default=str)):
                raise RuntimeError(f"{cfg_file}: stored configuration differs from the one hashing to {key}")
        else:
            atomic_write_json(cfg_file, payload)
        return StageDir(stage=stage, key=key, path=path)

    def require(self, stage: str, config: Any, name: str | None = None, hint: str = "") -> StageDir:
        """Like ``stage`` but the stage must be complete; otherwise say which notebook produces it."""
        key = config_hash(stage, config)
        path = self.root / stage / (f"{name}-{key}" if name else key)
        found = StageDir(stage=stage, key=key, path=path)
        if not found.done:
            raise StageNotFoundError(
                f"stage {stage!r} ({name or 'unnamed'}, key {key}) has no finished output at {path}. "
                f"{hint or 'Run the notebook that produces it with the same parameters first.'}"
            )
        return found

    def list(self, stage: str, done_only: bool = True) -> list[StageDir]:
        base = self.root / stage
        if not base.is_dir():
            return []
        out = []
        for path in sorted(p for p in base.iterdir() if p.is_dir()):
            sd = StageDir(stage=stage, key=path.name.rsplit("-", 1)[-1], path=path)
            if sd.done or not done_only:
                out.append(sd)
        return out

    def cached(self, stage: str, config: Any, compute: Callable[[StageDir], T],
               load: Callable[[StageDir], T], name: str | None = None, force: bool = False) -> T:
        """Return ``load(stage_dir)`` if the stage is done, else ``compute(stage_dir)`` then mark it done."""
        sd = self.stage(stage, config, name=name)
        if sd.done and not force:
            return load(sd)
        sd.clear_done()
        started = time.perf_counter()
        result = compute(sd)
        sd.mark_done(seconds=round(time.perf_counter() - started, 3))
        return result
