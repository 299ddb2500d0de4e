"""Notebook batches as jobs on existing engines: submitit on this machine (``local``) or on a SLURM cluster
(``slurm``), one job per notebook, submitted in order with the profile's ``resources`` block."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from wsss_lib.config import from_dict
from wsss_lib.io import atomic_write_json
from wsss_lib.io.progress import tqdm

__all__ = ["JobResources", "job_resources", "run_with_executor"]


@dataclass(frozen=True)
class JobResources:
    """What one notebook asks of the cluster under ``--executor slurm`` (profile block ``resources``: ``default``
    and per-notebook overrides); ``--executor local`` runs the same jobs on this machine and ignores them."""

    gpus: int = 0
    cpus: int = 2
    hours: float = 2.0
    mem_gb: int = 0
    partition: str = ""


def job_resources(profile: dict[str, Any], stem: str) -> JobResources:
    """The ``resources`` of notebook ``stem``; a notebook whose training stages run on ``runtime: {devices: N}`` GPUs
    (torchrun + DDP) gets at least ``N`` GPUs."""
    blocks = profile.get("resources") or {}
    merged = {**(blocks.get("default") or {}), **(blocks.get(stem) or {})}
    res = from_dict(JobResources, merged, where=f"profile resources of {stem}")
    runtime = {**profile.get("common", {}), **profile.get("notebooks", {}).get(stem, {})}.get("runtime") or {}
    devices = int(runtime.get("devices", 1))
    return replace(res, gpus=devices) if res.gpus and devices > res.gpus else res


def run_with_executor(executor_kind: str, profile: dict[str, Any], profile_name: str, notebooks: list[Path],
                      out_dir: Path, **kwargs: Any) -> int:
    """Each notebook as one submitit job (``local``: subprocesses of this machine; ``slurm``: ``sbatch``), in order:
    the next is submitted when the previous succeeded; every job runs :func:`run_notebooks` on one notebook and
    records its host and job id in the manifest. Job logs: ``<reports>/submitit/``."""
    import submitit

    from wsss_lib.runner.run import run_notebooks

    folder = out_dir / "submitit"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=executor_kind)
    for nb in notebooks:
        res = job_resources(profile, nb.stem)
        params: dict[str, Any] = {"name": f"{profile_name}-{nb.stem}", "timeout_min": int(res.hours * 60)}
        if executor_kind == "slurm":
            params.update(slurm_gpus_per_node=res.gpus, cpus_per_task=res.cpus,
                          **({"slurm_mem": f"{res.mem_gb}G"} if res.mem_gb else {}),
                          **({"slurm_partition": res.partition} if res.partition else {}))
        executor.update_parameters(**params)
        job = executor.submit(run_notebooks, profile, profile_name, [nb], out_dir, **kwargs)
        tqdm.write(f"{nb.stem}: submitted as {executor_kind} job {job.job_id} ({asdict(res)})")
        status = job.result()
        manifest_path = out_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["notebooks"].setdefault(nb.stem, {}).update(executor=executor_kind, job_id=str(job.job_id),
                                                             resources=asdict(res))
        manifest["executor"] = executor_kind
        atomic_write_json(manifest_path, manifest)
        if status:
            tqdm.write(f"{nb.stem}: job {job.job_id} failed; log {folder}")
            return status
    return 0
