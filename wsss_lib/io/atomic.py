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
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

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
