"""wsss_lib: a reproducible lab for the P-NOC paper (weakly supervised semantic segmentation).

Layers (one concept per module), highest first; a module imports only from its own layer or the layers below it
(the contract in ``pyproject.toml``, checked by ``lint-imports`` in ``make test``):

1. entry points: ``reproduce`` (the papermill runner behind ``make reproduce``), ``benchmark_check``, ``bench``
   (throughput, profile, DDP and random-walk benchmarks, the GPU check), ``verify``;
2. ``reporting``: tables and figures written under ``reports/<profile>/``;
3. ``stages``: cached, separately runnable steps, and ``RunContext`` (profile, work and report folders);
4. ``inference`` (TTA CAMs, saliency, affinity and segmentation inference) | ``refinement`` (affinity labels,
   pseudo-saliency, pseudo-masks);
5. ``train``: the shared training loop and optimizer;
6. ``methods`` (training strategies: CAM, Puzzle-CAM, OC-CSE, P-OC, P-NOC, ...) | ``evaluation`` (confusion
   matrices, mIoU, threshold sweeps, pathology metrics);
7. ``models``: timm backbones, CAM classifier, heads;
8. ``data``: datasets (VOC 2012 + SBD, COCO 2014, the synthetic benchmark), transforms, fixtures, class statistics;
9. ``formats`` (the artifacts' file formats) | ``ops`` (dense CRF, random walk, schedules, label smoothing);
10. ``artifacts``: outputs under a config hash, ``DONE.json`` last;
11. ``config`` | ``io`` | ``paths`` | ``dry_run``.

``|`` joins layers that do not import each other.
"""

__version__ = "0.1.0"
