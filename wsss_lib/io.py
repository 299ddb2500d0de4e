"""Atomic file writing: every artifact is written to a temporary file in the same folder, then renamed.

A reader therefore sees either the old complete file or the new complete file, never a half-written one,
and an interrupted run leaves at most a stray ``.tmp`` file that the next run overwrites.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npz",
    "atomic_save_image",
    "for_each_missing",
    "append_csv_rows",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


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


def for_each_missing(ids: Iterable[str], path_of: Callable[[str], Path], write: Callable[[str, Path], None], *,
                     desc: str = "", progress: bool = True, workers: int = 1) -> dict[str, int]:
    """The resumable per-image loop of every inference/refinement stage.

    For each id whose output ``path_of(id)`` does not exist yet, ``write(id, path)`` produces it (atomically:
    the ``atomic_*`` writers above); existing files are kept, so an interrupted stage resumes where it stopped.
    Returns ``{"computed", "skipped"}`` counts (recorded in the stage's ``DONE.json``).

    ``workers > 1`` splits the missing ids over that many forked processes (Linux; for CPU-bound steps such as
    the dense CRF, which is single-threaded). The parent shows the progress by counting finished files; a worker
    that fails makes the whole call fail (its traceback is printed by the worker), and the files written before
    stay valid for the resume.
    """
    ids = list(ids)
    todo = [i for i in ids if not Path(path_of(i)).is_file()]
    skipped = len(ids) - len(todo)
    for image_id in todo:
        Path(path_of(image_id)).parent.mkdir(parents=True, exist_ok=True)
    if workers > 1 and len(todo) > 1 and "fork" in multiprocessing.get_all_start_methods():
        _run_forked(todo, path_of, write, desc, progress, min(workers, len(todo)))
    else:
        for image_id in tqdm(todo, desc=desc, disable=not progress):
            write(image_id, Path(path_of(image_id)))
    return {"computed": len(todo), "skipped": skipped}


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
