"""Frozen batch normalisation: the official code's ``mode="fix"`` for backbones.

The official ``FixedBatchNorm`` (PuzzleCAM/P-NOC ``core/networks.py``) keeps every BatchNorm layer of the
backbone on its running statistics, even in ``train()`` mode, and freezes its affine parameters:

    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias        (all four fixed)

P-NOC uses it for the ordinary classifier (OC); the CAM generator keeps trainable BN (``mode="normal"``).

We reuse ``timm.layers.freeze_batch_norm_2d``, which converts ``nn.BatchNorm2d`` / ``nn.SyncBatchNorm`` into
torchvision's ``FrozenBatchNorm2d`` and timm's ``BatchNormAct2d`` / ``SyncBatchNormAct`` (the fused BN + activation
used by EfficientNet, RegNet, ...) into ``FrozenBatchNormAct2d``, copying the statistics, affine values and ``eps``.
The frozen layers hold these four tensors as *buffers*, so they contribute no parameters to the optimiser and no
layer can update its statistics. This function only adds an input check and a post-condition check around it.
"""

from __future__ import annotations

from timm.layers import freeze_batch_norm_2d
from torch import nn

__all__ = ["freeze_batch_norm", "has_trainable_batch_norm"]


def has_trainable_batch_norm(module: nn.Module) -> bool:
    """True if ``module`` still contains a ``_BatchNorm`` layer (1d/2d/3d, sync, timm's BatchNormAct2d)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Convert every 2d batch-norm layer of ``module`` to a frozen one (running stats, fixed affine).

    Returns the converted module: the same object with replaced children, or a new ``FrozenBatchNorm2d`` /
    ``FrozenBatchNormAct2d`` when ``module`` itself is a batch-norm layer (use the return value).
    Load pretrained weights *before* freezing: frozen layers have no ``num_batches_tracked`` buffer.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``.
        ValueError: a batch-norm layer that timm cannot convert (1d/3d) is left after conversion.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"freeze_batch_norm: expected an nn.Module, got {type(module).__name__}")
    frozen = freeze_batch_norm_2d(module)
    leftovers = sorted({type(m).__name__ for m in frozen.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)})
    if leftovers:
        raise ValueError(f"freeze_batch_norm: cannot freeze batch-norm layers of type {leftovers} "
                         "(only BatchNorm2d, SyncBatchNorm and timm's BatchNormAct2d are supported)")
    return frozen
