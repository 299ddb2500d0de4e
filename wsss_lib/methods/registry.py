"""Every training method by name -> (family, config dataclass, builder), built the same way:
``build_method(name, method_config(name, params), backbone, num_classes, **extra)``.

Families: ``classifier`` (the CAM priors: CAM, Puzzle-CAM, OC-CSE, P-OC, P-NOC, and the comparator ACR), ``c2am``
(C²AM / C²AM-H), ``saliency_detector``, ``affinity`` (the affinity network), ``segmentation`` (DeepLab) and ``amn``.
RIB is not here: it fine-tunes a trained classifier per image at inference (``wsss_lib.inference.rib``).
Notebooks choose a method by name and pass its parameters; unknown parameters fail naming the method.

A new method is one module (``wsss_lib/methods/template.py`` is a worked example to copy: a config dataclass whose
defaults are the method's published settings, a :class:`~wsss_lib.methods.base.Method` whose ``losses`` returns its
named terms, a builder) and one registry entry: a line in :func:`_specs` for a method of the library, or
:func:`register_method` from the user's own module (imported before the notebook runs its priors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from wsss_lib.config import from_dict
from wsss_lib.methods.acr import ACR, ACRConfig
from wsss_lib.methods.affinity import AffinityLossConfig, AffinityMethod
from wsss_lib.methods.amn import AMNLossConfig, AMNMethod
from wsss_lib.methods.base import Method
from wsss_lib.methods.c2am import C2AMConfig, C2AMMethod
from wsss_lib.methods.cam import CAMConfig, CAMMethod
from wsss_lib.methods.occse import OCCSE, OCCSEConfig
from wsss_lib.methods.ordinary import build_ordinary_classifier
from wsss_lib.methods.pnoc import PNOC, PNOCConfig
from wsss_lib.methods.poc import POC, POCConfig
from wsss_lib.methods.puzzle import PuzzleCAM, PuzzleConfig
from wsss_lib.methods.saliency_detector import SaliencyDetectorMethod
from wsss_lib.methods.segmentation import SegmentationLossConfig, SegmentationMethod
from wsss_lib.models.affinity import AffinityNetConfig, create_affinity_network
from wsss_lib.models.amn import AMNNetConfig, create_amn_network
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.c2am import create_c2am_network
from wsss_lib.models.cam import create_cam_classifier
from wsss_lib.models.deeplab import DeepLabConfig, create_deeplab
from wsss_lib.models.reconstructor import ReconstructorConfig, create_reconstructor
from wsss_lib.models.saliency import DetectorConfig, create_saliency_detector

__all__ = ["available_methods", "method_config", "build_method", "method_family", "register_method",
           "AffinityMethodConfig", "SegmentationMethodConfig", "AMNMethodConfig"]

_REGISTERED: dict[str, tuple[str, type, Callable[..., Method]]] = {}
"""Methods added with :func:`register_method` (a user's own), beside the library's (:func:`_specs`)."""


def register_method(name: str, family: str, config: type, builder: Callable[..., Method]) -> None:
    """Register method ``name`` of ``family`` (``"classifier"`` for a priors method, trained by notebooks 01-05's
    ``run_priors``): ``config`` is its config dataclass (``method_params`` fill it, unknown fields fail) and
    ``builder(cfg, backbone, num_classes, **extra)`` returns the :class:`~wsss_lib.methods.base.Method`. A name the
    library already uses is an error; registering the same method again is allowed (a notebook cell rerun)."""
    builtin = _specs(registered=False)
    if name in builtin:
        raise ValueError(f"method {name!r} is one of the library's ({sorted(builtin)}); choose another name")
    families = {spec[0] for spec in builtin.values()}
    if family not in families:
        raise ValueError(f"unknown method family {family!r}; known: {sorted(families)}")
    _REGISTERED[name] = (family, config, builder)


@dataclass(frozen=True)
class AffinityMethodConfig:
    """The affinity network's architecture and losses (``AffinityStageConfig.network`` / ``.loss``)."""

    network: AffinityNetConfig = field(default_factory=AffinityNetConfig)
    loss: AffinityLossConfig = field(default_factory=AffinityLossConfig)


@dataclass(frozen=True)
class SegmentationMethodConfig:
    """DeepLab's architecture and loss (``SegmentationStageConfig.network`` / ``.loss``)."""

    network: DeepLabConfig = field(default_factory=DeepLabConfig)
    loss: SegmentationLossConfig = field(default_factory=SegmentationLossConfig)


@dataclass(frozen=True)
class AMNMethodConfig:
    """AMN's label-conditioned network and losses (``AMNStageConfig.network`` / ``.loss``)."""

    network: AMNNetConfig = field(default_factory=AMNNetConfig)
    loss: AMNLossConfig = field(default_factory=AMNLossConfig)


def _build_cam(cfg: CAMConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return CAMMethod(create_cam_classifier(backbone, num_classes), cfg)


def _build_puzzle(cfg: PuzzleConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return PuzzleCAM(create_cam_classifier(backbone, num_classes), cfg)


def _build_acr(cfg: ACRConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    recon = ReconstructorConfig(dim=cfg.dim, low_dims=tuple(cfg.low_dims), decoder_width=cfg.decoder_width)
    return ACR(create_cam_classifier(backbone, num_classes), create_reconstructor(backbone, num_classes, recon), cfg)


def _build_c2am(cfg: C2AMConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return C2AMMethod(create_c2am_network(backbone), cfg)  # class-agnostic: num_classes unused


def _build_detector(cfg: DetectorConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return SaliencyDetectorMethod(create_saliency_detector(backbone, cfg))  # class-agnostic


def _build_affinity(cfg: AffinityMethodConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return AffinityMethod(create_affinity_network(backbone, cfg.network), cfg.loss)  # class-agnostic


def _build_segmentation(cfg: SegmentationMethodConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return SegmentationMethod(create_deeplab(backbone, cfg.network, num_classes), cfg.loss)


def _build_amn(cfg: AMNMethodConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return AMNMethod(create_amn_network(backbone, num_classes, cfg.network), cfg.loss)


def _with_ordinary(cls: type) -> Callable[..., Method]:
    """Builder of a method that needs the ordinary classifier's weights (``ordinary_state``)."""

    def build(cfg, backbone: BackboneConfig, num_classes: int, ordinary_state: dict | None = None,
              untrained_ordinary: bool = False, **_: Any) -> Method:
        if ordinary_state is None and not untrained_ordinary:
            raise ValueError(f"{cls.__name__} needs ordinary_state: the weights of the RandAugment + LS classifier "
                             "(notebook 01's ordinary classifier, see wsss_lib.stages.classifier.load_classifier)")
        ordinary = build_ordinary_classifier(backbone, num_classes, ordinary_state)
        return cls(create_cam_classifier(backbone, num_classes), ordinary, cfg)

    return build


def _specs(registered: bool = True) -> dict[str, tuple[str, type, Callable[..., Method]]]:
    return {**(_REGISTERED if registered else {}), "cam": ("classifier", CAMConfig, _build_cam), "puzzle": ("classifier", PuzzleConfig, _build_puzzle),
            "occse": ("classifier", OCCSEConfig, _with_ordinary(OCCSE)),
            "poc": ("classifier", POCConfig, _with_ordinary(POC)),
            "pnoc": ("classifier", PNOCConfig, _with_ordinary(PNOC)), "acr": ("classifier", ACRConfig, _build_acr),
            "c2am": ("c2am", C2AMConfig, _build_c2am),
            "saliency_detector": ("saliency_detector", DetectorConfig, _build_detector),
            "affinity": ("affinity", AffinityMethodConfig, _build_affinity),
            "segmentation": ("segmentation", SegmentationMethodConfig, _build_segmentation),
            "amn": ("amn", AMNMethodConfig, _build_amn)}


def available_methods(family: str | None = None) -> list[str]:
    """Registered method names, all or those of one family (e.g. ``"classifier"``: what notebooks 01-05 train)."""
    return sorted(name for name, spec in _specs().items() if family is None or spec[0] == family)


def method_family(name: str) -> str:
    return _specs()[name][0]


def method_config(name: str, params: dict[str, Any] | None = None):
    """The typed config of method ``name`` from ``params`` (unknown keys raise)."""
    specs = _specs()
    if name not in specs:
        raise KeyError(f"unknown method {name!r}; available: {sorted(specs)}")
    return from_dict(specs[name][1], params or {}, where=f"method {name!r}")


def build_method(name: str, cfg, backbone: BackboneConfig, num_classes: int, **extra: Any) -> Method:
    """Instantiate method ``name`` with its config, backbone and class count.

    ``extra`` carries method-specific inputs: ``ordinary_state`` (the ordinary classifier's weights) for OC-CSE,
    P-OC and P-NOC, or ``untrained_ordinary=True`` to build their ordinary classifier without those weights,
    for throughput measurements or when the whole method's saved state is loaded right after.
    """
    specs = _specs()
    if name not in specs:
        raise KeyError(f"unknown method {name!r}; available: {sorted(specs)}")
    if not isinstance(cfg, specs[name][1]):
        raise TypeError(f"method {name!r} takes a {specs[name][1].__name__}, got {type(cfg).__name__}")
    return specs[name][2](cfg, backbone, num_classes, **extra)
