"""Run the notebooks of a profile with papermill, in order: the check of every parameter first
(:mod:`wsss_lib.runner.notebooks`), then per notebook:

1. execute with papermill, kernel ``python3``, language ``python``, working directory ``notebooks/`` (as
   JupyterLab and nbval do), writing ``reports/<profile>/notebooks/NN_name.ipynb``;
2. clean it (:mod:`wsss_lib.runner.clean`: machine paths become names, widgets their text, figures PNG), so that it
   reads the same on any machine and on a code-hosting site;
3. record status, duration and size in ``reports/<profile>/manifest.json`` (:mod:`wsss_lib.runner.manifest`). A notebook
   whose executed copy is up to date (same source, same parameters, succeeded) is skipped unless ``--force``;
   expensive stages are cached in the work directory anyway. Every finished stage a notebook reuses is checked
   against its ``DONE.json`` (file sizes; SHA-256 hashes too with ``--verify``).

On a failure the partial executed notebook is kept, the notebook and failing cell are named, and the exit
status is non-zero. A dry run (:mod:`wsss_lib.runner.dry_run`) ends with the real run's plan
(:mod:`wsss_lib.runner.plan`).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd

from wsss_lib.config import load_profile, to_dict
from wsss_lib.data.fixtures import dry_run_data
from wsss_lib.data.registry import dataset_family
from wsss_lib.io import atomic_write_json, atomic_write_text, current_shard
from wsss_lib.io.progress import tqdm
from wsss_lib.paths import DRY_SUFFIX, SMALL_SUFFIX, repo_root, reports_dir, work_dir
from wsss_lib.provenance import code_state, machine
from wsss_lib.reporting.explorer import BATCH_ENV
from wsss_lib.runner.clean import MAX_NOTEBOOK_BYTES, clean_notebook, machine_roots
from wsss_lib.runner.dry_run import dry_run_parameters, dry_run_profile_name
from wsss_lib.runner.manifest import fingerprint, package_versions
from wsss_lib.runner.notebooks import check_data, discover_notebooks, profile_notebooks, validate_parameters
from wsss_lib.runner.overrides import apply_to_profile
from wsss_lib.stages.parameters import PARAMETER_TYPES, build_parameter

__all__ = ["run_profile", "run_notebooks"]



KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
"""Arguments of every notebook's kernel: its log shows errors only. At the default level every kernel prints that it
runs over TCP without encryption (a local kernel, spoken to by this process alone), which says nothing about the
notebook; the notebook's own output, errors and progress are unaffected."""


@contextlib.contextmanager
def _batch_kernel():
    """The kernels started meanwhile know they run in a batch (:data:`wsss_lib.reporting.explorer.BATCH_ENV`: static
    figures instead of widgets no one can move, and whose drawings the saved notebook would not keep), and import the
    same ``wsss_lib`` as this runner: its checkout leads their ``PYTHONPATH``. Without it a kernel imports whichever
    checkout the environment was installed from (a second worktree sharing one ``.venv``, say) and writes its stages
    and plan records into that checkout's work directory, while this runner reads its own."""
    saved = {name: os.environ.get(name) for name in (BATCH_ENV, "PYTHONPATH")}
    os.environ[BATCH_ENV] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(repo_root())] + [p for p in [saved["PYTHONPATH"]] if p])
    try:
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


def run_profile(profile_name: str, only: list[str] | None = None, force: bool = False, data_root: str | None = None,
                timeout: int | None = None, dry_run: bool = False, overrides: dict[str, Any] | None = None,
                small_backbones: bool = False, executor: str = "inline") -> int:
    """Run the repository's notebooks with a named profile; returns the exit status. ``executor``: ``inline`` (in
    this process, one kernel per notebook), ``local`` or ``slurm`` (one submitit job per notebook, in order). ``dry_run``: see
    :mod:`wsss_lib.runner.dry_run` (profile ``<name>-dry``, capped parameters, generated fixtures without ``data_root``;
    ``small_backbones``: profile ``<name>-small-dry``, each backbone the smallest of its family)."""
    if executor == "inline":
        run = run_notebooks
    else:
        def run(*args: Any, **kwargs: Any) -> int:
            from wsss_lib.runner.executors import run_with_executor

            return run_with_executor(executor, *args, **kwargs)
    if small_backbones and not dry_run:
        raise SystemExit("--small-backbones is a cap of the dry run: use it with --dry-run")
    profile = load_profile(profile_name)
    notebooks = profile_notebooks(profile, profile_name, discover_notebooks(repo_root() / "notebooks", only), only)
    profile = apply_to_profile(profile, notebooks, dict(overrides or {}))
    if overrides:
        profile["overrides"] = dict(overrides)
    if dry_run:
        dry_name = dry_run_profile_name(profile_name, small_backbones)
        if not data_root:
            dataset = dataset_family(str(profile["common"].get("dataset", "synthetic")))
            fixtures = dry_run_data(profile_name, dataset, work_dir(dry_name))
            data_root = str(fixtures) if fixtures is not None else None
        return run(profile, dry_name, notebooks, reports_dir(dry_name), force=force, data_root=data_root,
                   timeout=timeout, dry_run=True, small_backbones=small_backbones)
    return run(profile, profile_name, notebooks, reports_dir(profile_name),
                         force=force, data_root=data_root, timeout=timeout)


