"""Typed configuration: one dataclass per stage, filled from notebook parameters or profile YAML.

``from_dict`` refuses unknown keys (naming the closest known one) so a typo in a profile or a notebook
parameter is an error, not a silently ignored setting. ``config_hash`` gives the short key under which a
stage's outputs are stored in the work directory (see ``wsss_lib.artifacts``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["from_dict", "to_dict", "config_hash", "load_profile", "profile_path", "available_profiles"]

T = TypeVar("T")


def _check_keys(cls: type, data: dict[str, Any], where: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, names, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise KeyError(f"{where}: unknown {cls.__name__} field(s) {', '.join(hints)}; known fields: {names}")


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields accept dicts; unknown keys raise."""
    data = dict(data or {})
    _check_keys(cls, data, where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        ftype = hints[field.name]
        if dataclasses.is_dataclass(ftype) and isinstance(value, dict):
            value = from_dict(ftype, value, where=f"{where}.{field.name}")
        elif isinstance(value, list) and typing.get_origin(ftype) is tuple:
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a (possibly nested) dataclass; tuples become lists, paths strings."""
    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return convert(cfg)


def config_hash(*parts: Any, length: int = 10) -> str:
    """A short, stable hash of dataclasses / dicts / strings (canonical JSON, sorted keys)."""
    payload = json.dumps([to_dict(p) for p in parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def profile_path(profile: str) -> Path:
    return Path(__file__).resolve().parent / "profiles" / f"{profile}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in (Path(__file__).resolve().parent / "profiles").glob("*.yaml"))


def load_profile(profile: str) -> dict[str, Any]:
    """The profile's YAML: ``{"description", "common": {...}, "notebooks": {"NN_name": {...}}}``.

    An optional top-level ``templates`` block holds YAML anchors that notebook blocks merge (``<<: *name``),
    so settings shared by several notebooks (the priors recipe of 01-05) are written once; it is dropped here.
    An optional ``resources`` block (``default`` and per-notebook ``{gpus, cpus, hours, mem_gb, partition}``) is what
    each notebook asks of a cluster under ``reproduce --executor slurm`` (``wsss_lib.reproduce.JobResources``).
    An optional ``extends: <profile>`` starts from that profile: this file's ``common`` keys replace the base's,
    each notebook block it gives replaces the base's keys of that notebook, and it runs the base's notebooks
    (``study-stress`` is ``study`` on other data, its recipe written once).
    """
    path = profile_path(profile)
    if not path.is_file():
        raise FileNotFoundError(f"profile {profile!r} not found at {path}; available: {available_profiles()}")
    data = yaml.safe_load(path.read_text()) or {}
    allowed = {"description", "common", "notebooks", "templates", "extends", "resources"}
    extra = set(data) - allowed
    if extra:
        raise KeyError(f"{path}: unknown top-level key(s) {sorted(extra)}; expected {sorted(allowed)}")
    data.pop("templates", None)
    data.setdefault("common", {})
    data.setdefault("notebooks", {})
    data["notebooks"] = {str(k): (v or {}) for k, v in data["notebooks"].items()}
    base_name = data.pop("extends", None)
    if base_name:
        if base_name == profile:
            raise ValueError(f"{path}: a profile cannot extend itself")
        base = load_profile(str(base_name))
        notebooks = {stem: dict(block) for stem, block in base["notebooks"].items()}
        for stem, block in data["notebooks"].items():
            if stem not in notebooks:
                raise KeyError(f"{path}: notebook {stem!r} is not run by the base profile {base_name!r}")
            notebooks[stem].update(block)
        resources = {k: dict(v) for k, v in (base.get("resources") or {}).items()}
        for stem, block in (data.get("resources") or {}).items():
            resources.setdefault(stem, {}).update(block or {})
        data = {"description": data.get("description", base.get("description", "")),
                "common": {**base["common"], **data["common"]}, "notebooks": notebooks, "resources": resources}
    return data
