"""Fully connected CRF (Krähenbühl & Koltun 2011) through ``pydensecrf2`` (import ``pydensecrf``).

Energy ``E(x) = sum_i U_i(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j)`` with Potts compatibilities and two
kernels: a Gaussian on positions, ``w_g exp(-|p_i-p_j|^2 / 2 sxy_g^2)``, and a bilateral one on positions
and RGB, ``w_b exp(-|p_i-p_j|^2 / 2 sxy_b^2 - |I_i-I_j|^2 / 2 srgb^2)``; ``w`` is pydensecrf's ``compat``.
Mean-field inference runs ``iterations`` steps and returns the marginals ``Q`` (n, H, W).

Two unaries:

- ``labels``: ``unary_from_labels(labels, n, gt_prob, zero_unsure=False)``, i.e. ``-log gt_prob`` for the
  given label and ``-log((1-gt_prob)/(n-1))`` for the others (IRN / PNOC ``crf_inference_label``);
- ``softmax``: ``unary_from_softmax(probs, scale=gt_prob)`` = ``-log(clip(p, 1e-5))``, where a non-None
  ``scale`` first mixes ``p`` with the uniform distribution (PSA / DeepLab use ``scale=None``).

Presets (``official-code-facts.md`` 1.11 and 10.3):

============================  ========  =======  ==========  ==============  ====  ==========================
preset                        unary     gt_prob  Gaussian    Bilateral       t     source / use
============================  ========  =======  ==========  ==============  ====  ==========================
``label``                     labels    0.7      sxy 3, w 3  50 / 5, w 10    10    IRN/PNOC CAM eval, affinity
``label_pseudo_mask``         labels    0.9      sxy 3, w 3  50 / 5, w 10    1     PNOC RW pseudo masks
``softmax_psa``               softmax   None     sxy 3, w 3  80 / 13, w 10   10    PSA, OC-CSE, PuzzleCAM seg
``deeplab_v2``                softmax   None     sxy 1, w 3  67 / 3, w 4     10    PNOC DeepLab inference
============================  ========  =======  ==========  ==============  ====  ==========================

Inputs are validated and made C-contiguous here (pydensecrf's ``setUnaryEnergy`` and
``addPairwiseBilateral`` raise on non-contiguous views).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping

import numpy as np

from wsss_lib.timing import timed

__all__ = [
    "CrfParams",
    "CRF_PRESETS",
    "crf_preset",
    "crf_labels",
    "crf_softmax",
    "dense_crf",
    "label_crf_fn",
]


@dataclass(frozen=True)
class CrfParams:
    """Parameters of one dense-CRF call.

    Attributes:
        unary: ``"labels"`` (hard labels, ``unary_from_labels``) or ``"softmax"`` (probabilities,
            ``unary_from_softmax``).
        gt_prob: ``labels``: probability given to the input label, in (0, 1). ``softmax``: the
            ``scale`` argument of ``unary_from_softmax`` in (0, 1], or ``None`` for no rescaling.
        gaussian_sxy: spatial std (pixels) of the Gaussian (smoothness) kernel.
        gaussian_compat: weight of the Gaussian kernel (Potts).
        bilateral_sxy: spatial std (pixels) of the bilateral (appearance) kernel.
        bilateral_srgb: colour std (0..255 RGB units) of the bilateral kernel.
        bilateral_compat: weight of the bilateral kernel (Potts).
        iterations: mean-field iterations ``t``.
    """

    unary: Literal["labels", "softmax"]
    gt_prob: float | None
    gaussian_sxy: float
    gaussian_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float
    iterations: int

    def __post_init__(self) -> None:
        if self.unary not in ("labels", "softmax"):
            raise ValueError(f"unary must be 'labels' or 'softmax', got {self.unary!r}")
        if self.unary == "labels" and (self.gt_prob is None or not 0.0 < self.gt_prob < 1.0):
            raise ValueError(f"labels unary needs gt_prob in (0, 1), got {self.gt_prob}")
        if self.unary == "softmax" and self.gt_prob is not None and not 0.0 < self.gt_prob <= 1.0:
            raise ValueError(f"softmax unary needs gt_prob (scale) in (0, 1] or None, got {self.gt_prob}")
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")


CRF_PRESETS: Mapping[str, CrfParams] = MappingProxyType(
    {
        "label": CrfParams("labels", 0.7, 3, 3, 50, 5, 10, 10),
        "label_pseudo_mask": CrfParams("labels", 0.9, 3, 3, 50, 5, 10, 1),
        "softmax_psa": CrfParams("softmax", None, 3, 3, 80, 13, 10, 10),
        "deeplab_v2": CrfParams("softmax", None, 1, 3, 67, 3, 4, 10),
    }
)
"""Read-only name -> :class:`CrfParams` table (see the module docstring for sources)."""


def crf_preset(name: str, **overrides: Any) -> CrfParams:
    """The preset ``name`` (a key of :data:`CRF_PRESETS`), optionally with fields replaced."""
    if name not in CRF_PRESETS:
        raise KeyError(f"unknown CRF preset {name!r}; choose one of {sorted(CRF_PRESETS)}")
    return dataclasses.replace(CRF_PRESETS[name], **overrides) if overrides else CRF_PRESETS[name]


def _resolve(params: CrfParams | str, unary: str) -> CrfParams:
    params = crf_preset(params) if isinstance(params, str) else params
    if params.unary != unary:
        raise ValueError(f"these parameters use a {params.unary!r} unary, this function needs {unary!r}")
    return params


def _dcrf():
    try:
        import pydensecrf.densecrf as dcrf
        import pydensecrf.utils as dcrf_utils
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dense CRF needs the pydensecrf2 package (pip install pydensecrf2); the original pydensecrf "
            "does not build with Cython 3"
        ) from err
    return dcrf, dcrf_utils


def _check_image(image: Any) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an H x W x 3 uint8 RGB array, got dtype {image.dtype} with shape {image.shape}"
        )
    # pydensecrf needs a C-contiguous *writable* buffer (images decoded by PIL are read-only views)
    return np.require(image, requirements=["C_CONTIGUOUS", "WRITEABLE"])


@timed("crf")
def dense_crf(image: np.ndarray, unary: np.ndarray, params: CrfParams) -> np.ndarray:
    """Mean-field marginals ``Q`` (float32, ``(n, H, W)``) for a precomputed ``(n, H*W)`` unary energy."""
    dcrf, _ = _dcrf()
    image = _check_image(image)
    h, w = image.shape[:2]
    n_labels = unary.shape[0]
    if unary.ndim != 2 or unary.shape[1] != h * w:
        raise ValueError(f"unary must have shape (n, {h * w}) for a {h}x{w} image, got {unary.shape}")
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(np.require(unary, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"]))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=image, compat=params.bilateral_compat
    )
    q = crf.inference(params.iterations)
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)


def crf_labels(
    image: np.ndarray, labels: np.ndarray, n_labels: int, params: CrfParams | str = "label"
) -> np.ndarray:
    """Refine a hard label map: ``argmax`` of the CRF marginals with a ``labels`` unary (uint8, H x W).

    ``labels`` holds integer ids in ``[0, n_labels)`` (e.g. channel indices into ``[0, *keys]``);
    ``2 <= n_labels <= 256``.
    """
    params = _resolve(params, "labels")
    image = _check_image(image)
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an H x W integer array, got dtype {labels.dtype} with shape {labels.shape}")
    if labels.shape != image.shape[:2]:
        raise ValueError(f"labels shape {labels.shape} does not match image shape {image.shape}")
    if not 2 <= n_labels <= 256:
        raise ValueError(f"n_labels must be in [2, 256], got {n_labels}")
    if labels.min() < 0 or labels.max() >= n_labels:
        raise ValueError(f"labels hold values in [{labels.min()}, {labels.max()}], expected [0, {n_labels})")
    _, dcrf_utils = _dcrf()
    unary = dcrf_utils.unary_from_labels(labels, n_labels, gt_prob=params.gt_prob, zero_unsure=False)
    q = dense_crf(image, unary, params)
    return np.argmax(q, axis=0).astype(np.uint8)


def crf_softmax(image: np.ndarray, probs: np.ndarray, params: CrfParams | str = "softmax_psa") -> np.ndarray:
    """CRF marginals (float32, ``(n, H, W)``) from class probabilities ``probs`` (n, H, W) summing to 1."""
    params = _resolve(params, "softmax")
    image = _check_image(image)
    probs = np.asarray(probs)
    if probs.ndim != 3 or not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"probs must be an (n, H, W) float array, got dtype {probs.dtype} with shape {probs.shape}")
    if probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs shape {probs.shape} does not match image shape {image.shape}")
    if probs.shape[0] < 2:
        raise ValueError(f"probs needs at least 2 classes, got shape {probs.shape}")
    if not np.isfinite(probs).all() or probs.min() < 0:
        raise ValueError("probs must be finite and non-negative")
    total = probs.sum(axis=0, dtype=np.float64)
    if not np.allclose(total, 1.0, atol=1e-3):
        raise ValueError(
            f"probs must sum to 1 over the class axis, sums lie in [{total.min():.4f}, {total.max():.4f}]"
        )
    _, dcrf_utils = _dcrf()
    unary = dcrf_utils.unary_from_softmax(probs, scale=params.gt_prob)
    return dense_crf(image, unary, params)


def label_crf_fn(params: CrfParams | str = "label") -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """``(image, labels, n_labels) -> labels`` callable for :func:`wsss_lib.evaluation.threshold_sweep`."""
    return functools.partial(crf_labels, params=_resolve(params, "labels"))
