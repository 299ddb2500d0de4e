"""P-NOC (paper eqs. 9-10, Algorithm 1): P-OC whose ordinary classifier is trained adversarially.

Two phases per step, each with its own poly-SGD optimizer (same schedule):

- ``generator``: the P-OC loss (Puzzle terms + ``lambda_cse(t) l(OC(x * (1 - M_r)), (y \\ {r})~)``).
- ``ordinary`` (every ``update_interval`` steps): ``lambda_noc(t) l(OC(x * 1[psi(A_r) <= delta]), y~)``:
  the OC must still find every class, r included, after the generator's confident r-region is removed
  (hard mask from the generator's *detached* maps of the same step and the same r, per-image max
  normalisation, delta = 0.2), so it learns the secondary features the generator has not covered yet.

``ordinary_gets_cse_gradient`` (the official code's undocumented detail, default True): in the official
code the OC's parameters keep ``requires_grad=True`` while the generator's loss is back-propagated, and its
gradients are cleared only after the OC's own step. Each OC update therefore applies
``grad[lambda_noc l(OC(x_hard), y)] + grad[lambda_cse l(OC(x_soft), y \\ {r})]``: the second, *cooperative*
term teaches the OC not to see r on softly erased images. With ``False`` the OC is frozen during the
generator phase and its update is the gradient of its own adversarial loss alone (the paper's eq. 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.methods.erasing import class_maps, hard_keep_mask
from wsss_lib.methods.ordinary import ErasingConfig, erasing_term
from wsss_lib.methods.puzzle import ReconstructionConfig, puzzle_terms
from wsss_lib.models.backbone import param_groups
from wsss_lib.models.cam import CAMClassifier
from wsss_lib.ops.schedules import linear_schedule
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["AdversarialConfig", "PNOCConfig", "PNOC"]


@dataclass(frozen=True)
class AdversarialConfig:
    weight_start: float = 0.0
    weight_end: float = 1.0
    schedule_fraction: float = 1.0
    """lambda_noc rises linearly from ``weight_start`` to ``weight_end`` over this fraction of training."""
    threshold: float = 0.2
    """delta_noc: pixels whose per-image normalised r-map exceeds it are erased from the OC's input."""
    update_interval: int = 1
    """k: the ordinary classifier is updated every k optimizer steps."""
    ordinary_gets_cse_gradient: bool = True
    """Official behaviour (see the module docstring); False = the OC update uses its own loss only."""
    lr_multiplier: float = 1.0
    """The OC optimizer's learning rate relative to the generator's, every parameter group scaled (official
    ``--lr_alpha_oc``, 1 in every runner). The smoke profile lowers it: with the small EfficientNet-lite0 OC
    (frozen batch norm, head at 10x lr) and the cooperative CSE gradient, lr 0.1 diverges on CPU within ~30 steps
    (official fp16 runs skip overflowing steps through the GradScaler; CPU float32 has no such guard)."""


@dataclass(frozen=True)
class PNOCConfig:
    label_smoothing: float = 0.0
    reconstruction: ReconstructionConfig = field(default_factory=ReconstructionConfig)
    erasing: ErasingConfig = field(default_factory=ErasingConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)


class PNOC(Method):
    phases = ("generator", "ordinary")

    def __init__(self, generator: CAMClassifier, ordinary: CAMClassifier, cfg: PNOCConfig = PNOCConfig()):
        super().__init__()
        if cfg.adversarial.update_interval < 1:
            raise ValueError(f"update_interval must be >= 1, got {cfg.adversarial.update_interval}")
        if cfg.adversarial.lr_multiplier <= 0:
            raise ValueError(f"lr_multiplier must be > 0, got {cfg.adversarial.lr_multiplier}")
        self.generator = generator
        self.ordinary = ordinary  # frozen batch norm; its other parameters train in the "ordinary" phase
        self.cfg = cfg

    def set_train_mode(self) -> None:
        self.generator.train()
        self.ordinary.train()  # batch norm stays frozen (FrozenBatchNorm ignores the mode)

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        if phase == "generator":
            return param_groups(self.generator, self.generator.new_modules(), lr, weight_decay)
        groups = param_groups(self.ordinary, self.ordinary.new_modules(), lr, weight_decay)
        scale = self.cfg.adversarial.lr_multiplier
        return [{**group, "lr": group["lr"] * scale, "lr_mult": group["lr_mult"] * scale} for group in groups]

    def should_step(self, phase: str, info: StepInfo) -> bool:
        return phase == "generator" or info.step % self.cfg.adversarial.update_interval == 0

    def runs(self, phase: str, info: StepInfo) -> bool:
        return self.should_step(phase, info)  # the OC is neither trained nor evaluated between its updates

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        images, labels = batch["image"], batch["label"]
        targets = smooth_multilabel(labels, self.cfg.label_smoothing)
        if phase == "generator":
            self.ordinary.requires_grad_(self.cfg.adversarial.ordinary_gets_cse_gradient)
            terms, out = puzzle_terms(self.generator, images, labels, targets, self.cfg.reconstruction, info)
            terms["cse"], classes = erasing_term(self.ordinary, images, out, labels, self.cfg.label_smoothing,
                                                 self.cfg.erasing, info)
            cache["maps"], cache["classes"] = class_maps(out.cams, classes).detach(), classes
            self.ordinary.requires_grad_(True)
            return terms
        if not self.should_step(phase, info):
            return {}
        keep = hard_keep_mask(cache["maps"], images.shape[-2:], self.cfg.adversarial.threshold,
                              self.cfg.erasing.relu_before_upsample)
        logits = self.ordinary(images * keep.to(images.dtype)).logits
        weight = linear_schedule(info.step, info.total_steps, self.cfg.adversarial.weight_start,
                                 self.cfg.adversarial.weight_end, self.cfg.adversarial.schedule_fraction)
        return {"noc": weight * F.multilabel_soft_margin_loss(logits.float(), targets)}

    def cam_model(self) -> CAMClassifier:
        return self.generator
