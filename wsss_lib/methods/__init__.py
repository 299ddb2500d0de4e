"""Training strategies: each a small module stating its losses, trained by ``wsss_lib.train.fit``."""

from wsss_lib.methods.base import Method, StepInfo
from wsss_lib.methods.cam import CAMConfig, CAMMethod
from wsss_lib.methods.occse import OCCSE, OCCSEConfig
from wsss_lib.methods.pnoc import PNOC, AdversarialConfig, PNOCConfig
from wsss_lib.methods.poc import POC, POCConfig
from wsss_lib.methods.puzzle import PuzzleCAM, PuzzleConfig, ReconstructionConfig

__all__ = ["Method", "StepInfo", "CAMConfig", "CAMMethod", "PuzzleCAM", "PuzzleConfig", "ReconstructionConfig",
           "OCCSE", "OCCSEConfig", "POC", "POCConfig", "PNOC", "PNOCConfig", "AdversarialConfig"]