def run_notebooks(profile: dict[str, Any], profile_name: str, notebooks: list[Path], out_dir: Path, *,
                  force: bool = False, data_root: str | None = None, timeout: int | None = None,
                  dry_run: bool = False, small_backbones: bool = False) -> int:
    """Validate every notebook's parameters, then execute them in order (see the module docstring)."""
    import papermill as pm

    params_by_nb = validate_parameters(notebooks, profile, data_root)
    problems = check_data(notebooks, params_by_nb)
    if problems:
        raise SystemExit("data check failed before running anything:\n  " + "\n  ".join(problems))
    caps: dict[str, dict[str, list]] = {}
    if dry_run:
        for stem, params in params_by_nb.items():
            params_by_nb[stem], changed = dry_run_parameters(params, small_backbones, _resolver(stem))
            caps[stem] = {k: [a, b] for k, (a, b) in changed.items()}
        tqdm.write(f"dry run of {profile_name.removesuffix('-dry')}: data {data_root}; caps (wsss_lib.runner.dry_run.CAPS"
                   f"{' + SMALL_CAPS' if small_backbones else ''}) "
                   f"change {sorted({k for c in caps.values() for k in c})}; backbone weights "
                   + ("random (the profile asks for hub weights; --dry-run only)"
                      if any("weights" in c for c in caps.values()) else "as the profile says"))
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    earlier_manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    previous = earlier_manifest.get("notebooks", {})
    manifest: dict[str, Any] = {
        "profile": profile_name, "description": profile.get("description", ""), **code_state(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": package_versions(), "machine": machine(),
        "notebooks": dict(previous), "dry_run": dry_run, "data_root": data_root,
        "overrides": profile.get("overrides", {}), "shard": str(current_shard()),
        # every execution of every run into this folder, kept across runs: a profile run in steps (make study) or
        # resumed after a stop still shows where its wall time went
        "executions": list(earlier_manifest.get("executions", [])),
    }
    if dry_run:
        manifest["dry_run_caps"] = {**earlier_manifest.get("dry_run_caps", {}), **caps}  # a notebook --only leaves out keeps its caps (and plan)
        manifest["small_backbones"] = small_backbones
    roots = machine_roots(profile_name, data_root, notebook_dir=notebooks[0].parent if notebooks else None)
    status = 0
    pending = ""
    bar = tqdm(notebooks, desc=f"profile {profile_name}", unit="notebook")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        params = params_by_nb[nb.stem]
        output = out_dir / "notebooks" / nb.name
        digest = fingerprint(nb, params)
        prev = previous.get(nb.stem, {})
        if not force and output.is_file() and prev.get("status") == "ok" and prev.get("fingerprint") == digest:
            manifest["notebooks"][nb.stem] = {**prev, "skipped": "up to date (use --force to rerun)"}
            tqdm.write(f"{nb.stem}: up to date, skipped")
            continue
        if dry_run:
            _forget_used_stages(work_dir(profile_name), {nb.stem})  # it records again what it uses
        entry: dict[str, Any] = {"parameters": params, "output": f"notebooks/{nb.name}", "fingerprint": digest,
                                 "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                 "status": "running"}
        manifest["notebooks"][nb.stem] = entry
        atomic_write_json(manifest_path, manifest)
        started = time.perf_counter()
        try:
            with _batch_kernel():
                pm.execute_notebook(str(nb), str(output), parameters=params, kernel_name="python3",
                                    language="python", cwd=str(nb.parent), execution_timeout=timeout,
                                    progress_bar={"leave": False}, extra_arguments=KERNEL_ARGUMENTS)
            entry["status"] = "ok"
        except pm.PapermillExecutionError as exc:
            if exc.ename == "ShardPending":  # this shard's images are done, another shard finishes the stage
                entry.update(status="shard-pending", failed_cell=exc.cell_index, error=f"{exc.ename}: {exc.evalue}")
                tqdm.write(f"{nb.name}: shard {current_shard()} done; {exc.evalue}\n  stopping here (not a failure)")
                pending = nb.stem
            else:
                entry.update(status="failed", failed_cell=exc.cell_index, error=f"{exc.ename}: {exc.evalue}")
                tqdm.write(f"FAILED {nb.name}: cell {exc.cell_index} (execution count {exc.exec_count}) raised "
                           f"{exc.ename}: {exc.evalue}\n  partial output kept at {output}")
                status = 1
        except Exception as exc:  # kernel death, timeout, bad notebook: still record and stop
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            tqdm.write(f"FAILED {nb.name}: {type(exc).__name__}: {exc}\n  partial output (if any) at {output}")
            status = 1
        entry["seconds"] = round(time.perf_counter() - started, 1)
        manifest["executions"].append({"notebook": nb.stem, "started": entry["started"], "seconds": entry["seconds"],
                                       "status": entry["status"], "commit": manifest["commit"],
                                       "host": entry["host"], "overrides": manifest["overrides"]})
        if output.is_file():  # the partial notebook of a failure too
            try:
                cleaned = clean_notebook(output, roots)
            except Exception as exc:  # noqa: BLE001 (a truncated partial notebook: keep it as it is, say so)
                entry["clean_error"] = f"{type(exc).__name__}: {exc}"
                tqdm.write(f"{nb.name}: the executed notebook was kept uncleaned ({entry['clean_error']})")
            else:
                entry["bytes"] = cleaned.bytes
                if cleaned.too_large:
                    tqdm.write(f"{nb.name}: the executed notebook is {cleaned.bytes / 1e6:.1f} MB, over the "
                               f"{MAX_NOTEBOOK_BYTES / 1e6:.0f} MB a committed one may take (wsss_lib.runner.clean)")
        atomic_write_json(manifest_path, manifest)
        if status or pending:
            break
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(manifest_path, manifest)
    if dry_run and not status and not pending:
        status = _report_plan(profile, profile_name, out_dir, manifest)
    if pending:
        print(f"profile {profile_name}: shard {current_shard()} stopped at {pending} (other shards still missing)")
    elif not status:
        print(f"profile {profile_name}: {len(notebooks)} notebook(s) done; reports in {out_dir}")
    return status


def _forget_used_stages(work: Path, stems: set[str]) -> None:
    """Drop the plan's used-stage entries of the notebooks about to run (they record again what they use)."""
    from wsss_lib.stages.planning import PLAN_USED

    path = work / PLAN_USED
    if path.is_file():
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("notebook") not in stems]
        atomic_write_text(path, "".join(line + "\n" for line in kept))


def _resolver(stem: str):
    """The dry run's view of a notebook's stage dicts: the complete config (over its defaults) as a nested dict."""
    def resolve(name: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if name not in PARAMETER_TYPES:
            return None
        return to_dict(build_parameter(name, params, where=f"dry run of {stem}"))
    return resolve


def _report_plan(profile: dict[str, Any], profile_name: str, out_dir: Path, manifest: dict[str, Any]) -> int:
    """Write and print the real run's plan (``wsss_lib.runner.plan``); 1 if a row fails its mapping check."""
    from wsss_lib.runner.plan import write_plan

    dataset = dataset_family(str(profile["common"].get("dataset", "synthetic")))
    real = profile_name.removesuffix(DRY_SUFFIX).removesuffix(SMALL_SUFFIX)
    plan, images, hours = write_plan(work_dir(profile_name), out_dir, manifest, dataset,
                                     repo_root() / "reports" / "bench", profile=real)
    tables = out_dir / "tables"
    if len(plan):
        shown = plan[["notebook", "stage", "run", "runs", "steps_per_run", "images_processed", "gpu_hours"]]
        print(f"{(tables / 'plan.md').read_text().split(chr(10) * 2)[0]}\n{shown.to_string(index=False)}")
    if len(images):
        shown = images[["notebook", "stage", "run", "runs", "images", "cpu_hours", "gpu_hours",
                        "cpu_hours_without_gpu", "peak_mb_cpu"]]
        print(f"{(tables / 'plan_images.md').read_text().split(chr(10) * 2)[0]}\n{shown.to_string(index=False)}")
        for row in images[images["shard"] != ""].itertuples():
            print(f"  {row.notebook} {row.stage} {row.run}: {row.shard}")
    print(f"{(tables / 'plan_hours.md').read_text().split(chr(10) * 2)[0]}\n{hours.to_string(index=False)}\n"
          f"(full tables: {tables / 'plan.md'}, {tables / 'plan_images.md'}, {tables / 'plan_hours.md'})")
    bad = pd.concat([plan[plan["check"] != "ok"] if len(plan) else plan,
                     images[images["check"] != "ok"] if len(images) else images])
    if len(bad):
        print(f"plan: {len(bad)} stage(s) fail the mapping check of wsss_lib.runner.plan (STAGE_PARAMETERS, RECIPE_FIELDS, "
              "IMAGE_SCALES):\n" + bad[["notebook", "stage", "run", "check"]].to_string(index=False))
        return 1
    return 0
