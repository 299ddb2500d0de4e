"""Dry runs of a profile: every notebook with the profile's own settings and code path, made small by a short,
documented list of caps applied here and nowhere else.

``python -m wsss_lib.reproduce --profile paper-voc --dry-run [--data DIR]`` (``make reproduce PROFILE=paper-voc
DRY_RUN=1``) runs each notebook with :func:`dry_run_parameters` of its profile parameters, under the profile name
``<profile>-dry``: it writes only to ``work/<profile>-dry/`` and ``reports/<profile>-dry/``, and every table and
figure it writes says "dry run" (``RunContext.dry_run``). Without ``--data`` the runner generates the fixtures of
``wsss_lib.data.fixtures.dry_run_data`` (VOC or COCO layout, by the profile's ``dataset``) under ``work/<profile>-dry/fixtures/``.

The caps (:data:`CAPS`) are keyed by parameter path: a top-level notebook parameter (``seeds``) or a dotted path
into a stage config (``*`` matches any run of names, dots included). They act on the *resolved* config, the
profile's dict over the config's defaults, so a profile that writes ``classifier: {}`` (the paper's recipe) is
capped too; only the leaves a cap changes are written into the notebook's dict. A path not listed keeps its value:

=====================================  ===========================================================================
parameter path                         dry-run value
=====================================  ===========================================================================
``profile``                            ``<profile>-dry`` (separate work and reports folders)
``seeds``                              the first seed only
``*.train.epochs``                     1 epoch; ``*.iterations`` (DeepLab-v2's step count) at most 2
``*.train.batch_size``                 at most 2 (the detector's 1 stays 1)
``*.optim.accumulate_steps``           at most 2 (the accumulation path still runs)
``*.crop_size``                        64 px; ``*.resize_long_side`` [64, 96]; ``*.resize_fixed`` 72 (C²AM's resize ->
                                       crop); ``*.train.eval.size`` 64
``*.backbone.weights``                 ``timm`` (a hub download) becomes ``none``: the profile's architectures with
                                       random weights, **only because --dry-run says so** (a real run never falls back)
``runtime.num_workers``, ``runtime.crf_workers`` at most 2
``n_samples``                          at most 2 (figure grids)
``tta.scales``, ``inference.scales``   the smallest and the largest (the multi-scale path runs; 2 scales instead of 4)
``rib.steps``, ``rib.batch_size``      1 step of batch 2 (with RIB's crop capped by ``*.crop_size``)
=====================================  ===========================================================================

ACR's recipe (``acr``, merged over the priors ``classifier``) is capped like every classifier: 1 epoch, batch 2,
crop 64, long side [64, 96].

``--small-backbones`` (``make dry-runs-small``, what ``make test`` runs in CI) adds one more cap, :data:`SMALL_CAPS`:
every backbone becomes the smallest timm model of its family (:data:`SMALL_BACKBONES`: ResNeSt-269 -> ResNeSt-14d,
ResNet-50/101 -> ResNet-26; same blocks, stages and feature widths, same dilation path) under the profile name
``<profile>-small-dry``. The reason is measured: with the profile's own architectures a dry run takes 15-20 min
per profile on 2 CPU cores and about 7 GB of checkpoints (ResNeSt-269: 440 MB per trained stage), against CI's
8 minutes for both. The profile's own architectures stay covered by the full dry run (``make dry-runs``) and, in
the unit tests, by building every backbone a profile names at its output stride (``tests/models/test_profile_backbones.py``).

The dry run ends with the real run's training plan (:mod:`wsss_lib.runner.plan`: each training stage it trained, with the
profile's recipe restored from the manifest's caps), and fails if a recipe field does not map back to its parameter.

Images per split are capped by the data: the fixtures are small. With ``--data`` pointing at a real dataset the dry
run reads every image of each split (use the fixtures, or a subset tree, to keep it short).
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, Mapping

from wsss_lib.config import set_path
from wsss_lib.paths import dry_run_profile_name, is_dry_run_profile

__all__ = ["CAPS", "SMALL_BACKBONES", "SMALL_CAPS", "dry_run_parameters", "dry_run_profile_name", "is_dry_run_profile",
           "leaves"]

CROP = 64


def _first(value: Any) -> Any:
    return list(value)[:1] if isinstance(value, (list, tuple)) else value


def _at_most(limit: int) -> Callable[[Any], Any]:
    return lambda value: min(int(value), limit)


def _random_weights(value: Any) -> Any:
    return "none" if value == "timm" else value


def _two_scales(value: Any) -> Any:
    return sorted({min(value), max(value)})


CAPS: dict[str, Callable[[Any], Any]] = {
    "seeds": _first,
    "n_samples": _at_most(2),
    "runtime.crf_workers": _at_most(2),
    "runtime.num_workers": _at_most(2),
    "*.train.epochs": lambda v: 1,
    "*.iterations": _at_most(2),
    "*.train.batch_size": _at_most(2),
    "*.optim.accumulate_steps": _at_most(2),
    "*.crop_size": lambda v: CROP,
    "*.resize_long_side": lambda v: [CROP, 96],
    "*.resize_fixed": lambda v: 72,
    "*.train.eval.size": lambda v: CROP,
    "*.backbone.weights": _random_weights,
    "tta.scales": _two_scales,
    "inference.scales": _two_scales,
    "rib.steps": lambda v: 1,
    "rib.batch_size": _at_most(2),
}
"""The dry run's caps: parameter path pattern -> function of the resolved value (see the module docstring)."""


