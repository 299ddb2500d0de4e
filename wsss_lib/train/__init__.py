"""The shared trainer, its optimizer and schedules."""

from wsss_lib.ops.schedules import linear_schedule, poly_lr_factor
from wsss_lib.ops.smoothing import smooth_multilabel
from wsss_lib.train.optim import OptimConfig, PolySGD, build_optimizer
from wsss_lib.train.trainer import TrainConfig, TrainResult, fit, resolve_device, seed_everything

__all__ = ["OptimConfig", "PolySGD", "build_optimizer", "linear_schedule", "poly_lr_factor", "smooth_multilabel",
           "TrainConfig", "TrainResult", "fit", "resolve_device", "seed_everything"]
