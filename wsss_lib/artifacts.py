"""Stage outputs in the per-profile work directory, keyed by the stage and a hash of its configuration.

Layout: ``<work_dir>/<stage>/<name>-<hash>/`` holding ``config.json`` (the full configuration that
produced it), the stage's files, and ``DONE.json`` written last. A stage directory without ``DONE.json``
is incomplete: the stage resumes there (stages skip per-item files that already exist, and every file is
written atomically), so an interrupted run never leaves a result that looks finished.

A later stage finds an earlier one by rebuilding the earlier stage's configuration (the same dataclass the
earlier notebook used) and asking ``store.stage(...)`` for it; it includes the upstream key in its own
configuration so that changing an upstream setting changes every downstream key.

``DONE.json`` vouches for the files beside it. Just before it, ``MANIFEST.tsv`` is written: one line per file
of the stage folder (``path<TAB>bytes<TAB>sha256``, the hash ``-`` when the stage is larger than
``WSSS_HASH_LIMIT`` bytes, 2 GiB by default), and ``DONE.json`` records the manifest's own hash, the file count
and the total size. Whenever a finished stage is used (``StageDir.done``), every file's size is checked
against the manifest, and with ``WSSS_VERIFY=1`` (``python -m wsss_lib.reproduce --verify``) every recorded
hash too; ``python -m wsss_lib.runner.verify WORK_DIR`` checks a whole work directory. A truncated, emptied or
deleted file raises :class:`ArtifactCorruptError` naming the file and the stage folder to delete to recompute
it. A stage finished before manifests existed (``DONE.json`` without ``manifest``) is trusted as before.

When a stage directory is opened unfinished, the temporary files its killed writers left are removed first
(``wsss_lib.io.remove_stale_temporaries``).

**One stage, one computation.** Every stage computes under :meth:`StageDir.computing`: a lock file in the stage
folder (``.lock``; ``.lock-<shard>`` for a shard of a per-image stage, so shards still run side by side) held with
the ``filelock`` library's OS lock (``flock``). A second process that needs the same stage waits (printing who holds
it, from ``.lock.holder``, every ``WSSS_LOCK_REPORT`` seconds, 60 by default) and then reuses the finished stage
instead of computing it again; the operating system releases the lock of a holder that dies, even by SIGKILL, and
the next waiter takes the stage over and resumes it. Across hosts the work directory's file system must support
``flock`` (local disks, NFSv4, Lustre and GPFS mounted with locking). A finished stage is never rewritten:
:meth:`StageDir.mark_done` on a stage another process has finished meanwhile keeps that stage's files and
``DONE.json``, so a process reading the stage never sees it change. ``DONE.json`` records the host and process that
computed the stage (``computed_by``), and when that process took the lock and how many seconds it held it until
``DONE.json`` (``started`` in UTC, ``seconds``: the wall time of the stage's last session; a stage resumed after a
stop counts only that session, whose ``computed`` images its summary names; a training stage finished by torchrun's
processes records no such time, its ``seconds`` are its epochs').
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pandas as pd
from filelock import FileLock, Timeout

from wsss_lib.config import config_hash, to_dict
from wsss_lib.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    current_shard,
    reading,
    remove_stale_temporaries,
)

__all__ = ["ArtifactStore", "StageDir", "StageNotFoundError", "ArtifactCorruptError", "ShardPending", "verify_enabled",
           "DEFAULT_HASH_LIMIT"]

DEFAULT_HASH_LIMIT = 2 * 1024**3
"""Stages up to this many bytes get a SHA-256 per file in their manifest (``WSSS_HASH_LIMIT`` overrides)."""
MANIFEST = "MANIFEST.tsv"
_BOOKKEEPING = ("DONE.json", MANIFEST)
LOCK = ".lock"
"""The lock files of a stage folder start with this name (``.lock``, ``.lock-<shard>``, ``.lock.holder``); they are
not outputs and never enter the manifest."""

T = TypeVar("T")


class StageNotFoundError(FileNotFoundError):
    """An upstream stage a notebook needs has not been run (with this configuration) yet."""


class ShardPending(RuntimeError):
    """This process finished its shard of a per-image stage, and other shards' images are still missing: the stage
    is marked done by whichever shard finishes last (a clean stop for a SLURM array task, not a failure)."""


class ArtifactCorruptError(RuntimeError):
    """A finished stage's file no longer matches what its ``DONE.json`` vouched for."""


