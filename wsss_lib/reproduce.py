"""Run the numbered notebooks of a profile with papermill: ``python -m wsss_lib.reproduce --profile smoke``.

For each ``notebooks/NN_name.ipynb`` the profile names (in order, or those named by ``--only``):

1. parameters = the profile's ``common`` block + its ``notebooks.NN_name`` block (+ ``--data``, + ``--set``); every
   key must be a parameter of that notebook (``papermill.inspect_notebook``), and every stage dict (``classifier``,
   ``c2am``, ...; :mod:`wsss_lib.stages.parameters`) must build into its config, over the notebook's defaults where
   the profile gives none: checked for all notebooks before anything runs. ``--set classifier.train.epochs=3``
   changes one nested field of the stage dict it names, in every notebook that has that dict, keeping its others;
2. execute with papermill, kernel ``python3``, language ``python``, working directory ``notebooks/`` (as
   JupyterLab and nbval do), writing ``reports/<profile>/notebooks/NN_name.ipynb``;
3. record status and duration in ``reports/<profile>/manifest.json`` (git commit, profile, parameters,
   package versions). A notebook whose executed copy is up to date (same source, same parameters,
   succeeded) is skipped unless ``--force``; expensive stages are cached in the work directory anyway.
   Every finished stage a notebook reuses is checked against its ``DONE.json`` (file sizes; SHA-256 hashes
   too with ``--verify``); ``python -m wsss_lib.verify WORK_DIR`` checks a whole work directory.

On a failure the partial executed notebook is kept, the notebook and failing cell are named, and the exit
status is non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from wsss_lib.config import apply_overrides as set_paths
from wsss_lib.config import available_profiles, from_dict, load_profile, to_dict
from wsss_lib.data.fixtures import dry_run_data
from wsss_lib.data.registry import dataset_family
from wsss_lib.dry_run import DRY_SUFFIX, SMALL_SUFFIX, dry_run_parameters, dry_run_profile_name
from wsss_lib.io import atomic_write_json, atomic_write_text, current_shard, parse_shard
from wsss_lib.paths import repo_root, reports_dir, work_dir
from wsss_lib.provenance import code_state, machine
from wsss_lib.stages.parameters import PARAMETER_TYPES, build_parameter, check_parameters

__all__ = ["main", "discover_notebooks", "notebook_defaults", "notebook_parameters", "validate_parameters", "run_profile",
           "run_notebooks"]

PACKAGES = ("torch", "torchvision", "timm", "torchmetrics", "numpy", "scipy", "pandas", "pillow", "papermill",
            "nbval", "pydensecrf2", "scikit-image", "pycocotools", "matplotlib", "seaborn")


def discover_notebooks(notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
    """``NN_name.ipynb`` files in order; ``only`` selects by number (``"00"``) or stem (``"00_dataset"``)."""
    notebooks = sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return notebooks
    selected = [p for p in notebooks if any(p.stem == o or p.stem.split("_", 1)[0] == o for o in only)]
    missing = [o for o in only if not any(p.stem == o or p.stem.split("_", 1)[0] == o for p in notebooks)]
    if missing:
        raise SystemExit(f"--only names no notebook: {missing}; available: {[p.stem for p in notebooks]}")
    return selected


def profile_notebooks(profile: dict[str, Any], profile_name: str, notebooks: list[Path],
                      only: list[str] | None = None) -> list[Path]:
    """The notebooks a profile runs: those its ``notebooks`` block names (a profile such as ``study`` runs a subset;
    the others would otherwise run with the notebooks' smoke defaults under its name). ``--only`` selects among
    them; naming a notebook the profile leaves out is an error."""
    named = [nb for nb in notebooks if nb.stem in profile["notebooks"]]
    left_out = [nb.stem for nb in notebooks if nb.stem not in profile["notebooks"]]
    if only and left_out:
        raise SystemExit(f"profile {profile_name!r} does not run {left_out}; it runs {sorted(profile['notebooks'])}")
    if left_out:
        tqdm.write(f"profile {profile_name!r} runs {[nb.stem for nb in named]} (not {left_out})")
    return named


def notebook_defaults(notebook: Path) -> dict[str, Any]:
    """The values of a notebook's ``parameters`` cell (literals, read with ``ast.literal_eval``)."""
    import ast

    import papermill as pm

    return {name: ast.literal_eval(info["default"]) for name, info in pm.inspect_notebook(str(notebook)).items()}


def notebook_parameters(profile: dict[str, Any], notebook: Path, data_root: str | None) -> dict[str, Any]:
    params = dict(profile["common"])
    params.update(profile["notebooks"].get(notebook.stem, {}))
    if data_root:
        params["data_root"] = data_root
    return params


def validate_parameters(notebooks: list[Path], profile: dict[str, Any], data_root: str | None) -> dict[str, dict]:
    """Parameters per notebook; raise if a key is not a parameter of the notebook it is given to."""
    stems = {p.stem for p in discover_notebooks(notebooks[0].parent)} if notebooks else set()
    stray = sorted(set(profile["notebooks"]) - stems)
    if stray:
        raise SystemExit(f"profile names notebooks that do not exist: {stray}; notebooks: {sorted(stems)}")
    errors, out = [], {}
    for nb in notebooks:
        defaults = notebook_defaults(nb)
        declared = set(defaults)
        if not declared:
            errors.append(f"{nb.name}: no cell tagged 'parameters'")
            continue
        params = notebook_parameters(profile, nb, data_root)
        unknown = sorted(set(params) - declared)
        if unknown:
            errors.append(f"{nb.name}: unknown parameter(s) {unknown}; the notebook declares {sorted(declared)}")
        where = f"{profile.get('source', 'profile')}, {nb.stem}"
        found = check_parameters({**defaults, **params}, where)
        errors += found
        if not found and params.get("overrides"):  # folded into the dicts: what runs, what the dry run caps
            params = _fold_overrides(params, defaults)
        out[nb.stem] = params
    if errors:
        raise SystemExit("parameter check failed before running anything:\n  " + "\n  ".join(errors))
    return out


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _fingerprint(notebook: Path, params: dict[str, Any]) -> str:
    payload = notebook.read_bytes() + json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def apply_overrides(profile: dict[str, Any], notebooks: list[Path], overrides: dict[str, Any]) -> dict[str, Any]:
    """``profile`` with ``overrides`` (``--set NAME=VALUE``) given to every notebook of ``notebooks`` that declares
    ``NAME``; a dotted ``NAME`` (``classifier.train.epochs``) sets one field inside the notebook's dict parameter of
    that first name (the profile's dict, or the notebook's default where the profile gives none), keeping every
    other field. A first name that none of the notebooks declares is an error (a typo would otherwise change
    nothing); a wrong field inside a stage dict fails the parameter check, with the config's known fields."""
    if not overrides:
        return profile
    out = {**profile, "notebooks": {stem: dict(block) for stem, block in profile["notebooks"].items()}}
    used: set[str] = set()
    for nb in notebooks:
        defaults = notebook_defaults(nb)
        for name, value in overrides.items():
            head = name.split(".", 1)[0]
            if head not in defaults:
                continue
            block = out["notebooks"].setdefault(nb.stem, {})
            if "." in name:
                try:
                    block.update(_set_dotted({**profile["common"], **block}, defaults, {name: value},
                                             where=f"--set {name}"))
                except KeyError as exc:
                    raise SystemExit(str(exc.args[0])) from None
            else:
                block[name] = value  # the whole parameter, a dict too (--set 'classifier={}': the paper's defaults)
            used.add(name)
    unused = sorted(set(overrides) - used)
    if unused:
        raise SystemExit(f"--set {unused}: no notebook of this run declares such a parameter")
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with ``VALUE`` read as YAML (``seeds=[0]``, ``classifier.train.epochs=3``,
    ``runtime.devices=2``); ``NAME`` a notebook parameter or a dotted path into one."""
    import yaml

    name, sep, value = text.partition("=")
    if not sep or not all(part.isidentifier() for part in name.split(".")):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (a notebook parameter or a dotted path into one, "
                                         f"e.g. classifier.train.epochs=3), got {text!r}")
    return name, yaml.safe_load(value)


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


def run_profile(profile_name: str, only: list[str] | None = None, force: bool = False, data_root: str | None = None,
                timeout: int | None = None, dry_run: bool = False, overrides: dict[str, Any] | None = None,
                small_backbones: bool = False, executor: str = "inline") -> int:
    """Run the repository's notebooks with a named profile; returns the exit status. ``executor``: ``inline`` (in
    this process, one kernel per notebook), ``local`` or ``slurm`` (one submitit job per notebook, in order). ``dry_run``: see
    :mod:`wsss_lib.dry_run` (profile ``<name>-dry``, capped parameters, generated fixtures without ``data_root``;
    ``small_backbones``: profile ``<name>-small-dry``, each backbone the smallest of its family)."""
    if executor == "inline":
        run = run_notebooks
    else:
        def run(*args: Any, **kwargs: Any) -> int:
            return run_with_executor(executor, *args, **kwargs)
    if small_backbones and not dry_run:
        raise SystemExit("--small-backbones is a cap of the dry run: use it with --dry-run")
    profile = load_profile(profile_name)
    notebooks = profile_notebooks(profile, profile_name, discover_notebooks(repo_root() / "notebooks", only), only)
    profile = apply_overrides(profile, notebooks, dict(overrides or {}))
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
    caps: dict[str, dict[str, list]] = {}
    if dry_run:
        for stem, params in params_by_nb.items():
            params_by_nb[stem], changed = dry_run_parameters(params, small_backbones, _resolver(stem))
            caps[stem] = {k: [a, b] for k, (a, b) in changed.items()}
        tqdm.write(f"dry run of {profile_name.removesuffix('-dry')}: data {data_root}; caps (wsss_lib.dry_run.CAPS"
                   f"{' + SMALL_CAPS' if small_backbones else ''}) "
                   f"change {sorted({k for c in caps.values() for k in c})}; backbone weights "
                   + ("random (the profile asks for hub weights; --dry-run only)"
                      if any("weights" in c for c in caps.values()) else "as the profile says"))
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    previous = json.loads(manifest_path.read_text()).get("notebooks", {}) if manifest_path.is_file() else {}
    manifest: dict[str, Any] = {
        "profile": profile_name, "description": profile.get("description", ""), **code_state(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": _versions(), "machine": machine(),
        "notebooks": dict(previous), "dry_run": dry_run, "data_root": data_root,
        "overrides": profile.get("overrides", {}), "shard": str(current_shard()),
    }
    if dry_run:
        earlier = json.loads(manifest_path.read_text()).get("dry_run_caps", {}) if manifest_path.is_file() else {}
        manifest["dry_run_caps"] = {**earlier, **caps}  # a notebook --only leaves out keeps its caps (and plan)
        manifest["small_backbones"] = small_backbones
    status = 0
    pending = ""
    bar = tqdm(notebooks, desc=f"profile {profile_name}", unit="notebook")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        params = params_by_nb[nb.stem]
        output = out_dir / "notebooks" / nb.name
        fingerprint = _fingerprint(nb, params)
        prev = previous.get(nb.stem, {})
        if not force and output.is_file() and prev.get("status") == "ok" and prev.get("fingerprint") == fingerprint:
            manifest["notebooks"][nb.stem] = {**prev, "skipped": "up to date (use --force to rerun)"}
            tqdm.write(f"{nb.stem}: up to date, skipped")
            continue
        if dry_run:
            _forget_used_stages(work_dir(profile_name), {nb.stem})  # it records again what it uses
        entry: dict[str, Any] = {"parameters": params, "output": f"notebooks/{nb.name}", "fingerprint": fingerprint,
                                 "host": platform.node(),
                                 "status": "running"}
        manifest["notebooks"][nb.stem] = entry
        atomic_write_json(manifest_path, manifest)
        started = time.perf_counter()
        os.environ["WSSS_NOTEBOOK"] = nb.stem  # the kernel inherits it: a dry run's plan records name their notebook
        try:
            pm.execute_notebook(str(nb), str(output), parameters=params, kernel_name="python3", language="python",
                                cwd=str(nb.parent), execution_timeout=timeout, progress_bar={"leave": False})
            entry["status"] = "ok"
        except pm.PapermillExecutionError as exc:
            if exc.ename == "ShardPending":  # this shard's images are done, another shard finishes the stage
                entry.update(status="shard-pending", failed_cell=exc.cell_index, error=f"{exc.ename}: {exc.evalue}",
                             seconds=round(time.perf_counter() - started, 1))
                tqdm.write(f"{nb.name}: shard {current_shard()} done; {exc.evalue}\n  stopping here (not a failure)")
                pending = nb.stem
                atomic_write_json(manifest_path, manifest)
                break
            entry.update(status="failed", failed_cell=exc.cell_index, error=f"{exc.ename}: {exc.evalue}")
            tqdm.write(f"FAILED {nb.name}: cell {exc.cell_index} (execution count {exc.exec_count}) raised "
                       f"{exc.ename}: {exc.evalue}\n  partial output kept at {output}")
            status = 1
        except Exception as exc:  # kernel death, timeout, bad notebook: still record and stop
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            tqdm.write(f"FAILED {nb.name}: {type(exc).__name__}: {exc}\n  partial output (if any) at {output}")
            status = 1
        entry["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_json(manifest_path, manifest)
        if status:
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


def _set_dotted(params: dict[str, Any], defaults: dict[str, Any], paths: dict[str, Any], where: str) -> dict[str, Any]:
    """``{first name: dict}`` for the dict parameters that the dotted ``paths`` go into, each taken from ``params``
    (else the notebook's ``defaults``) with ``paths`` set (:func:`wsss_lib.config.apply_overrides`); the one
    shape of ``--set a.b=v`` and of a profile's ``overrides``."""
    heads = {str(path).split(".", 1)[0] for path in paths}
    updated = set_paths({**defaults, **params}, paths, where=where)
    return {head: updated[head] for head in heads}


def _fold_overrides(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``params`` with a profile's ``overrides`` (dotted paths) applied to the dicts they name (the profile's, or
    the notebook's default dict) and then emptied, so the manifest, the dry run's caps and its plan see the values
    that run."""
    return {**params, **_set_dotted(params, defaults, params["overrides"], where="overrides"), "overrides": {}}


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
    """Write and print the real run's plan (``wsss_lib.plan``); 1 if a row fails its mapping check."""
    from wsss_lib.plan import write_plan

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
        print(f"plan: {len(bad)} stage(s) fail the mapping check of wsss_lib.plan (STAGE_PARAMETERS, RECIPE_FIELDS, "
              "IMAGE_SCALES):\n" + bad[["notebook", "stage", "run", "check"]].to_string(index=False))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsss_lib.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=available_profiles())
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers or stems to run (default: all)")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks that are up to date")
    parser.add_argument("--data", default=None, help="dataset root (sets every notebook's data_root)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (default: none)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every notebook with the profile's code path but capped data, steps, batch and image "
                             "size, random weights where the profile asks for hub weights; writes <profile>-dry "
                             "folders; without --data, generated VOC/COCO-layout fixtures (see wsss_lib.dry_run)")
    parser.add_argument("--small-backbones", action="store_true",
                        help="with --dry-run: every backbone the smallest timm model of its family (ResNeSt-269 -> "
                             "ResNeSt-14d, ResNet-50/101 -> ResNet-26); writes <profile>-small-dry folders; what CI runs")
    parser.add_argument("--executor", default="inline", choices=["inline", "local", "slurm"],
                        help="inline: here, one kernel per notebook (default); local / slurm: one submitit job per "
                             "notebook, submitted in order with the profile's resources block (sbatch for slurm)")
    parser.add_argument("--shard", default=None, metavar="I/N|auto",
                        help="process only shard I of N (0-based, strided) of every per-image stage, or 'auto': the "
                             "task of a SLURM job array, else the torchrun rank (sets WSSS_SHARD for the notebooks; "
                             "default: the whole split); the shard that writes a stage's last image marks it done, "
                             "the others stop cleanly")
    parser.add_argument("--verify", action="store_true",
                        help="check every finished stage a notebook uses against the SHA-256 hashes its DONE.json "
                             "recorded, not only the sizes (sets WSSS_VERIFY=1 for the notebooks)")
    parser.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter in every notebook of the run that declares it (value read as "
                             "YAML, e.g. --set 'seeds=[0]'), or one field of a stage dict (--set "
                             "classifier.train.epochs=3, --set runtime.devices=2); recorded in the manifest")
    args = parser.parse_args(argv)
    if args.shard is not None:
        try:
            os.environ["WSSS_SHARD"] = "auto" if args.shard == "auto" else str(parse_shard(args.shard))
        except ValueError as exc:
            parser.error(str(exc))
    if args.verify:
        os.environ["WSSS_VERIFY"] = "1"  # the papermill kernels inherit it
    return run_profile(args.profile, only=args.only, force=args.force, data_root=args.data, timeout=args.timeout,
                       dry_run=args.dry_run, overrides=dict(args.overrides), small_backbones=args.small_backbones,
                       executor=args.executor)


if __name__ == "__main__":
    sys.exit(main())
