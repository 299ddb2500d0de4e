"""Measurement tools: what the code costs on this machine (each writes its rows under ``reports/bench/``).

- ``python -m wsss_lib.bench`` (:mod:`.throughput`, ``make bench``): training steps and TTA inference per second,
  peak memory, and the per-image stages' cost per image (``--per-image``);
- :mod:`.profile` (``make profile``): where a whole study run's wall time goes, section by section;
- :mod:`.ddp`: data-parallel scaling (``torchrun`` + DDP);
- :mod:`.random_walk`: the sparse random walk against the official dense one;
- :mod:`.gpu_check` (``make gpu-check``): the one prepared check for a GPU machine.
"""