def verify_enabled() -> bool:
    """Whether finished stages are checked against their recorded hashes too (``WSSS_VERIFY=1``)."""
    return os.environ.get("WSSS_VERIFY", "").strip().lower() in ("1", "true", "yes", "hashes")


def _hash_limit() -> int:
    return int(os.environ.get("WSSS_HASH_LIMIT", DEFAULT_HASH_LIMIT))


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _output_files(folder: Path) -> list[Path]:
    """Every file of a stage folder except its bookkeeping and temporary files, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not (p.name.startswith(".") and p.name.endswith(".tmp"))
                  and not (p.parent == folder and p.name.startswith(LOCK))
                  and p.relative_to(folder).as_posix() not in _BOOKKEEPING)


def _lock_report_seconds() -> float:
    return float(os.environ.get("WSSS_LOCK_REPORT", "60"))


_COMPUTING_SINCE: dict[Path, tuple[float, float]] = {}
"""Stage folders this process is computing (inside :meth:`StageDir.computing`): when it took the lock (epoch time,
monotonic clock), for ``DONE.json``'s ``computed_by.seconds``."""


@dataclass(frozen=True)
class StageDir:
    stage: str
    key: str
    path: Path

    @property
    def finished(self) -> bool:
        """``DONE.json`` exists (the stage ran to its end), without checking its files."""
        return (self.path / "DONE.json").is_file()

    @property
    def done(self) -> bool:
        """The stage is finished and its files are as ``DONE.json`` recorded them (sizes always, hashes with
        ``WSSS_VERIFY=1``); a mismatch raises :class:`ArtifactCorruptError` instead of returning."""
        if not self.finished:
            return False
        self.verify(hashes=verify_enabled())
        return True

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def _recompute_hint(self) -> str:
        return (f"The stage's outputs cannot be trusted: delete its folder to recompute it (rm -rf {self.path}) "
                "and rerun the notebook that produces it")

    def summary(self) -> dict[str, Any]:
        """The contents of ``DONE.json``."""
        with reading(self.path / "DONE.json", f"the {self.stage!r} stage's DONE.json (JSON)", self._recompute_hint) as p:
            return json.loads(p.read_text())

    def read_json(self, name: str) -> Any:
        with reading(self.path / name, "a JSON file", self._recompute_hint) as path:
            return json.loads(path.read_text())

    def config(self) -> dict[str, Any]:
        with reading(self.path / "config.json", f"the {self.stage!r} stage's config.json (JSON)", self._recompute_hint) as p:
            return json.loads(p.read_text())

    @contextmanager
    def computing(self, sharded: bool = False) -> Iterator[bool]:
        """Hold this stage's lock (``sharded``: a per-image stage, whose shards, ``--shard i/n``, each take their own
        lock; see the module docstring) while the caller computes it. Yields whether the stage still has to be computed: ``False`` when it is
        finished, already or by another process this one waited for, in which case the caller reuses it::

            with sd.computing() as todo:
                if todo:
                    ...  # compute, then sd.mark_done(...)
        """
        if self.done:
            yield False
            return
        shard = current_shard() if sharded else None
        name = f"{LOCK}-{shard.index}of{shard.count}" if shard is not None and shard.count > 1 else LOCK
        lock = FileLock(self.path / name)
        holder = self.path / f"{name}.holder"
        waited = time.monotonic()
        while True:
            try:
                lock.acquire(timeout=_lock_report_seconds())
                break
            except Timeout:
                try:
                    who = json.loads(holder.read_text())
                    who = f"{who['host']} pid {who['pid']} since {who['since']}"
                except (OSError, ValueError, KeyError):
                    who = "another process"
                print(f"{self.stage} {self.path.name}: waiting {time.monotonic() - waited:.0f} s for {who}, which "
                      "computes this stage (it is reused when finished)", flush=True)
        try:
            if time.monotonic() - waited > 1:
                print(f"{self.stage} {self.path.name}: waited {time.monotonic() - waited:.0f} s for the stage's lock",
                      flush=True)
            atomic_write_json(holder, {"host": socket.gethostname(), "pid": os.getpid(),
                                       "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
            todo = not self.done
            if todo:
                remove_stale_temporaries(self.path)
                _COMPUTING_SINCE[self.path.resolve()] = (time.time(), time.monotonic())
            yield todo
        finally:
            _COMPUTING_SINCE.pop(self.path.resolve(), None)
            holder.unlink(missing_ok=True)
            lock.release()

    def mark_done(self, **summary: Any) -> None:
        """Write ``MANIFEST.tsv`` (every file's size, and SHA-256 when the stage is small enough), then ``DONE.json``;
        a stage another process has finished meanwhile is kept as it is (a finished stage is never rewritten)."""
        with FileLock(self.path / f"{LOCK}-finish"):
            if self.finished:
                return
            self._write_done(summary)

    def _write_done(self, summary: dict[str, Any]) -> None:
        files = _output_files(self.path)
        sizes = [p.stat().st_size for p in files]
        hashed = sum(sizes) <= _hash_limit()
        lines = [f"{p.relative_to(self.path).as_posix()}\t{size}\t{_sha256(p) if hashed else '-'}"
                 for p, size in zip(files, sizes)]
        text = "".join(line + "\n" for line in lines)
        atomic_write_text(self.path / MANIFEST, text)
        manifest = {"files": len(files), "bytes": int(sum(sizes)), "hashes": "sha256" if hashed else "none",
                    "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        computed_by: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
        if (taken := _COMPUTING_SINCE.get(self.path.resolve())) is not None:  # this process computed it
            started, since = taken  # from taking the lock to DONE.json
            computed_by.update(started=datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
                               seconds=round(time.monotonic() - since, 1))
        atomic_write_json(self.path / "DONE.json", {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **summary,
                                                    "computed_by": computed_by, "manifest": manifest})

    def verify(self, hashes: bool = False) -> dict[str, Any]:
        """Check the finished stage's files against its manifest: sizes, and recorded hashes when ``hashes``.
        Returns ``{"files", "bytes", "hashed"}`` (``"legacy": True`` for a stage finished without a manifest);
        a missing, resized or altered file raises :class:`ArtifactCorruptError` naming it."""
        manifest = self.summary().get("manifest")
        if manifest is None:
            return {"files": 0, "bytes": 0, "hashed": 0, "legacy": True}
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise ArtifactCorruptError(f"{manifest_path} is missing although {self.path / 'DONE.json'} records it. "
                                       + self._recompute_hint)
        text = manifest_path.read_bytes()
        if hashlib.sha256(text).hexdigest() != manifest["sha256"]:
            raise ArtifactCorruptError(f"{manifest_path} does not match the hash recorded in DONE.json. "
                                       + self._recompute_hint)
        problems: list[str] = []
        checked = hashed = 0
        for line in text.decode("utf-8").splitlines():
            rel, size, digest = line.split("\t")
            path = self.path / rel
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                problems.append(f"{path} is missing (DONE.json recorded {size} bytes)")
                continue
            if actual != int(size):
                problems.append(f"{path} has {actual} bytes, DONE.json recorded {size}")
            elif hashes and digest != "-":
                hashed += 1
                if _sha256(path) != digest:
                    problems.append(f"{path} has the recorded size but not the recorded SHA-256 (altered)")
            checked += 1
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ArtifactCorruptError(f"stage {self.stage!r} at {self.path}: " + "; ".join(problems[:3]) + more
                                       + ". " + self._recompute_hint)
        return {"files": checked, "bytes": manifest["bytes"], "hashed": hashed}

    def clear_done(self) -> None:
        (self.path / "DONE.json").unlink(missing_ok=True)
        (self.path / MANIFEST).unlink(missing_ok=True)

    def write_frame(self, name: str, frame: pd.DataFrame) -> Path:
        path = self.path / name
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        return path

    def read_frame(self, name: str) -> pd.DataFrame:
        with reading(self.path / name, "a CSV table", self._recompute_hint) as path:
            return pd.read_csv(path)

    def save_state(self, name: str, state: dict) -> Path:
        """``torch.save`` ``state`` (a state dict) atomically as ``name``."""
        import torch

        with atomic_path(self.path / name) as tmp:
            torch.save(state, tmp)
        return self.path / name

    def finish_images(self, images: int, counts: dict[str, Any]) -> None:
        """End a per-image stage after :func:`~wsss_lib.io.for_each_missing` (``counts``): ``DONE.json`` if every
        image's output exists, else :class:`ShardPending` (this shard is done, others are not)."""
        if counts.get("missing"):
            raise ShardPending(f"{self.path}: shard {counts.get('shard', '?')} finished; {counts['missing']} of "
                               f"{images} images of other shards are still missing. The shard that writes the last "
                               "image marks the stage done; rerun (any shard) after the others to continue.")
        self.mark_done(images=images, **{k: v for k, v in counts.items() if k != "missing"})

    def finish_training(self, state: dict, **summary: Any) -> None:
        """End a training stage: save the final weights as ``model.pt``, remove the resume checkpoint (the same
        weights plus optimizer states, useless once the stage is finished, and 2x the weights on disk: 0.9 GB for a
        ResNeSt-269 classifier), then write ``DONE.json``."""
        self.save_state("model.pt", state)
        self.file("checkpoint.pt").unlink(missing_ok=True)
        self.mark_done(**summary)

    def load_state(self, name: str = "model.pt") -> dict:
        """A state dict saved by :meth:`save_state` (on the CPU, ``weights_only``), or an error naming the file."""
        import torch

        with reading(self.path / name, "a PyTorch state dict", self._recompute_hint) as path:
            return torch.load(path, map_location="cpu", weights_only=True)

    def load_into(self, module, name: str = "model.pt") -> None:
        """Load the state dict ``name`` into ``module`` strictly; an unreadable or mismatching file is named."""
        with reading(self.path / name, f"the weights of a {type(module).__name__}", self._recompute_hint) as path:
            import torch

            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def load_npz(self, name: str, fields: tuple[str, ...] = ()) -> dict[str, Any]:
        """The arrays of the ``.npz`` file ``name`` (without pickles), checking that ``fields`` are present."""
        import numpy as np

        with reading(self.path / name, f"an .npz archive with {list(fields) or 'arrays'}", self._recompute_hint) as path:
            with np.load(path, allow_pickle=False) as data:
                missing = set(fields) - set(data.files)
                if missing:
                    raise KeyError(f"missing fields {sorted(missing)}")
                return {key: data[key] for key in data.files}


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
        sd = StageDir(stage=stage, key=key, path=path)
        if cfg_file.is_file():
            stored = sd.config()
            if stored.get("config") != json.loads(json.dumps(payload["config"], default=str)):
                raise RuntimeError(f"{cfg_file}: stored configuration differs from the one hashing to {key}")
        else:
            atomic_write_json(cfg_file, payload)
        if not sd.finished:
            remove_stale_temporaries(path)
        return sd

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
            if not done_only or sd.done:
                out.append(sd)
        return out

    def cached(self, stage: str, config: Any, compute: Callable[[StageDir], T],
               load: Callable[[StageDir], T], name: str | None = None, force: bool = False) -> T:
        """Return ``load(stage_dir)`` if the stage is done, else ``compute(stage_dir)`` then mark it done."""
        sd = self.stage(stage, config, name=name)
        if force:
            with sd.computing():  # the lock, whether or not the stage is finished
                sd.clear_done()
        with sd.computing() as todo:
            if not todo:
                return load(sd)
            started = time.perf_counter()
            result = compute(sd)
            sd.mark_done(seconds=round(time.perf_counter() - started, 3))
            return result
