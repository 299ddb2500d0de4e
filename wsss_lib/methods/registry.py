"""Method names -> (config dataclass, builder). Notebooks choose a method by name and pass its parameters."""

from __future__ import annotations

from typing import Any, Callable

from wsss_lib.config import from_dict
from wsss_lib.methods.acr import ACR, ACRConfig
from wsss_lib.methods.base import Method
from wsss_lib.methods.cam import CAMConfig, CAMMethod
from wsss_lib.methods.occse import OCCSE, OCCSEConfig
from wsss_lib.methods.ordinary import build_ordinary_classifier
from wsss_lib.methods.pnoc import PNOC, PNOCConfig
from wsss_lib.methods.poc import POC, POCConfig
from wsss_lib.methods.puzzle import PuzzleCAM, PuzzleConfig
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.cam import create_cam_classifier
from wsss_lib.models.reconstructor import ReconstructorConfig, create_reconstructor

__all__ = ["available_methods", "method_config", "build_method"]


def _build_cam(cfg: CAMConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return CAMMethod(create_cam_classifier(backbone, num_classes), cfg)


def _build_puzzle(cfg: PuzzleConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    return PuzzleCAM(create_cam_classifier(backbone, num_classes), cfg)


def _build_acr(cfg: ACRConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    recon = ReconstructorConfig(dim=cfg.dim, low_dims=tuple(cfg.low_dims), decoder_width=cfg.decoder_width)
    return ACR(create_cam_classifier(backbone, num_classes), create_reconstructor(backbone, num_classes, recon), cfg)


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


def _specs() -> dict[str, tuple[type, Callable[..., Method]]]:
    return {"cam": (CAMConfig, _build_cam), "puzzle": (PuzzleConfig, _build_puzzle),
            "occse": (OCCSEConfig, _with_ordinary(OCCSE)), "poc": (POCConfig, _with_ordinary(POC)),
            "pnoc": (PNOCConfig, _with_ordinary(PNOC)), "acr": (ACRConfig, _build_acr)}


def available_methods() -> list[str]:
    return sorted(_specs())


def method_config(name: str, params: dict[str, Any] | None = None):
    """The typed config of method ``name`` from ``params`` (unknown keys raise)."""
    specs = _specs()
    if name not in specs:
        raise KeyError(f"unknown method {name!r}; available: {sorted(specs)}")
    return from_dict(specs[name][0], params or {}, where=f"method {name!r}")


def build_method(name: str, cfg, backbone: BackboneConfig, num_classes: int, **extra: Any) -> Method:
    """Instantiate method ``name`` with its config, backbone and class count.

    ``extra`` carries method-specific inputs: ``ordinary_state`` (the ordinary classifier's weights) for OC-CSE,
    P-OC and P-NOC, or ``untrained_ordinary=True`` to build their ordinary classifier without those weights,
    for throughput measurements or when the whole method's saved state is loaded right after.
    """
    return _specs()[name][1](cfg, backbone, num_classes, **extra)
