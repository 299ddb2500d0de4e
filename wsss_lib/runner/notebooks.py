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

__all__ = ["discover_notebooks", "profile_notebooks", "notebook_defaults", "notebook_parameters", "validate_parameters"]


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
            params = fold_overrides(params, defaults)
        out[nb.stem] = params
    if errors:
        raise SystemExit("parameter check failed before running anything:\n  " + "\n  ".join(errors))
    return out
