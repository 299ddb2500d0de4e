"""One override vocabulary: a dotted path sets one field of a stage dict and keeps its others.

- :func:`parse_override`: ``--set NAME=VALUE`` (the value read as YAML);
- :func:`apply_to_profile`: ``--set`` given to every notebook of a run that declares ``NAME`` (a dotted ``NAME`` into
  the profile's dict, or the notebook's default dict where the profile gives none);
- :func:`fold_overrides`: a profile's ``overrides`` block folded into the dicts it names (what runs, what the dry run
  caps and the manifest records).

Both go through :func:`wsss_lib.config.apply_overrides` (``config.set_path`` per path), as a notebook's own
``overrides`` parameter does (:func:`wsss_lib.stages.parameters.notebook_configs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wsss_lib.config import apply_overrides

__all__ = ["parse_override", "apply_to_profile", "fold_overrides", "set_dotted"]


def apply_to_profile(profile: dict[str, Any], notebooks: list[Path], overrides: dict[str, Any]) -> dict[str, Any]:
    """``profile`` with ``overrides`` (``--set NAME=VALUE``) given to every notebook of ``notebooks`` that declares
    ``NAME``; a dotted ``NAME`` (``classifier.train.epochs``) sets one field inside the notebook's dict parameter of
    that first name (the profile's dict, or the notebook's default where the profile gives none), keeping every
    other field. A first name that none of the notebooks declares is an error (a typo would otherwise change
    nothing); a wrong field inside a stage dict fails the parameter check, with the config's known fields."""
    from wsss_lib.runner.notebooks import notebook_defaults

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
                    block.update(set_dotted({**profile["common"], **block}, defaults, {name: value},
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


def set_dotted(params: dict[str, Any], defaults: dict[str, Any], paths: dict[str, Any], where: str) -> dict[str, Any]:
    """``{first name: dict}`` for the dict parameters that the dotted ``paths`` go into, each taken from ``params``
    (else the notebook's ``defaults``) with ``paths`` set (:func:`wsss_lib.config.apply_overrides`); the one
    shape of ``--set a.b=v`` and of a profile's ``overrides``."""
    heads = {str(path).split(".", 1)[0] for path in paths}
    updated = apply_overrides({**defaults, **params}, paths, where=where)
    return {head: updated[head] for head in heads}


def fold_overrides(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``params`` with a profile's ``overrides`` (dotted paths) applied to the dicts they name (the profile's, or
    the notebook's default dict) and then emptied, so the manifest, the dry run's caps and its plan see the values
    that run."""
    return {**params, **set_dotted(params, defaults, params["overrides"], where="overrides"), "overrides": {}}
