"""The per-image loop of every inference/refinement stage, and how a split is sharded across processes.

:func:`for_each_missing` writes each image's output that is not on disk yet (so a stopped stage resumes), optionally
in forked worker processes; :class:`Shard` is one of ``count`` strided, unpadded shards of a split, chosen by
``WSSS_SHARD`` (explicit ``i/n``, or ``auto`` from a SLURM array or torchrun) through :func:`current_shard`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from wsss_lib.io.progress import tqdm

__all__ = ["Shard", "parse_shard", "current_shard", "for_each_missing"]


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
