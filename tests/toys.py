"""A toy classifier, method and dataset for the trainer's tests (single-process, DDP and the trust tests): an 8x8
two-class problem a few SGD steps move, with switches that interrupt or poison chosen steps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsss_lib.methods.base import Method
from wsss_lib.models.cam import CAMOutput
from wsss_lib.train import OptimConfig, TrainConfig


class ToySet(torch.utils.data.Dataset):
    def __init__(self, n=12, noise=True):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 8, 8, generator=g)
        self.labels = (torch.rand(n, 2, generator=g) > 0.5).float()
        self.noise = noise

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image = self.images[i] + (0.1 * torch.randn(3, 8, 8) if self.noise else 0)  # uses the global RNG
        return {"id": str(i), "image": image, "mask": torch.zeros(8, 8, dtype=torch.long), "label": self.labels[i]}


class ToyNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.classifier = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x):
        cams = self.classifier(torch.relu(self.conv(x)))
        return CAMOutput(logits=cams.mean(dim=(2, 3)), cams=cams)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_initialized() else 0


class ToyMethod(Method):
    """``fail_at`` / ``nan_at``: interrupt, or make the loss NaN, at that step (on rank ``fail_rank`` /
    ``nan_rank`` only, when given: the 2-process tests)."""

    def __init__(self, fail_at=None, nan_at=None, fail_rank=None, nan_rank=None):
        super().__init__()
        self.net = ToyNet()
        self.fail_at, self.nan_at, self.fail_rank, self.nan_rank = fail_at, nan_at, fail_rank, nan_rank

    def param_groups(self, phase, lr, weight_decay):
        return [{"params": list(self.net.conv.parameters()), "lr_mult": 1.0},
                {"params": list(self.net.classifier.parameters()), "lr_mult": 10.0}]

    def losses(self, phase, batch, info, cache):
        if self.fail_at is not None and info.step == self.fail_at and self.fail_rank in (None, _rank()):
            raise KeyboardInterrupt("simulated interruption")
        loss = F.multilabel_soft_margin_loss(self.net(batch["image"]).logits, batch["label"])
        if self.nan_at is not None and info.step == self.nan_at and self.nan_rank in (None, _rank()):
            loss = loss * float("nan")
        return {"cls": loss}

    def cam_model(self):
        return self.net


CFG = TrainConfig(epochs=3, batch_size=4, num_workers=0, seed=3, device="cpu", eval_every=0)
OPT = OptimConfig(lr=0.05)
