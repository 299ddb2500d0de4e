"""The notebooks of a profile and their parameters: which notebooks run, what each is given, and the check of every
parameter and stage dict before anything runs.

1. parameters = the profile's ``common`` block + its ``notebooks.NN_name`` block (+ ``--data``, + ``--set``); every
   key must be a parameter of that notebook (``papermill.inspect_notebook``), and every stage dict (``classifier``,
   ``c2am``, ...; :mod:`wsss_lib.stages.parameters`) must build into its config, over the notebook's defaults where
   the profile gives none: checked for all notebooks before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsss_lib.io.progress import tqdm
from wsss_lib.runner.overrides import fold_overrides
from wsss_lib.stages.parameters import check_parameters

__all__ = ["discover_notebooks", "profile_notebooks", "notebook_defaults", "notebook_parameters", "validate_parameters",
           "check_data"]


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
        errors += [_blame_command_line(error, where, profile.get("overrides") or {}) for error in found]
        if not found and params.get("overrides"):  # folded into the dicts: what runs, what the dry run caps
            params = fold_overrides(params, defaults)
        out[nb.stem] = params
    if errors:
        raise SystemExit("parameter check failed before running anything:\n  " + "\n  ".join(errors))
    return out


def _blame_command_line(error: str, where: str, overrides: dict[str, Any]) -> str:
    """An error about a parameter that ``--set`` changed names the command line, not (only) the profile's file."""
    given = [f"{name}={value}" for name, value in overrides.items() if error.startswith(f"{where}: {name.split('.')[0]}")]
    if not given:
        return error
    return f"--set {' '.join(given)} (command line) over {where}" + error[len(where):]


def _splits(value: Any) -> set[str]:
    """Every split a notebook's parameters name: the values of keys ending in ``split`` (and lists under ``splits``)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).endswith("split") and isinstance(item, str) and item:
                found.add(item)
            elif str(key).endswith("splits") and isinstance(item, (list, tuple)):
                found |= {str(s) for s in item}
            else:
                found |= _splits(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= _splits(item)
    return found


def check_data(notebooks: list[Path], params_by_nb: dict[str, dict[str, Any]]) -> list[str]:
    """Pre-flight: every dataset the notebooks will open, checked with the splits they name (their parameters over
    the notebooks' defaults and the stage configs' defaults) by :func:`wsss_lib.data.checks.check_dataset`; the
    problems, each naming the path, what was expected and the notebooks that read it."""
    from wsss_lib.config import to_dict
    from wsss_lib.data.checks import check_dataset
    from wsss_lib.data.registry import DatasetConfig
    from wsss_lib.stages.parameters import PARAMETER_TYPES, build_parameter

    wanted: dict[tuple[str, str], tuple[set[str], list[str]]] = {}
    for nb in notebooks:
        params = {**notebook_defaults(nb), **params_by_nb.get(nb.stem, {})}
        if "dataset" not in params:
            continue
        built = {name: to_dict(build_parameter(name, params, nb.stem)) for name in set(params) & set(PARAMETER_TYPES)}
        splits, stems = wanted.setdefault((str(params["dataset"]), str(params.get("data_root") or "")), (set(), []))
        splits |= _splits({**params, **built})
        stems.append(nb.stem)
    problems = []
    for (name, root), (splits, stems) in wanted.items():
        problems += [f"{problem} [dataset {name!r}, read by notebooks {' '.join(stem[:2] for stem in stems)}]"
                     for problem in check_dataset(DatasetConfig(name=name, data_root=root), splits)]
    return problems
