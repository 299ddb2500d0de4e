"""A notebook's parameters in the stage configs' own shape: which config each dict parameter is, and the one call
with which a notebook builds them.

Every notebook takes one dict parameter per stage it runs, named as in :data:`PARAMETER_TYPES` (the same name is the
same config in every notebook and profile), in that config's nested shape::

    classifier = {"backbone": {"name": "resnest269e", "weights": "timm"}, "train": {"epochs": 15}, ...}

A dict fills its config over the config's defaults (``wsss_lib.config.from_dict``), which hold the paper's settings:
a profile or a notebook writes only what it changes. Besides those, a notebook has ``dataset`` / ``data_root`` (set
into every stage config that has a dataset), ``runtime`` (:class:`RuntimeConfig`: device,
processes, data workers; set into every training config) and ``overrides``: dotted paths into the dict parameters
(``{"classifier.train.epochs": 3}``), applied first, so that changing one nested field never drops the others
(``reproduce --set classifier.train.epochs=3`` passes them this way too).

:func:`notebook_configs` is the notebook's call; :func:`check_parameters` is the runner's check of a profile before
anything runs (typos fail with the list of known fields and the profile's file).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from types import SimpleNamespace
from typing import Any, Mapping

from wsss_lib.config import apply_overrides, from_dict, merge
from wsss_lib.data import DatasetConfig
from wsss_lib.inference.affinity import RandomWalkConfig
from wsss_lib.inference.segmentation import SegInferenceConfig
from wsss_lib.inference.tta import TTAConfig
from wsss_lib.methods.rib import RIBConfig
from wsss_lib.refinement.affinity_labels import AffinityLabelConfig
from wsss_lib.stages.classifier import ClassifierStageConfig
from wsss_lib.stages.comparators import AMN_LABELS, AMNStageConfig
from wsss_lib.stages.priors import OrdinaryConfig
from wsss_lib.stages.refinement import AffinityStageConfig, PseudoMaskConfig
from wsss_lib.stages.saliency import C2AMStageConfig, DetectorStageConfig, PseudoSaliencyConfig
from wsss_lib.stages.segmentation import SegmentationStageConfig
from wsss_lib.train.trainer import TrainConfig

__all__ = ["RuntimeConfig", "RUNTIME_IN_TRAINING", "VARIANTS", "build_variants", "PARAMETER_TYPES", "PARAMETER_BASES", "PARAMETER_DEFAULTS", "notebook_configs", "build_parameter",
           "check_parameters"]

@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a notebook's stages run; none of it changes a result, so none of it enters a stage key. The
    fields that a ``TrainConfig`` also has (``NOT_A_KEY`` there) are set into every training config of the notebook."""

    device: str = "auto"
    devices: int = 1
    """Processes that train together (torchrun + DDP: GPUs, or CPU processes); ``wsss_lib.train.distributed``."""
    num_workers: int = 2
    """DataLoader workers per process."""
    crf_workers: int = 2
    """Processes of the per-image stages that run a pool (the dense CRFs of the affinity labels, pseudo-saliency,
    pseudo-masks and segmentation predictions); not set into any training config."""


RUNTIME_IN_TRAINING = tuple(f.name for f in fields(RuntimeConfig)
                            if f.name in {t.name for t in fields(TrainConfig) if not t.metadata.get("key", True)})
"""The runtime fields set into every training config: those ``TrainConfig`` marks as not part of a stage key."""


PARAMETER_TYPES: dict[str, type] = {
    "runtime": RuntimeConfig,
    # priors (01-05, 11)
    "classifier": ClassifierStageConfig, "ordinary": OrdinaryConfig, "tta": TTAConfig,
    # comparators (11)
    "acr": ClassifierStageConfig, "amn": AMNStageConfig, "amn_labels": AffinityLabelConfig, "rib": RIBConfig,
    # saliency (07)
    "c2am": C2AMStageConfig, "detector": DetectorStageConfig, "pseudo_saliency": PseudoSaliencyConfig,
    # refinement (08)
    "affinity": AffinityStageConfig, "labels": AffinityLabelConfig, "walk": RandomWalkConfig,
    "pseudo": PseudoMaskConfig,
    # segmentation (09)
    "segmentation": SegmentationStageConfig, "inference": SegInferenceConfig,
}
"""Notebook dict parameter -> the config it is (the same in every notebook that has it)."""

PARAMETER_BASES: dict[str, str] = {"acr": "classifier"}
"""A parameter merged over another before it is built: ACR's recipe is the priors ``classifier`` with ACR's own
changes (lr, batch, epochs, crop, its ``method_params``)."""

PARAMETER_DEFAULTS: dict[str, Any] = {"amn_labels": AMN_LABELS}
"""A parameter whose defaults are not its class's (AMN's IR labels: the conventional rule, fg 0.30 / bg 0.05)."""