SMALL_BACKBONES: dict[str, str] = {
    "resnest269e": "resnest14d", "resnest200e": "resnest14d", "resnest101e": "resnest14d", "resnest50d": "resnest14d",
    "resnet152": "resnet26", "resnet101": "resnet26", "resnet50": "resnet26",
}
"""``--small-backbones``: a profile's backbone -> the smallest timm model of its family with the same block type
(bottleneck), four stages, the same feature widths (256 ... 2048) and output-stride support."""


def _small_backbone(value: Any) -> Any:
    return SMALL_BACKBONES.get(value, value)


SMALL_CAPS: dict[str, Callable[[Any], Any]] = {"*.backbone.name": _small_backbone}
"""The one extra cap of ``--small-backbones`` (on top of :data:`CAPS`)."""

def leaves(value: Any, prefix: str) -> list[tuple[str, Any]]:
    """``(dotted path, value)`` of every leaf of a nested dict (a non-dict value is one leaf, at ``prefix``)."""
    if isinstance(value, Mapping) and value:
        return [leaf for key, inner in value.items() for leaf in leaves(inner, f"{prefix}.{key}")]
    return [(prefix, value)]


def _cap_for(path: str, caps: Mapping[str, Callable[[Any], Any]]) -> Callable[[Any], Any] | None:
    return next((cap for pattern, cap in caps.items() if fnmatch.fnmatchcase(path, pattern)), None)


def dry_run_parameters(params: dict[str, Any], small_backbones: bool = False,
                       resolve: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None
                       ) -> tuple[dict[str, Any], dict[str, tuple]]:
    """``params`` (one notebook's, from the profile) with the caps applied (and :data:`SMALL_CAPS` with
    ``small_backbones``), and ``{path: (profile value, dry-run value)}`` for what changed.

    ``resolve(name, params)``: the complete config of the dict parameter ``name`` as a nested dict (the runner
    passes ``wsss_lib.stages.parameters``' build), or ``None`` for a parameter that is not a stage config; the caps
    read that and write only the leaves they change into ``params[name]``. Without it a dict is capped as given."""
    out = dict(params)
    changed: dict[str, tuple] = {}
    if "profile" in out:
        out["profile"] = dry_run_profile_name(str(out["profile"]), small_backbones)
        changed["profile"] = (params["profile"], out["profile"])
    caps = {**CAPS, **SMALL_CAPS} if small_backbones else CAPS
    for name in list(out):
        value = out[name]
        resolved = (resolve(name, params) if resolve is not None and (isinstance(value, Mapping) or value is None)
                    else None)
        for path, leaf in leaves(resolved if resolved is not None else value, name):
            cap = _cap_for(path, caps)
            if cap is None:
                continue
            capped = cap(leaf)
            if capped != leaf:
                changed[path] = (leaf, capped)
                out = set_path(out, path, capped, where="dry run")
    return out, changed
