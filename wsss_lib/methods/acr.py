"""ACR, adversarial classifier-reconstructor (Kweon et al., CVPR'23; official ``models/exp_recon_cvpr23.py``).

A CAM classifier and a reconstructor (:class:`wsss_lib.models.reconstructor.Reconstructor`) are trained alternately
in every step; as in the official code, each phase's optimizer steps before the next phase runs
(``step_after_each_phase``). One present class ``t`` per image is drawn as in OC-CSE; ``cam`` is the classifier's
map of ``t`` after ``max_norm`` (ReLU, then min-max per map) and bilinear upsampling to the image.

**Reconstructor update (RU)**, classifier frozen: the reconstructor learns to rebuild the image from feature
segments, with *stochastic random feeding* (SRF) of synthetic remnants: a random grid mask ``G`` (``grid`` × ``grid``
cells, each on with probability ``(srf_percent + epoch)`` %) limits what is removed, so some of the other segment
always remains as a cue::

    L_R = w_cls BCE(pred_R, y) + w_full L1(dec(F.detach()), x)
          + w_t  L1_m(dec(F * (1 - cam G)),       x; cam G)
          + w_nt L1_m(dec(F * (1 - (1 - cam) G)), x; (1 - cam) G)

(``L1_m(r, x; m) = mean |r m - x m|``; ``F`` = the reconstructor's features resized to the image; the
``w_t`` term is dropped for images whose kept mask has 50 pixels or fewer, as the official ``valid``).

**Classifier update (CU)**, reconstructor frozen (its features detached, its decoder's parameters excluded from the
gradient): the classifier learns CAMs whose segments do *not* let the reconstructor rebuild each other::

    L_C = BCE(pred, y) - w_adv_t L1_m(dec(F * cam), x; cam == 0)
                       - w_adv_nt L1_m(dec(F * (1 - cam)), x; cam.detach() * [argmax_c A_c == t])

Official weights ``W = [1, 0.2, 0.8, 0.3]`` (``w_cls, w_full, w_adv_t, w_adv_nt``) and the hard-coded 0.3 / 0.5
(``w_t, w_nt``); SRF grid 16 and 20 %; SGD lr 0.01 on every layer (the official ``from_scratch_layers`` list is
empty, so no 10x head rate: ``new_layers_boost=False``), wd 5e-4, batch 8, crop 256, 40 epochs (poly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.methods.erasing import class_maps, sample_classes
from wsss_lib.models.backbone import param_groups
from wsss_lib.models.cam import CAMClassifier
from wsss_lib.models.reconstructor import Reconstructor
from wsss_lib.ops.smoothing import smooth_multilabel

__all__ = ["ACRConfig", "ACR", "max_norm", "masked_l1", "srf_grid"]


@dataclass(frozen=True)
class ACRConfig:
    label_smoothing: float = 0.0
    w_cls: float = 1.0
    w_full: float = 0.2
    w_adv_t: float = 0.8
    w_adv_nt: float = 0.3
    w_t: float = 0.3
    w_nt: float = 0.5
    grid: int = 16
    """SRF: cells per side of the random grid."""
    srf_percent: float = 20.0
    """SRF: probability (%) that a cell is on in epoch 0; it grows by 1 point per epoch (official ``prob + epoch``)."""
    srf: bool = True
    """False: no synthetic remnants (G = 1 everywhere), the slides' ablation without SRF."""
    min_kept_pixels: int = 50
    new_layers_boost: bool = False
    """Official False: every layer at the base rate; True: the usual 10x / 20x rates of the new layers."""
    dim: int = 256
    """Reconstructor feature channels D (official 256)."""
    low_dims: tuple[int, int] = (64, 128)
    decoder_width: int = 64


