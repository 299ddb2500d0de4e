"""A worked example of a new priors method, to copy: CAM with a global max-pooling term.

Loss: ``L = l_cls(GAP(A), y~) + λ l_cls(GMP(A), y~)``, with ``A`` the class activation maps, GAP / GMP the global
average / max pooling, ``l_cls`` the multi-label soft margin loss, ``y~`` the (optionally smoothed) labels and ``λ``
:attr:`MaxPoolCAMConfig.max_weight`. GAP spreads the evidence over the object, GMP rewards the single most
discriminative location; the sum is a classic way to see how the CAM's extent responds to the pooling.

How to add your own method (README, "Your own method"):

1. **Config**: a frozen dataclass whose defaults are the method's published settings, each field documented.
   Notebooks fill it from ``method_params`` (unknown fields fail, naming the method); ``label_smoothing`` must be
   a field, since notebooks 01-05 set it for their ``+LS`` rows.
2. **Losses**: a :class:`~wsss_lib.methods.base.Method` (here :class:`~wsss_lib.methods.base.SingleNetworkMethod`:
   one classifier, one optimizer) whose ``losses`` returns the named, weighted terms, written as the equations
   above; the trainer sums them, logs each term and stops on a non-finite one.
3. **Registry**: ``register_method("maxpool_cam", "classifier", MaxPoolCAMConfig, build_maxpool_cam)`` from your
   module (import it in the notebook's first cell), or a line in ``wsss_lib.methods.registry._specs`` for a method
   of the library.
4. **A row**: ``method = "maxpool_cam"`` in a copy of notebook 01 (or a profile's block for it), or a named variant
   ``variants = {"GAP+GMP (λ 1)": {"max_weight": 1.0}}``; the run is recorded as a priors run and enters notebook
   06's tables like the paper's methods.

This module is not registered by the library; ``tests/methods/test_own_method.py`` registers and trains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import Method, SingleNetworkMethod, StepInfo
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.cam import create_cam_classifier
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["MaxPoolCAMConfig", "MaxPoolCAM", "build_maxpool_cam"]


@dataclass(frozen=True)
class MaxPoolCAMConfig:
    max_weight: float = 0.5
    """``λ``, the weight of the global max-pooling term."""
    label_smoothing: float = 0.0
    """Amount ``a`` of multi-label smoothing (notebooks 01-05 set it for their ``+LS`` rows)."""


class MaxPoolCAM(SingleNetworkMethod):
    """CAM trained on GAP and GMP of its class maps (see the module docstring)."""

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"])
        targets = smooth_multilabel(batch["label"], self.cfg.label_smoothing)
        gmp = out.cams.float().amax(dim=(2, 3))
        return {"cls": F.multilabel_soft_margin_loss(out.logits.float(), targets),
                "gmp": self.cfg.max_weight * F.multilabel_soft_margin_loss(gmp, targets)}


def build_maxpool_cam(cfg: MaxPoolCAMConfig, backbone: BackboneConfig, num_classes: int, **_: Any) -> Method:
    """The registry's builder: the method from its config, backbone and number of foreground classes."""
    return MaxPoolCAM(create_cam_classifier(backbone, num_classes), cfg)
