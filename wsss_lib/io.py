"""Atomic file writing and checked reading of every artifact.

Writing: every file is written to a temporary file in the same folder, then renamed. A reader therefore sees
either the old complete file or the new complete file, never a half-written one.

- The temporary name says who wrote it: ``.<name>.<host>-<pid>.<random>.tmp``. A process killed during a write
  leaves one behind; :func:`remove_stale_temporaries` (called when a stage starts) removes those whose writer
  on this host is gone, and leaves a live writer's (another shard, another host) alone.
- Files get the usual permissions, ``0666`` minus the process umask (``mkstemp`` alone gives ``0600``, which
  makes a shared work directory unreadable to the rest of a group).
- A failed write raises :class:`ArtifactWriteError` (an ``OSError``) naming the path and the cause; when the
  disk is full it says so, also for writers such as ``torch.save`` that report a full disk in their own words.

Reading: :func:`reading` wraps a reader so that any failure (truncated zip, bad pickle, empty CSV, ...) raises
:class:`ArtifactReadError` naming the file and what it should have been.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import multiprocessing
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "ArtifactReadError",
    "ArtifactWriteError",
    "reading",
    "remove_stale_temporaries",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npz",
    "atomic_save_image",
    "for_each_missing",
    "Shard",
    "parse_shard",
    "current_shard",
    "append_csv_rows",
]


class ArtifactReadError(ValueError):
    """A stage file exists but cannot be read as what it should be; the message names the file."""


class ArtifactWriteError(OSError):
    """Writing a file failed; the message names the path and the cause (``errno`` kept where known)."""


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str, hint: str = "") -> Iterator[Path]:
    """Run a reader of ``path`` inside this block; any failure becomes an :class:`ArtifactReadError` naming the file,
    ``what`` it should hold and ``hint`` (how to recompute it). A missing file raises ``FileNotFoundError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"{what} {path} does not exist" + (f"; {hint}" if hint else ""), str(path))
    try:
        yield path
    except (KeyboardInterrupt, SystemExit, ArtifactReadError):
        raise
    except Exception as exc:  # noqa: BLE001 - every decoder has its own error types; all mean a bad file
        size = path.stat().st_size if path.is_file() else "missing"
        raise ArtifactReadError(f"{path}: cannot be read as {what} ({size} bytes): {type(exc).__name__}: {exc}"
                                + (f". {hint}" if hint else "")) from exc


_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", socket.gethostname()) or "host"


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` is process-wide and racy)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, max_age_other_hosts: float = 24 * 3600) -> list[Path]:
    """Remove the temporary files below ``folder`` left by killed writes: those written on this host by a process
    that no longer runs, those of other hosts older than ``max_age_other_hosts`` seconds, and unrecognised
    ``.*.tmp`` files (older naming) of any age. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    host, now = _host(), time.time()
    for path in folder.rglob(".*.tmp"):
        match = _TMP_RE.match(path.name)
        if match is not None:
            if match["host"] == host:
                if int(match["pid"]) == os.getpid() or _pid_alive(int(match["pid"])):
                    continue
            else:
                with contextlib.suppress(FileNotFoundError):
                    if now - path.stat().st_mtime < max_age_other_hosts:
                        continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def _disk_full(path: Path, exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, OSError) and chain.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        chain = chain.__cause__ or chain.__context__
    with contextlib.suppress(OSError):
        return shutil.disk_usage(path).free < 1024 * 1024  # e.g. torch.save's "unexpected pos" on a full disk
    return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path`` (permissions ``0666 & ~umask``),
    on error remove it and raise :class:`ArtifactWriteError` naming ``path`` and the cause."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)
        if isinstance(exc, Exception) and not isinstance(exc, ArtifactWriteError) and _is_write_failure(path, exc):
            raise _write_error(path, exc) from exc
        raise


def _is_write_failure(path: Path, exc: Exception) -> bool:
    """An ``OSError`` during the write, or any error while the disk is full (torch reports it as RuntimeError)."""
    return isinstance(exc, OSError) or _disk_full(path.parent, exc)


def _write_error(path: Path, exc: BaseException) -> ArtifactWriteError:
    code = getattr(exc, "errno", None)
    if _disk_full(path.parent, exc):
        code = code or errno.ENOSPC
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(path.parent).free
            return ArtifactWriteError(code, f"cannot write {path}: the disk is full ({free} bytes free there); "
                                            f"free some space and rerun (finished files are kept). Cause: {exc}")
        return ArtifactWriteError(code, f"cannot write {path}: the disk is full. Cause: {exc}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ArtifactWriteError(code, f"cannot write {path}: permission denied ({exc}); check the folder's "
                                        "owner and mode, or point WSSS_WORK elsewhere")
    return ArtifactWriteError(code, f"cannot write {path}: {type(exc).__name__}: {exc}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` without pickles, written atomically (the name must end in ``.npz``)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_image(path: str | os.PathLike, image, **save_kwargs) -> None:
    """Save a PIL image atomically; the format comes from ``path``'s suffix."""
    path = Path(path)
    buf = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported image suffix {path.suffix!r}; expected .png or .jpg")
    image.save(buf, format=fmt, **save_kwargs)
    atomic_write_bytes(path, buf.getvalue())