def build_parameter(name: str, params: Mapping[str, Any], where: str, dataset: DatasetConfig | None = None,
                    runtime: RuntimeConfig | None = None) -> Any:
    """The typed config of the dict parameter ``name`` among a notebook's ``params`` (a name of
    :data:`PARAMETER_TYPES`), with ``dataset`` and ``runtime`` set where it has them."""
    if name not in PARAMETER_TYPES:
        raise KeyError(f"{where}: {name!r} is not a stage parameter; known: {sorted(PARAMETER_TYPES)}")
    given = params[name]
    if given is not None and not isinstance(given, Mapping):
        raise TypeError(f"{where}: {name} must be a dict of {PARAMETER_TYPES[name].__name__} fields, got {given!r}")
    value = dict(given or {})
    if name in PARAMETER_BASES:  # over the base's recipe; its method_params are the base method's, not this one's
        base = {k: v for k, v in dict(params.get(PARAMETER_BASES[name]) or {}).items() if k != "method_params"}
        value = merge(base, value)
    cfg = from_dict(PARAMETER_TYPES[name], value, where=f"{where}: {name}", base=PARAMETER_DEFAULTS.get(name))
    names = {f.name for f in fields(cfg)}
    changes: dict[str, Any] = {}
    if dataset is not None and "dataset" in names:
        changes["dataset"] = dataset
    if runtime is not None and "train" in names:
        changes["train"] = replace(cfg.train, **{name: getattr(runtime, name) for name in RUNTIME_IN_TRAINING})
    return replace(cfg, **changes) if changes else cfg


VARIANTS = "_variants"
"""A parameter ``<stage>_variants`` (e.g. ``segmentation_variants``): named variants of the stage dict ``<stage>``,
each a dict merged over it (DeepLabV2's recipe beside DeepLabV3+'s), built and checked like the stage dict itself."""


def build_variants(name: str, params: Mapping[str, Any], where: str, dataset: DatasetConfig | None = None,
                   runtime: RuntimeConfig | None = None) -> dict[str, Any]:
    """``{variant: config}`` of the parameter ``<stage>_variants`` among ``params`` (see :data:`VARIANTS`)."""
    base = name.removesuffix(VARIANTS)
    variants = params.get(name) or {}
    if not isinstance(variants, Mapping) or not all(isinstance(v, Mapping) for v in variants.values()):
        raise TypeError(f"{where}: {name} must map variant names to dicts of {base} fields, got {variants!r}")
    return {label: build_parameter(base, {**params, base: merge(dict(params.get(base) or {}), dict(value))},
                                   f"{where}: {name}[{label!r}]", dataset, runtime)
            for label, value in variants.items()}


def _is_variants(name: str) -> bool:
    return name.endswith(VARIANTS) and name.removesuffix(VARIANTS) in PARAMETER_TYPES


def notebook_configs(where: str, *, dataset: str, data_root: str, runtime: Mapping[str, Any],
                     overrides: Mapping[str, Any] | None = None, **params: Any) -> SimpleNamespace:
    """A notebook's typed configs: ``overrides`` (dotted paths) applied to ``runtime`` and the dict parameters
    ``params``, each built as :data:`PARAMETER_TYPES` says (and ``<stage>_variants`` as :data:`VARIANTS` says);
    attributes ``data`` (the dataset config), ``runtime`` and one per parameter. ``where``: the notebook's name,
    for error messages."""
    given = apply_overrides({"runtime": runtime, **params}, overrides or {}, where=f"{where}: overrides")
    data = DatasetConfig(name=dataset, data_root=data_root)
    run = from_dict(RuntimeConfig, dict(given["runtime"] or {}), where=f"{where}: runtime")
    built = {name: (build_variants(name, given, where, data, run) if _is_variants(name)
                    else build_parameter(name, given, where, data, run))
             for name in given if name != "runtime"}
    return SimpleNamespace(data=data, runtime=run, **built)


def check_parameters(params: Mapping[str, Any], where: str) -> list[str]:
    """Build every stage parameter among one notebook's complete ``params`` (its defaults with the profile's
    values over them), ``overrides`` applied; return the errors (empty when every one builds)."""
    try:
        given = apply_overrides({k: v for k, v in params.items() if k in PARAMETER_TYPES or _is_variants(k)},
                                params.get("overrides") or {}, where=f"{where}: overrides")
    except KeyError as exc:
        return [str(exc.args[0])]
    errors = []
    for name in given:
        try:
            build_variants(name, given, where) if _is_variants(name) else build_parameter(name, given, where)
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(str(exc.args[0]) if exc.args else repr(exc))
    return errors