def max_norm(cams: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Official ``max_norm``: ReLU, then ``ReLU(x - min - eps) / (max - min + eps)`` per map."""
    cams = F.relu(cams)
    low = cams.amin(dim=(2, 3), keepdim=True)
    high = cams.amax(dim=(2, 3), keepdim=True)
    return F.relu(cams - low - eps) / (high - low + eps)


def masked_l1(recon: torch.Tensor, image: torch.Tensor, mask: torch.Tensor,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """``mean |recon * mask - image * mask|`` over the (valid) images, channels and pixels."""
    if valid is not None:
        if not bool(valid.any()):
            return recon.sum() * 0.0
        recon, image, mask = recon[valid], image[valid], mask[valid]
    return F.l1_loss(recon * mask, image * mask)


def srf_grid(batch: int, size: tuple[int, int], grid: int, percent: float, device: torch.device) -> torch.Tensor:
    """``(B, 1, H, W)`` 0/1 grid mask: ``grid`` × ``grid`` cells, each on with probability ``percent`` %."""
    cells = (torch.rand((batch, 1, grid, grid), device=device) * 100 < percent).float()
    return F.interpolate(cells, size=size, mode="nearest")


class ACR(Method):
    phases = ("reconstructor", "classifier")
    step_after_each_phase = True

    def __init__(self, classifier: CAMClassifier, reconstructor: Reconstructor, cfg: ACRConfig = ACRConfig()):
        super().__init__()
        self.classifier = classifier
        self.reconstructor = reconstructor
        self.cfg = cfg

    def param_groups(self, phase: str, lr: float, weight_decay: float) -> list[dict]:
        net = self.reconstructor if phase == "reconstructor" else self.classifier
        return param_groups(net, net.new_modules() if self.cfg.new_layers_boost else [], lr, weight_decay)

    def _segments(self, cams: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor,
                  size: tuple[int, int]) -> torch.Tensor:
        cam = max_norm(cams.float()) * labels[:, :, None, None]
        return F.interpolate(class_maps(cam, classes), size=size, mode="bilinear", align_corners=False)

    def losses(self, phase: str, batch: dict, info: StepInfo, cache: dict) -> dict[str, torch.Tensor]:
        images, labels = batch["image"], batch["label"].float()
        size = images.shape[-2:]
        targets = smooth_multilabel(labels, self.cfg.label_smoothing)
        x = images.float()
        if "classes" not in cache:
            cache["classes"] = sample_classes(labels)
        classes = cache["classes"]
        if phase == "reconstructor":
            self.classifier.eval()
            self.reconstructor.train()
            with torch.no_grad():
                cam_t = self._segments(self.classifier(images).cams, labels, classes, size)
            percent = self.cfg.srf_percent + info.epoch if self.cfg.srf else 100.0
            grid = srf_grid(images.shape[0], size, self.cfg.grid, percent, images.device)
            t_removed, nt_removed = cam_t * grid, (1 - cam_t) * grid
            valid = (1 - t_removed).flatten(1).sum(dim=1) > self.cfg.min_kept_pixels
            out = self.reconstructor(images)
            feats = F.interpolate(out.features, size=size, mode="bilinear", align_corners=False)
            decode = self.reconstructor.decode
            return {"recon_cls": self.cfg.w_cls * F.binary_cross_entropy_with_logits(out.logits.float(), targets),
                    "recon_full": self.cfg.w_full * F.l1_loss(decode(feats.detach()).float(), x),
                    "recon_t": self.cfg.w_t * masked_l1(decode(feats * (1 - t_removed)).float(), x, t_removed, valid),
                    "recon_nt": self.cfg.w_nt * masked_l1(decode(feats * (1 - nt_removed)).float(), x, nt_removed)}
        self.reconstructor.eval()
        self.classifier.train()
        with torch.no_grad():
            feats = F.interpolate(self.reconstructor(images).features, size=size, mode="bilinear", align_corners=False)
        out = self.classifier(images)
        predicted = F.interpolate(out.cams.float(), size=size, mode="bilinear", align_corners=False).argmax(dim=1,
                                                                                                          keepdim=True)
        seg_t = self._segments(out.cams, labels, classes, size)
        self.reconstructor.requires_grad_(False)  # CU must not move the reconstructor
        try:
            from_t = self.reconstructor.decode(feats * seg_t).float()
            from_nt = self.reconstructor.decode(feats * (1 - seg_t)).float()
        finally:
            self.reconstructor.requires_grad_(True)
        mask_t = (seg_t == 0).float().detach()
        mask_nt = seg_t.detach() * (predicted == classes[:, None, None, None]).float()
        return {"cls": F.binary_cross_entropy_with_logits(out.logits.float(), targets),
                "adv_t": -self.cfg.w_adv_t * masked_l1(from_t, x, mask_t),
                "adv_nt": -self.cfg.w_adv_nt * masked_l1(from_nt, x, mask_nt)}

    def set_train_mode(self) -> None:
        self.train()

    def cam_model(self) -> CAMClassifier:
        return self.classifier