@dataclass(frozen=True)
class Shard:
    """One of ``count`` strided, unpadded shards of a split: images ``index, index + count, ...`` (every image in
    exactly one shard, none twice, unlike ``DistributedSampler``, which pads with duplicates)."""

    index: int = 0
    count: int = 1
    source: str = "default"

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ValueError(f"shard {self.index}/{self.count} (from {self.source}): expected 0 <= index < count")

    def select(self, ids: list[str]) -> list[str]:
        return ids[self.index::self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, source: str = "--shard") -> Shard:
    """``"i/n"`` (0-based) as a :class:`Shard`; anything else is an error naming ``source``."""
    index, sep, count = str(text).partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"{source}={text!r}: expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4")
    return Shard(int(index), int(count), source)


def current_shard(environ: dict[str, str] | None = None) -> Shard:
    """The shard of this process for every per-image stage, opt-in through ``WSSS_SHARD`` (``reproduce --shard``
    sets it for the notebooks): ``i/n`` explicitly, or ``auto``: a SLURM job array's task (``SLURM_ARRAY_TASK_ID`` -
    ``SLURM_ARRAY_TASK_MIN`` of ``SLURM_ARRAY_TASK_COUNT``), else torchrun's ``RANK`` of ``WORLD_SIZE``, else the
    whole split. Unset: the whole split, even inside an array job (a sweep of profiles as an array must not shard)."""
    env = os.environ if environ is None else environ
    value = env.get("WSSS_SHARD", "").strip()
    if not value:
        return Shard()
    if value != "auto":
        return parse_shard(value, "WSSS_SHARD")
    if env.get("SLURM_ARRAY_TASK_ID") and env.get("SLURM_ARRAY_TASK_COUNT"):
        task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        return Shard(task, int(env["SLURM_ARRAY_TASK_COUNT"]), "SLURM_ARRAY_TASK_ID")
    if env.get("WORLD_SIZE") and env.get("RANK"):
        return Shard(int(env["RANK"]), int(env["WORLD_SIZE"]), "RANK/WORLD_SIZE")
    return Shard(0, 1, "WSSS_SHARD=auto (no SLURM array, no torchrun rank)")


def for_each_missing(ids: Iterable[str], path_of: Callable[[str], Path], write: Callable[[str, Path], None], *,
                     desc: str = "", progress: bool = True, workers: int = 1,
                     shard: Shard | None = None) -> dict[str, Any]:
    """The resumable per-image loop of every inference/refinement stage.

    For each id whose output ``path_of(id)`` does not exist yet, ``write(id, path)`` produces it (atomically:
    the ``atomic_*`` writers above); existing files are kept, so an interrupted stage resumes where it stopped.
    Returns ``{"computed", "skipped", "missing"}``: this call's counts, and how many outputs of the whole split are
    still missing afterwards (recorded in the stage's ``DONE.json``; see ``StageDir.finish_images``).

    ``shard`` (default :func:`current_shard`: ``WSSS_SHARD``, explicit or ``auto``) restricts the
    call to that shard's images; shards never talk to each other, and the stage is finished by whichever shard
    finds every output present (``"shard"`` is added to the counts when the split is sharded).

    ``workers > 1`` splits the missing ids over that many forked processes (Linux; for CPU-bound steps such as
    the dense CRF, which is single-threaded). The parent shows the progress by counting finished files; a worker
    that fails makes the whole call fail (its traceback is printed by the worker), and the files written before
    stay valid for the resume.
    """
    ids = list(ids)
    shard = shard if shard is not None else current_shard()
    mine = shard.select(ids)
    todo = [i for i in mine if not Path(path_of(i)).is_file()]
    skipped = len(mine) - len(todo)
    for image_id in todo:
        Path(path_of(image_id)).parent.mkdir(parents=True, exist_ok=True)
    if workers > 1 and len(todo) > 1 and "fork" in multiprocessing.get_all_start_methods():
        _run_forked(todo, path_of, write, desc, progress, min(workers, len(todo)))
    else:
        for image_id in tqdm(todo, desc=desc, disable=not progress):
            write(image_id, Path(path_of(image_id)))
    counts: dict[str, Any] = {"computed": len(todo), "skipped": skipped,
                              "missing": sum(not Path(path_of(i)).is_file() for i in ids) if shard.count > 1 else 0}
    if shard.count > 1:
        counts["shard"] = str(shard)
    return counts


def _run_forked(todo: list[str], path_of, write, desc: str, progress: bool, workers: int) -> None:
    def shard(ids: list[str]) -> None:
        for image_id in ids:
            write(image_id, Path(path_of(image_id)))

    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=shard, args=(todo[k::workers],), daemon=True) for k in range(workers)]
    for process in processes:
        process.start()
    with tqdm(total=len(todo), desc=f"{desc} [{workers} processes]", disable=not progress) as bar:
        while any(p.is_alive() for p in processes):
            time.sleep(0.5)
            bar.update(sum(Path(path_of(i)).is_file() for i in todo) - bar.n)
        bar.update(sum(Path(path_of(i)).is_file() for i in todo) - bar.n)
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    missing = [i for i in todo if not Path(path_of(i)).is_file()]
    if failed or missing:
        raise RuntimeError(f"{desc}: {len(failed)} worker process(es) failed (exit codes {failed}); "
                           f"{len(missing)} output(s) missing, e.g. {missing[:3]}; see the traceback above. "
                           "Finished files are kept: rerun to resume.")


def append_csv_rows(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Append ``rows`` to the CSV ``path`` (created if missing; columns united), rewriting it atomically."""
    import pandas as pd

    path = Path(path)
    frame = pd.DataFrame(rows)
    if path.is_file():
        frame = pd.concat([pd.read_csv(path), frame], ignore_index=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
