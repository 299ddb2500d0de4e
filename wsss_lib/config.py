"""Typed configuration: one dataclass per stage, filled from notebook parameters or profile YAML.

``from_dict`` refuses unknown keys (naming the closest known one) so a typo in a profile or a notebook
parameter is an error, not a silently ignored setting. A nested dict fills its field *over that field's default*:
a stage config's defaults (``AffinityStageConfig.backbone`` is a frozen-BN backbone with five feature stages) hold
for every key the dict does not give. ``config_hash`` gives the short key under which a stage's outputs are stored
in the work directory (see ``wsss_lib.artifacts``).

Overrides of one nested field are dotted paths (``classifier.train.epochs``): :func:`set_path` sets one,
:func:`apply_overrides` a dict of them (``reproduce --set`` and a notebook's ``overrides`` parameter), and
:func:`merge` merges a dict into another field by field, so that changing one field never drops its siblings.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

__all__ = ["from_dict", "to_dict", "config_hash", "load_profile", "profile_path", "available_profiles", "merge",
           "set_path", "apply_overrides"]

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


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _as_tuple(value: list, ftype: Any) -> tuple:
    """A list for a tuple-typed field; inner lists become tuples too where the element type is a tuple."""
    args = [a for a in typing.get_args(ftype) if a is not Ellipsis]
    inner_tuple = bool(args) and typing.get_origin(args[0]) is tuple
    return tuple(tuple(v) if inner_tuple and isinstance(v, list) else v for v in value)


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config", base: T | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise. A key ``data`` lacks keeps ``base``'s value (or the
    field's default); a nested dataclass field given as a dict is filled over that value, field by field."""
    data = dict(data or {})
    _check_keys(cls, data, where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            if base is not None:
                kwargs[field.name] = getattr(base, field.name)
            continue
        value = data[field.name]
        ftype = hints[field.name]
        tuple_type = next((t for t in (ftype, *typing.get_args(ftype)) if typing.get_origin(t) is tuple), None)
        if dataclasses.is_dataclass(ftype) and isinstance(value, dict):
            inner = getattr(base, field.name) if base is not None else _default(field)
            value = from_dict(ftype, value, where=f"{where}.{field.name}",
                              base=inner if isinstance(inner, ftype) else None)
        elif isinstance(value, list) and tuple_type is not None:
            value = _as_tuple(value, tuple_type)
        kwargs[field.name] = value
    return cls(**kwargs)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s keys replaced, nested dicts merged key by key; an empty dict replaces (it
    clears: ``variants: {}``, or ``classifier: {}`` for the config's defaults)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (merge(out[key], value) if isinstance(value, Mapping) and value
                    and isinstance(out.get(key), Mapping) else value)
    return out


def set_path(params: Mapping[str, Any], path: str, value: Any, where: str = "parameters") -> dict[str, Any]:
    """``params`` with the dotted ``path`` (``"classifier.train.epochs"``) set to ``value`` (replacing what is
    there, a dict too); every other key at every level is kept. The first name must exist in ``params`` (a typo
    names the closest one), a deeper name may be new (the stage config's ``from_dict`` checks it, with the list of
    known fields)."""
    head, _, rest = path.partition(".")
    if head not in params:
        close = difflib.get_close_matches(head, list(params), n=1)
        raise KeyError(f"{where}: no parameter {head!r} for {path!r}"
                       + (f" (did you mean {close[0]!r}?)" if close else "") + f"; parameters: {sorted(params)}")
    out = dict(params)
    if not rest:
        out[head] = value
        return out
    inner = out[head] if out[head] is not None else {}
    if not isinstance(inner, Mapping):
        raise KeyError(f"{where}: {path!r} goes into {head!r}, which is {inner!r}, not a dict")
    child, _, _ = rest.partition(".")
    if child not in inner:
        inner = {**inner, child: {} if "." in rest else None}
    out[head] = set_path(inner, rest, value, where=f"{where}.{head}")
    return out


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "overrides") -> dict[str, Any]:
    """``params`` with each ``{dotted path: value}`` of ``overrides`` set by :func:`set_path`, in order."""
    out = dict(params)
    for path, value in overrides.items():
        out = set_path(out, str(path), value, where=where)
    return out


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
    each notebook block it gives is merged into the base's block of that notebook (nested dicts field by field:
    ``classifier: {train: {epochs: 3}}`` keeps the base's other classifier fields), and it runs the base's notebooks
    (``study-stress`` is ``study`` on other data, its recipe written once). ``source`` names the YAML file.
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
            notebooks[stem] = merge(notebooks[stem], block)
        resources = {k: dict(v) for k, v in (base.get("resources") or {}).items()}
        for stem, block in (data.get("resources") or {}).items():
            resources.setdefault(stem, {}).update(block or {})
        data = {"description": data.get("description", base.get("description", "")),
                "common": {**base["common"], **data["common"]}, "notebooks": notebooks, "resources": resources}
    data["source"] = str(path) + (f" (extends {base_name})" if base_name else "")
    return data
