"""wsss_lib: a reproducible lab for the P-NOC paper (weakly supervised semantic segmentation).

Layout (one concept per module):

- ``wsss_lib.data``: datasets (VOC 2012 + SBD, COCO 2014, the synthetic benchmark), transforms,
  class-group statistics.
- ``wsss_lib.models``: timm backbones, CAM classifier and its helpers.
- ``wsss_lib.methods``: training strategies (CAM, Puzzle-CAM, OC-CSE, P-OC, P-NOC, ...).
- ``wsss_lib.inference``: CAM inference with test-time augmentation and the CAM file format.
- ``wsss_lib.refinement``: dense CRF, affinity labels, random walk.
- ``wsss_lib.evaluation``: confusion matrices, mIoU, threshold sweeps.
- ``wsss_lib.reporting``: tables and figures written under ``reports/<profile>/``.
- ``wsss_lib.reproduce``: the papermill runner behind ``make reproduce``.
"""

__version__ = "0.1.0"
