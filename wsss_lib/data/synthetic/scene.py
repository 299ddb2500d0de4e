"""Scene planning: which classes, instances, sizes and positions an image has (the *plan* stream of its generator)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wsss_lib.data.synthetic.config import SyntheticConfig

# ----------------------------------------------------------------------------------------------------
# Scene planning (labels, instances, background): the "plan" random stream
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstancePlan:
    """One object instance; instances are painted in plan order (later ones occlude earlier ones)."""

    class_index: int  # 0-based index into cfg.classes (label = class_index + 1)
    cx: float  # centre, pixels
    cy: float
    extent: float  # longer body axis, pixels
    aspect: float  # width / height after jitter
    angle: float  # radians


@dataclass(frozen=True)
class ScenePlan:
    """The layout of one image, before any pixel is drawn."""

    index: int
    classes: tuple[int, ...]  # sorted 0-based indices of the classes placed (some may end fully occluded)
    background: str  # "generic:<style>" or a context texture name
    instances: tuple[InstancePlan, ...]


def _streams(cfg: SyntheticConfig, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    plan_ss, render_ss = np.random.SeedSequence([cfg.seed, index]).spawn(2)
    return np.random.default_rng(plan_ss), np.random.default_rng(render_ss)


def _choose(rng: np.random.Generator, candidates: Sequence[int], cfg: SyntheticConfig) -> int:
    weights = np.array([cfg.classes[k].frequency for k in candidates], dtype=np.float64)
    return int(candidates[rng.choice(len(candidates), p=weights / weights.sum())])


def _sample_classes(cfg: SyntheticConfig, rng: np.random.Generator) -> set[int]:
    """The set of classes placed in one image (0-based indices).

    1. A *primary* class is drawn with probability proportional to ``ClassSpec.frequency``.
    2. Singleton primary: alone with probability ``singleton_alone_prob``; otherwise it gets one
       frequency-weighted non-singleton partner and nothing else.
    3. Room primary: every other room class is added independently w.p. ``room_cooccurrence_prob``.
    4. Person-companion primary: ``person`` is added w.p. ``person_cooccurrence_prob``; person primary:
       one frequency-weighted companion is added w.p. ``person_cooccurrence_prob``.
    5. Non-singleton primary: one frequency-weighted non-singleton class is added w.p. ``extra_class_prob``.

    Singletons are therefore never added to another class's image.
    """
    classes = cfg.classes
    all_idx = list(range(len(classes)))
    primary = _choose(rng, all_idx, cfg)
    present = {primary}
    role = classes[primary].role
    person = [k for k in all_idx if classes[k].role == "person"]
    companions = [k for k in all_idx if classes[k].person_companion]
    non_singletons = [k for k in all_idx if classes[k].role != "singleton"]
    if role == "singleton" and rng.random() < cfg.singleton_alone_prob:
        return present
    if role == "room":
        for k in all_idx:
            if k != primary and classes[k].role == "room" and rng.random() < cfg.room_cooccurrence_prob:
                present.add(k)
    if classes[primary].person_companion and person and rng.random() < cfg.person_cooccurrence_prob:
        present.add(person[0])
    if role == "person" and companions and rng.random() < cfg.person_cooccurrence_prob:
        present.add(_choose(rng, companions, cfg))
    if role == "singleton" or (non_singletons and rng.random() < cfg.extra_class_prob):
        if non_singletons:  # a singleton that is not alone gets exactly one non-singleton partner
            present.add(_choose(rng, non_singletons, cfg))
    return present


def plan_scene(cfg: SyntheticConfig, index: int) -> ScenePlan:
    """The deterministic layout of image ``index``: present classes, background and instances.

    Background: if a context-biased class is present, its context texture w.p. ``context_prob``
    (one of them at random if several); if none is present, a random context texture w.p.
    ``context_alone_prob``; otherwise a generic style from the pool. Instances per class:
    ``1 + Geometric(instance_continue_prob)`` capped at ``max_instances``; centres uniform in the
    central 80% of the image (large objects get truncated); painting order sorted by
    ``extent * LogNormal(0, 0.5)`` descending, so larger objects tend to lie behind smaller ones.
    """
    rng, _ = _streams(cfg, index)
    classes = cfg.classes
    present = sorted(_sample_classes(cfg, rng))

    context_classes = [k for k in present if classes[k].context is not None]
    all_contexts = sorted({c.context for c in classes if c.context is not None})
    if context_classes and rng.random() < cfg.context_prob:
        background = classes[context_classes[int(rng.integers(len(context_classes)))]].context
    elif not context_classes and all_contexts and rng.random() < cfg.context_alone_prob:
        background = all_contexts[int(rng.integers(len(all_contexts)))]
    else:
        background = f"generic:{int(rng.integers(cfg.n_generic_backgrounds))}"

    size = cfg.image_size
    instances: list[tuple[float, InstancePlan]] = []
    for k in present:
        spec = classes[k]
        n = 1
        while n < cfg.max_instances and rng.random() < cfg.instance_continue_prob:
            n += 1
        for _ in range(n):
            lo, hi = spec.size_range
            extent = float(rng.uniform(lo, hi)) * cfg.size_scale * size
            aspect = spec.aspect * math.exp(float(rng.uniform(-cfg.aspect_jitter, cfg.aspect_jitter)))
            angle = math.radians(float(rng.uniform(-cfg.rotation_range_deg, cfg.rotation_range_deg)))
            cx, cy = (float(v) for v in rng.uniform(0.1 * size, 0.9 * size, size=2))
            depth = extent * math.exp(float(rng.normal(0.0, 0.5)))  # larger objects tend to lie behind
            instances.append((depth, InstancePlan(k, cx, cy, extent, aspect, angle)))
    instances.sort(key=lambda t: -t[0])
    return ScenePlan(index, tuple(present), background, tuple(inst for _, inst in instances))
