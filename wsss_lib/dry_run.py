"""Dry runs of a profile: every notebook with the profile's own settings and code path, made small by a short,
documented list of caps applied here and nowhere else.

``python -m wsss_lib.reproduce --profile paper-voc --dry-run [--data DIR]`` (``make reproduce PROFILE=paper-voc
DRY_RUN=1``) runs each notebook with :func:`dry_run_parameters` of its profile parameters, under the profile name
``<profile>-dry``: it writes only to ``work/<profile>-dry/`` and ``reports/<profile>-dry/``, and every table and
figure it writes says "dry run" (``RunContext.dry_run``). Without ``--data`` the runner generates the fixtures of
``wsss_lib.data.fixtures.dry_run_data`` (VOC or COCO layout, by the profile's ``dataset``) under ``work/<profile>-dry/fixtures/``.

The caps (:data:`CAPS`), keyed by notebook parameter name; a parameter not listed keeps the profile's value:

==============================  ==================================================================================
parameter                       dry-run value
==============================  ==================================================================================
``profile``                     ``<profile>-dry`` (separate work and reports folders)
``seeds``                       the first seed only
``epochs``, ``detector_epochs``, 1 epoch; ``iterations`` (DeepLab-v2's step count) at most 2
``amn_epochs``
``batch_size``, ``amn_batch_size`` 2; ``detector_batch_size`` 1; ``accumulate_steps``/``detector_accumulate_steps``
                                at most 2 (the accumulation path still runs)
``crop_size``, ``detector_crop_size``, 64 px; ``resize_long_side`` [64, 96]; ``resize_fixed`` 72 (C²AM's resize ->
``amn_crop_size``, ``quick_eval_size`` crop)
``weights``, ``detector_weights`` ``timm`` (a hub download) becomes ``none``: the profile's architectures with random
                                weights, **only because --dry-run says so** (a real run never falls back)
``num_workers``, ``crf_workers`` at most 2
``n_samples``                   at most 2 (figure grids)
``tta_scales``                  the smallest and the largest (the multi-scale path runs; 2 scales instead of 4)
``rib_params``                  1 step of batch 2 at crop 64 (the profile's other RIB settings kept)
``acr_overrides``               1 epoch, batch 2, crop 64, long side [64, 96] (the profile's other ACR settings kept)
==============================  ==================================================================================

``--small-backbones`` (``make dry-runs-small``, what ``make test`` runs in CI) adds one more cap, :data:`SMALL_CAPS`:
every backbone becomes the smallest timm model of its family (:data:`SMALL_BACKBONES`: ResNeSt-269 -> ResNeSt-14d,
ResNet-50/101 -> ResNet-26; same blocks, stages and feature widths, same dilation path) under the profile name
``<profile>-small-dry``. The reason is measured: with the profile's own architectures a dry run takes 15-20 min
per profile on 2 CPU cores and about 7 GB of checkpoints (ResNeSt-269: 440 MB per trained stage), against CI's
8 minutes for both. The profile's own architectures stay covered by the full dry run (``make dry-runs``) and, in
the unit tests, by building every backbone a profile names at its output stride (``tests/test_profile_backbones.py``).

The dry run ends with the real run's training plan (:mod:`wsss_lib.plan`: each training stage it trained, with the
profile's recipe restored from the manifest's caps), and fails if a recipe field does not map back to its parameter.

Images per split are capped by the data: the fixtures are small. With ``--data`` pointing at a real dataset the dry
run reads every image of each split (use the fixtures, or a subset tree, to keep it short).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["CAPS", "SMALL_BACKBONES", "SMALL_CAPS", "dry_run_parameters", "dry_run_profile_name", "is_dry_run_profile"]

DRY_SUFFIX = "-dry"
CROP = 64


def _first(value: Any) -> Any:
    return list(value)[:1] if isinstance(value, (list, tuple)) else value


def _at_most(limit: int) -> Callable[[Any], Any]:
    return lambda value: min(int(value), limit)


def _random_weights(value: Any) -> Any:
    return "none" if value == "timm" else value


def _rib(value: Any) -> dict:
    return {**dict(value or {}), "steps": 1, "batch_size": 2, "crop_size": CROP, "resize_long_side": [CROP, 96]}


def _acr(value: Any) -> dict:
    return {**dict(value or {}), "epochs": 1, "batch_size": 2, "accumulate_steps": 1, "crop_size": CROP,
            "resize_long_side": [CROP, 96]}


CAPS: dict[str, Callable[[Any], Any]] = {
    "seeds": _first,
    "epochs": lambda v: 1,
    "detector_epochs": lambda v: 1,
    "amn_epochs": lambda v: 1,
    "iterations": lambda v: min(int(v), 2),
    "batch_size": lambda v: 2,
    "amn_batch_size": lambda v: 2,
    "detector_batch_size": lambda v: 1,
    "accumulate_steps": _at_most(2),
    "detector_accumulate_steps": _at_most(2),
    "crop_size": lambda v: CROP,
    "detector_crop_size": lambda v: CROP,
    "amn_crop_size": lambda v: CROP,
    "quick_eval_size": lambda v: CROP,
    "resize_long_side": lambda v: [CROP, 96],
    "resize_fixed": lambda v: 72,
    "weights": _random_weights,
    "detector_weights": _random_weights,
    "num_workers": _at_most(2),
    "crf_workers": _at_most(2),
    "n_samples": _at_most(2),
    "tta_scales": lambda v: sorted({min(v), max(v)}),
    "rib_params": _rib,
    "acr_overrides": _acr,
}
"""The dry run's caps: notebook parameter name -> function of the profile's value (see the module docstring)."""


SMALL_BACKBONES: dict[str, str] = {
    "resnest269e": "resnest14d", "resnest200e": "resnest14d", "resnest101e": "resnest14d", "resnest50d": "resnest14d",
    "resnet152": "resnet26", "resnet101": "resnet26", "resnet50": "resnet26",
}
"""``--small-backbones``: a profile's backbone -> the smallest timm model of its family with the same block type
(bottleneck), four stages, the same feature widths (256 ... 2048) and output-stride support."""


def _small_backbone(value: Any) -> Any:
    return SMALL_BACKBONES.get(value, value)


SMALL_CAPS: dict[str, Callable[[Any], Any]] = {"backbone": _small_backbone, "detector_backbone": _small_backbone}
"""The one extra cap of ``--small-backbones`` (on top of :data:`CAPS`)."""

SMALL_SUFFIX = "-small"


def dry_run_profile_name(profile: str, small_backbones: bool = False) -> str:
    if profile.endswith(DRY_SUFFIX):
        return profile
    return profile + (SMALL_SUFFIX if small_backbones else "") + DRY_SUFFIX


def is_dry_run_profile(profile: str) -> bool:
    return profile.endswith(DRY_SUFFIX)


def dry_run_parameters(params: dict[str, Any], small_backbones: bool = False) -> tuple[dict[str, Any], dict[str, tuple]]:
    """``params`` (one notebook's, from the profile) with the caps applied (and :data:`SMALL_CAPS` with
    ``small_backbones``), and ``{name: (profile value, dry-run value)}`` for what changed. Only parameters the profile
    sets are capped: a paper profile sets every setting its notebooks have."""
    out = dict(params)
    changed: dict[str, tuple] = {}
    if "profile" in out:
        out["profile"] = dry_run_profile_name(str(out["profile"]), small_backbones)
        changed["profile"] = (params["profile"], out["profile"])
    caps = {**CAPS, **SMALL_CAPS} if small_backbones else CAPS
    for name, cap in caps.items():
        if name in out:
            value = cap(out[name])
            if value != out[name]:
                changed[name] = (out[name], value)
            out[name] = value
    return out, changed
