"""AMN (Lee et al., "Threshold matters in WSSS: manipulating the activation for the robust and accurate
segmentation model against thresholds", CVPR'22; official ``step/train_amn.py``).

The label-conditioned network (:class:`wsss_lib.models.amn.AMNNetwork`) learns a per-pixel classification of the
IRN-style labels made from a CAM run (confident background 0, classes 1..C, 255 unsure; the conventional rule of
``wsss_lib.refinement.affinity_labels`` with fg 0.30 / bg 0.05 in the official scripts):

- targets: *smoothed one-hot* labels, ``1 - eps`` on the pixel's class and ``eps / C`` on each of the ``C``
  other channels (``C + 1`` channels with background; official eps = 0.4);
- ``L = (L_bg + L_fg) / 2`` where ``L_bg`` is the mean cross-entropy (log-softmax against the soft targets) over
  the background pixels and ``L_fg`` over the foreground pixels; 255 pixels are ignored. The labels are resized
  to the logits' size with nearest-neighbour sampling (official: PIL ``NEAREST``, here ``nearest-exact``, which
  samples pixel centres the same way).

A batch with no background (or no foreground) pixel has an empty mean; the official code divides by zero there
(NaN), this module drops the empty half and averages what remains (``balanced=False`` switches to one mean over
all labelled pixels). The official optimiser is Adam with lr 5e-6 on the backbone and 1e-4 on the new layers
(label encoder, classifier), weight decay 1e-4, no schedule, 5 epochs, batch 16, crop 512, rescale 0.5-1.5:
``OptimConfig(algorithm="adam", lr=5e-6, poly_power=0)`` with :meth:`AMNMethod.param_groups` giving the new
layers ``new_lr_multiplier`` (20 = 1e-4 / 5e-6) times the base rate.

AMN's CAMs (``wsss_lib.inference.amn``) are the softmax of these logits, not the class maps of a classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.models.amn import AMNNetwork

__all__ = ["AMNLossConfig", "smoothed_one_hot", "balanced_cross_entropy", "AMNMethod"]

IGNORE = 255


@dataclass(frozen=True)
class AMNLossConfig:
    eps: float = 0.4
    """Label smoothing of the per-pixel targets (official 0.4)."""
    balanced: bool = True
    """Official: mean over background pixels and mean over foreground pixels, averaged."""
    new_lr_multiplier: float = 20.0
    """Learning rate of the new layers relative to the backbone's (official Adam: 1e-4 / 5e-6 = 20); one group each,
    both with weight decay."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"AMN eps must be in [0, 1), got {self.eps}")


def smoothed_one_hot(labels: torch.Tensor, num_channels: int, eps: float) -> torch.Tensor:
    """``(B, K, h, w)`` targets from ``(B, h, w)`` class maps: ``1 - eps`` on the class, ``eps / (K - 1)`` elsewhere
    (255 pixels get the background's row; the loss ignores them)."""
    index = labels.masked_fill(labels == IGNORE, 0).long()
    if int(index.max()) >= num_channels:
        raise ValueError(f"AMN labels hold class {int(index.max())} but the network has {num_channels} channels")
    targets = torch.full((labels.shape[0], num_channels, *labels.shape[1:]), eps / (num_channels - 1),
                         device=labels.device)
    return targets.scatter_(1, index[:, None], 1.0 - eps)


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                           balanced: bool = True) -> torch.Tensor:
    """``(L_bg + L_fg) / 2`` of the soft-target cross-entropy (see the module docstring); 255 ignored."""
    per_pixel = -(F.log_softmax(logits.float(), dim=1) * targets).sum(dim=1)
    background = labels == 0
    foreground = (labels != 0) & (labels != IGNORE)
    if not balanced:
        valid = background | foreground
        return per_pixel[valid].sum() / valid.sum().clamp(min=1)
    halves = [per_pixel[m].mean() for m in (background, foreground) if bool(m.any())]
    return torch.stack(halves).mean() if halves else per_pixel.sum() * 0.0


class AMNMethod(Method):
    """Trains an :class:`AMNNetwork` on batches ``{"image", "mask" (IR labels), "label"}``."""

    phases = ("main",)

    def __init__(self, network: AMNNetwork, cfg: AMNLossConfig = AMNLossConfig()):
        super().__init__()
        self.network = network
        self.cfg = cfg

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        new = {id(p) for m in self.network.new_modules() for p in m.parameters()}
        groups = [("pretrained", 1.0, [p for p in self.network.parameters() if p.requires_grad and id(p) not in new]),
                  ("new", self.cfg.new_lr_multiplier, [p for p in self.network.parameters()
                                                       if p.requires_grad and id(p) in new])]
        return [{"name": name, "params": params, "lr": lr * mult, "lr_mult": mult, "weight_decay": weight_decay}
                for name, mult, params in groups if params]

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        logits = self.network(batch["image"], batch["label"].float())
        labels = F.interpolate(batch["mask"][:, None].float(), size=logits.shape[-2:], mode="nearest-exact")[:, 0].long()
        targets = smoothed_one_hot(labels, logits.shape[1], self.cfg.eps)
        return {"pcl": balanced_cross_entropy(logits, labels, targets, self.cfg.balanced)}

    def cam_model(self) -> AMNNetwork:
        return self.network
