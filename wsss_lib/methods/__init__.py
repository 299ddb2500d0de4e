"""Training strategies: each a small module stating its losses, trained by ``wsss_lib.train.fit``."""

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.methods.cam import CAMConfig, CAMMethod

__all__ = ["Method", "StepInfo", "CAMConfig", "CAMMethod"]
