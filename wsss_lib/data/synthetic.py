"""A synthetic WSSS benchmark in the Pascal VOC 2012 layout (the CPU smoke profile's dataset).

It is *not* a substitute for VOC: it exists so that every stage (CAM training, inference, refinement,
evaluation, reporting) can run end to end on a CPU in minutes, on data that exhibits the failure modes
the P-NOC paper studies (section 2.3, Table 1), each one controlled by a documented knob:

1. **Discriminative parts** (prediction completeness). Every object is a textured *body* of a
   class-specific shape family with a plain, low-contrast texture that is shared between classes
   (``ClassSpec.body_texture``), plus a small, high-contrast, class-specific *part*
   (``ClassSpec.part_pattern`` / ``part_colors``) at a class-specific position. A classifier can
   solve the task from the part alone, so a vanilla CAM covers the part and misses the body.
2. **Context bias** (over-expansion). Context-biased classes (plane/sky, boat/water, train/rails) are
   shown over their context texture with probability ``context_prob``; the texture also appears
   alone with probability ``context_alone_prob``.
3. **Co-occurrence** (confusion in cluttered scenes). Room classes appear together
   (``room_cooccurrence_prob``); ``person`` co-occurs with its companions
   (``person_cooccurrence_prob``); singletons appear alone (``singleton_alone_prob``).
4. **Size and frequency groups**. Per-class size ranges (small/mid/large, fraction of the image side)
   and sampling weights (low/mid/high occurrence).
5. **VOC-like masks**. Several instances per class, occlusion by z-order (later instances cover
   earlier ones, larger ones tend to be painted first; the mask holds the visible part), a void
   (255) band along every object outline, Gaussian pixel noise and JPEG compression.

Output (``generate``): ``out_dir/VOC2012/{JPEGImages, SegmentationClassAug, SegmentationClass,
Annotations, ImageSets/Segmentation}`` exactly like VOC 2012 + SBD's ``train_aug``, plus
``class_names.txt``, ``class_groups.json`` (the Table 1 class groups of this generator) and
``generator_config.json``. Image ids are ``syn_<global index>``; indices ``[0, n_train)`` form
``train``, the next ``n_train_aug_extra`` are the extra ``train_aug`` images, the last ``n_val`` form ``val``.

Determinism: image ``i`` depends only on ``(cfg, i)``: its generator is
``np.random.default_rng(np.random.SeedSequence([cfg.seed, i]))`` (split into a *plan* stream for the
scene layout and a *render* stream for textures and noise), so the files are byte-identical for any
number of worker processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import fft as sp_fft
from scipy import ndimage
from tqdm.auto import tqdm

from wsss_lib.formats.masks import IGNORE_INDEX, to_palette_image

__all__ = [
    "GENERATOR_VERSION",
    "ClassSpec",
    "SyntheticConfig",
    "InstancePlan",
    "ScenePlan",
    "default_classes",
    "class_groups",
    "config_to_json",
    "split_ids",
    "plan_scene",
    "render_sample",
    "generate",
    "ensure_synthetic",
    "render_regions",
    "REGION_CODES",
    "REGION_DIR",
]

REGION_CODES = {"plain_background": 0, "context_background": 1, "part": 2, "near_body": 3, "far_body": 4}
"""Codes of ``<REGION_DIR>/<id>.png`` (``emit_regions``; 255 = void, as in the class mask), read by
``wsss_lib.evaluation.pathology``."""
REGION_DIR = "SegmentationRegion"
"""The folder of the region annotation, beside ``SegmentationClass`` in ``VOC2012/``."""

GENERATOR_VERSION = "wsss_lib.data.synthetic 2.0.0"
"""2.0.0 added the v2 knobs (``body_class_tint``, ``emit_regions``, ``far_body_distance``); their defaults render
byte-identical files to 1.0.0, so a v1 dataset is reproduced by its configuration (tests/test_synthetic_v2.py)."""

SHAPES = ("ellipse", "rectangle", "rounded", "blob", "triangle", "star", "trapezoid", "diamond", "cross")
PART_PATTERNS = ("checker", "stripes", "dots", "rings", "diagonal", "plus", "pinwheel", "grid", "zigzag")
BODY_TEXTURE_KINDS = ("mottled", "stripes", "grain", "shaded")
CONTEXT_TEXTURES = ("sky", "water", "rails", "grass")
ROLES = ("singleton", "person", "animal", "room", "traffic")
SIZE_GROUPS = ("small", "mid", "large")
FREQUENCY_GROUPS = ("low", "mid", "high")
GENERIC_BACKGROUND_KINDS = ("noise", "waves", "gradient", "blotches")


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSpec:
    """One foreground class of the synthetic benchmark (see ``default_classes`` for the defaults)."""

    name: str
    """Class name (written to ``class_names.txt`` and to the XML ``<name>``)."""
    shape: str
    """Body shape family, one of ``SHAPES``; rotated and aspect-jittered per instance."""
    aspect: float
    """Body width / height before rotation (e.g. 3.0 for a long train, 0.5 for a standing person)."""
    body_texture: int
    """Body texture id; classes with the same id share one low-contrast body texture (weak body cue)."""
    part_pattern: str
    """High-contrast pattern of the discriminative part, one of ``PART_PATTERNS``."""
    part_colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    """The two RGB colours (0..255) the part pattern alternates between."""
    part_position: tuple[float, float]
    """Part centre in the body frame, (x, y) in [-1, 1] units of the half-axes (y points down)."""
    size_range: tuple[float, float]
    """Object extent (longer body axis) as a fraction of the image side, drawn uniformly in this range."""
    size_group: str
    """Table 1 size group of the class: ``small``, ``mid`` or ``large``."""
    frequency: float
    """Relative sampling weight of the class as an image's primary class."""
    frequency_group: str
    """Table 1 occurrence group of the class: ``low``, ``mid`` or ``high``."""
    context: str | None
    """Context texture (one of ``CONTEXT_TEXTURES``) the class is usually shown on, or None."""
    role: str
    """Co-occurrence role / Table 1 group: ``singleton``, ``person``, ``animal``, ``room`` or ``traffic``."""
    person_companion: bool
    """Whether ``person`` is added to images of this class (and it to person images), ``person_cooccurrence_prob``."""


_SIZE_RANGES = {"small": (0.28, 0.45), "mid": (0.35, 0.60), "large": (0.50, 0.85)}


def default_classes() -> tuple[ClassSpec, ...]:
    """The 13 default classes, loosely mirroring the VOC classes of each Table 1 group.

    Body textures are shared in pairs/triples (person-chair, plane-bird, boat-table-sofa, train-car,
    bike-lamp, dog-horse), so the body alone is only weakly discriminative. The frequency weights are
    tuned so that the *measured* occurrence (after co-occurrence additions) orders the groups
    high > mid > low, as in VOC: room classes get low primary weights because they are mostly
    added by ``room_cooccurrence_prob``.
    """

    def spec(name, shape, aspect, tex, pattern, colors, pos, size, weight, freq, context, role, companion):
        return ClassSpec(
            name=name, shape=shape, aspect=aspect, body_texture=tex, part_pattern=pattern,
            part_colors=colors, part_position=pos, size_range=_SIZE_RANGES[size], size_group=size,
            frequency=weight, frequency_group=freq, context=context, role=role, person_companion=companion,
        )

    # fmt: off
    return (
        spec("person", "ellipse", 0.5, 0, "checker", ((220, 30, 30), (250, 220, 40)), (0.0, -1.0), "mid", 2.0, "high", None, "person", False),
        spec("plane", "cross", 1.4, 1, "pinwheel", ((245, 245, 245), (200, 20, 60)), (1.0, 0.0), "small", 1.5, "mid", "sky", "singleton", False),
        spec("bird", "triangle", 1.1, 1, "dots", ((250, 140, 0), (20, 20, 120)), (0.0, -0.5), "mid", 3.0, "high", None, "singleton", False),
        spec("boat", "trapezoid", 2.2, 2, "stripes", ((250, 250, 250), (220, 40, 40)), (0.7, -0.6), "small", 0.8, "low", "water", "singleton", False),
        spec("train", "rectangle", 3.0, 3, "grid", ((255, 220, 0), (30, 30, 30)), (-1.0, 0.0), "large", 1.5, "mid", "rails", "singleton", False),
        spec("car", "rounded", 1.8, 3, "rings", ((30, 30, 30), (230, 230, 230)), (0.6, 1.0), "mid", 2.5, "high", None, "traffic", True),
        spec("bike", "diamond", 1.5, 4, "plus", ((0, 200, 220), (240, 0, 200)), (-0.6, 0.4), "small", 0.8, "low", None, "traffic", True),
        spec("dog", "blob", 1.4, 5, "diagonal", ((140, 70, 20), (250, 250, 220)), (0.9, -0.7), "large", 2.5, "high", None, "animal", True),
        spec("horse", "rounded", 1.6, 5, "zigzag", ((20, 20, 20), (250, 250, 250)), (1.0, -1.0), "large", 0.8, "low", None, "animal", True),
        spec("chair", "rectangle", 0.7, 0, "checker", ((0, 150, 60), (250, 250, 250)), (0.0, -1.0), "small", 1.5, "high", None, "room", False),
        spec("table", "rectangle", 2.0, 2, "dots", ((200, 0, 0), (255, 255, 255)), (0.0, 0.0), "large", 0.6, "mid", None, "room", False),
        spec("sofa", "rounded", 2.2, 2, "grid", ((120, 0, 160), (250, 200, 0)), (-1.0, 0.0), "large", 0.6, "mid", None, "room", False),
        spec("lamp", "star", 1.0, 4, "rings", ((255, 255, 120), (255, 120, 0)), (0.0, 0.0), "small", 0.5, "mid", None, "room", False),
    )
    # fmt: on


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that determines the generated dataset (stored in ``generator_config.json``)."""

    seed: int = 0
    """Master seed; image ``i`` uses ``SeedSequence([seed, i])``."""
    image_size: int = 256
    """Side of the square images, in pixels."""
    n_train: int = 200
    """Images in ``train`` (the split on which CAM/pseudo-mask priors are scored)."""
    n_train_aug_extra: int = 600
    """Extra images that are in ``train_aug`` but not in ``train`` (``train_aug`` = train + these)."""
    n_val: int = 200
    """Images in ``val`` (segmentation evaluation), disjoint from ``train_aug``."""
    jpeg_quality: int = 90
    """JPEG quality of ``JPEGImages/*.jpg`` (compression artefacts)."""
    classes: tuple[ClassSpec, ...] = field(default_factory=default_classes)
    """Foreground classes; label ``k`` (1-based) is ``classes[k - 1]``."""

    # -- 1. discriminative parts ------------------------------------------------------------------
    part_size_fraction: float = 0.45
    """Part radius as a fraction of the body's shorter half-axis (smaller = more local CAM cue)."""
    part_contrast: float = 1.0
    """0..1: how far the part colours go from their mean towards ``part_colors`` (1 = full contrast)."""
    body_contrast: float = 0.06
    """Amplitude (in [0, 1] colour units) of the body texture around its base colour."""
    body_color_jitter: float = 0.05
    """Per-instance uniform jitter (+-, [0, 1] units per channel) of the body base colour."""
    body_texture_sharing: bool = True
    """If True, classes with the same ``ClassSpec.body_texture`` share one body texture; if False
    every class gets its own (more discriminative bodies, weaker part-only failure)."""
    body_class_tint: float = 0.0
    """v2: amplitude (in [0, 1] colour units) of a fixed per-class colour offset of the body (class ``k`` of ``n``
    gets ``body_class_tint * (hue(k / n) - 0.5)``): bodies that share a texture become weakly, but really,
    class-informative, as object bodies are in real images. 0 = v1 (no offset)."""

    # -- shape geometry ---------------------------------------------------------------------------
    aspect_jitter: float = 0.2
    """Per-instance log-uniform jitter of the body aspect ratio: aspect * exp(U(-j, j))."""
    rotation_range_deg: float = 25.0
    """Per-instance rotation drawn uniformly in [-r, r] degrees."""
    size_scale: float = 1.0
    """Global multiplier of every class's ``size_range``."""

    # -- 2. context bias --------------------------------------------------------------------------
    context_prob: float = 0.8
    """Probability that an image with a context-biased class uses that class's context texture."""
    context_alone_prob: float = 0.05
    """Probability that an image without context-biased classes shows a context texture anyway."""
    n_generic_backgrounds: int = 8
    """Size of the pool of generic background styles (smooth noise, waves, gradients, blotches)."""
    background_contrast: float = 0.12
    """Amplitude (in [0, 1] colour units) of generic background textures."""

    # -- 3. co-occurrence -------------------------------------------------------------------------
    room_cooccurrence_prob: float = 0.45
    """When the primary class is a room class, each other room class is added with this probability."""
    person_cooccurrence_prob: float = 0.6
    """Probability of adding ``person`` to an image whose primary class is a person companion, and
    of adding a (frequency-weighted) companion to an image whose primary class is ``person``."""
    singleton_alone_prob: float = 0.9
    """Probability that an image whose primary class is a singleton contains nothing else."""
    extra_class_prob: float = 0.15
    """Probability of adding one random non-singleton class to a non-singleton (or not-alone) image."""

    # -- 4./5. instances and masks ----------------------------------------------------------------
    max_instances: int = 3
    """Maximum instances per present class."""
    instance_continue_prob: float = 0.35
    """Instances per class = 1 + Geometric successes with this probability, capped at ``max_instances``."""
    void_width: int = 1
    """A pixel is void (255) if its (2w+1)x(2w+1) neighbourhood holds another instance or background; 0 = no band."""
    min_visible_fraction: float = 2e-4
    """Instances whose visible non-void area is below this fraction of the image (at least 1 pixel)
    count as fully occluded: they are left out of the XML and their remaining pixels become void."""
    pixel_noise_std: float = 0.02
    """Standard deviation of the additive Gaussian pixel noise, in [0, 1] colour units."""
    edge_blur_sigma: float = 0.5
    """Gaussian blur (pixels) of the composed image before noise, softening the painted edges."""

    # -- v2: auxiliary annotation -------------------------------------------------------------------
    emit_regions: bool = False
    """v2: also write ``SegmentationRegion/<id>.png`` (``REGION_CODES``: plain/context background, part, body
    near the part, body far from the part; 255 void), so part vs far-body recall and context false positives
    can be scored (``wsss_lib.evaluation.pathology``). It changes no other file."""
    far_body_distance: float = 0.3
    """v2: a body pixel is *far* when its distance to the edge of its instance's part exceeds this fraction of
    the instance's extent (longer body axis); only used with ``emit_regions``."""

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ValueError(f"SyntheticConfig: {msg}")

        if self.image_size < 32:
            fail(f"image_size must be >= 32, got {self.image_size}")
        for name in ("n_train", "n_train_aug_extra", "n_val"):
            if getattr(self, name) < 0:
                fail(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 1 <= self.jpeg_quality <= 100:
            fail(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        for name in (
            "part_contrast", "context_prob", "context_alone_prob", "room_cooccurrence_prob",
            "person_cooccurrence_prob", "singleton_alone_prob", "extra_class_prob", "instance_continue_prob",
            "min_visible_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("part_size_fraction", "body_contrast", "body_color_jitter", "aspect_jitter", "body_class_tint",
                     "far_body_distance",
                     "rotation_range_deg", "background_contrast", "pixel_noise_std", "edge_blur_sigma"):
            if getattr(self, name) < 0:
                fail(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.size_scale <= 0:
            fail(f"size_scale must be > 0, got {self.size_scale}")
        if self.max_instances < 1:
            fail(f"max_instances must be >= 1, got {self.max_instances}")
        if self.void_width < 0:
            fail(f"void_width must be >= 0, got {self.void_width}")
        if self.n_generic_backgrounds < 1:
            fail(f"n_generic_backgrounds must be >= 1, got {self.n_generic_backgrounds}")
        if not 1 <= len(self.classes) <= 254:
            fail(f"classes must hold 1..254 specs, got {len(self.classes)}")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names) or "background" in names:
            fail(f"class names must be unique and not 'background', got {names}")
        for c in self.classes:
            where = f"class {c.name!r}"
            if c.shape not in SHAPES:
                fail(f"{where}: shape {c.shape!r} not in {SHAPES}")
            if c.part_pattern not in PART_PATTERNS:
                fail(f"{where}: part_pattern {c.part_pattern!r} not in {PART_PATTERNS}")
            if c.context is not None and c.context not in CONTEXT_TEXTURES:
                fail(f"{where}: context {c.context!r} not in {CONTEXT_TEXTURES} or None")
            if c.role not in ROLES:
                fail(f"{where}: role {c.role!r} not in {ROLES}")
            if c.size_group not in SIZE_GROUPS or c.frequency_group not in FREQUENCY_GROUPS:
                fail(f"{where}: size_group/frequency_group must be in {SIZE_GROUPS}/{FREQUENCY_GROUPS}")
            lo, hi = c.size_range
            if not 0 < lo <= hi:
                fail(f"{where}: size_range must satisfy 0 < lo <= hi, got {c.size_range}")
            if c.frequency <= 0 or c.aspect <= 0 or c.body_texture < 0:
                fail(f"{where}: frequency and aspect must be > 0 and body_texture >= 0")
            if len(c.part_colors) != 2 or any(len(col) != 3 for col in c.part_colors):
                fail(f"{where}: part_colors must be two RGB triples")
        if sum(c.role == "person" for c in self.classes) > 1:
            fail("at most one class may have role 'person'")

    @property
    def num_images(self) -> int:
        return self.n_train + self.n_train_aug_extra + self.n_val

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SyntheticConfig":
        """Inverse of ``dataclasses.asdict`` (e.g. ``generator_config.json``'s ``config`` or profile
        overrides): lists become tuples, class dicts become ``ClassSpec``; unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"SyntheticConfig.from_dict: unknown fields {unknown}; expected a subset of {sorted(known)}")
        kwargs = dict(data)
        if "classes" in kwargs:
            kwargs["classes"] = tuple(
                ClassSpec(**{
                    **c,
                    "part_colors": tuple(tuple(int(v) for v in col) for col in c["part_colors"]),
                    "part_position": tuple(float(v) for v in c["part_position"]),
                    "size_range": tuple(float(v) for v in c["size_range"]),
                })
                for c in kwargs["classes"]
            )
        return cls(**kwargs)


def config_to_json(cfg: SyntheticConfig) -> dict[str, Any]:
    """The JSON-able record written to ``generator_config.json`` (config + generator version)."""
    return {"generator_version": GENERATOR_VERSION, "config": json.loads(json.dumps(dataclasses.asdict(cfg)))}


def class_groups(cfg: SyntheticConfig) -> dict[str, dict[str, list[str]]]:
    """The Table 1 class groups of ``cfg.classes``: {family: {group: [class names]}} (derived from the specs)."""
    classes = cfg.classes
    titles = {"singleton": "Singleton", "person": "Person", "animal": "Animal", "room": "Room", "traffic": "Traffic"}
    return {
        "Occurrence": {
            f"{g.capitalize()} freq.": [c.name for c in classes if c.frequency_group == g] for g in FREQUENCY_GROUPS
        },
        "Size": {g.capitalize(): [c.name for c in classes if c.size_group == g] for g in SIZE_GROUPS},
        "Group": {titles[r]: [c.name for c in classes if c.role == r] for r in ROLES},
        "Context": {
            "Context-biased": [c.name for c in classes if c.context is not None],
            "Context-free": [c.name for c in classes if c.context is None],
        },
    }


def split_ids(cfg: SyntheticConfig) -> dict[str, list[str]]:
    """``{"train", "train_aug", "val"}`` -> sorted image ids (global index order = sorted order)."""
    width = max(6, len(str(max(cfg.num_images - 1, 0))))
    ids = [f"syn_{i:0{width}d}" for i in range(cfg.num_images)]
    n_aug = cfg.n_train + cfg.n_train_aug_extra
    return {"train": ids[: cfg.n_train], "train_aug": ids[:n_aug], "val": ids[n_aug:]}


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


# ----------------------------------------------------------------------------------------------------
# Textures (vectorised numpy; the "render" random stream)
# ----------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sigma_y: float, sigma_x: float | None = None) -> np.ndarray:
    """Gaussian-filtered white noise, standardised to zero mean and unit std, float32 (h x w).

    Small kernels (sigma <= 3 px) use ``scipy.ndimage.gaussian_filter`` (wrap mode); larger ones
    multiply the spectrum by the Gaussian's transfer function ``exp(-2 pi^2 sigma^2 f^2)`` on an
    FFT-friendly padded grid, which costs the same for any sigma.
    """
    sigma_x = sigma_y if sigma_x is None else sigma_x
    if max(sigma_y, sigma_x) <= 3.0:
        noise = rng.standard_normal((h, w), dtype=np.float32)
        if sigma_y > 0 or sigma_x > 0:
            noise = ndimage.gaussian_filter(noise, sigma=(sigma_y, sigma_x), mode="wrap")
    else:
        ph, pw = sp_fft.next_fast_len(h, real=True), sp_fft.next_fast_len(w, real=True)
        noise = rng.standard_normal((ph, pw), dtype=np.float32)
        fy = np.fft.fftfreq(ph).astype(np.float32)[:, None]
        fx = np.fft.rfftfreq(pw).astype(np.float32)[None, :]
        gain = np.exp(-2.0 * np.pi**2 * (sigma_y**2 * fy**2 + sigma_x**2 * fx**2))
        noise = sp_fft.irfft2(sp_fft.rfft2(noise) * gain, s=(ph, pw))[:h, :w]
    noise = noise - noise.mean()
    noise /= noise.std() + 1e-8
    return noise.astype(np.float32, copy=False)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32)


def _body_texture_style(texture_id: int) -> tuple[str, np.ndarray]:
    """Texture id -> (kind, base RGB in [0, 1]); muted colours spread by the golden angle."""
    hue = (0.08 + 0.381966 * texture_id) % 1.0
    base = _hsv_to_rgb(hue, 0.35, 0.50 + 0.12 * (texture_id % 2))
    return BODY_TEXTURE_KINDS[texture_id % len(BODY_TEXTURE_KINDS)], base


def _generic_styles(cfg: SyntheticConfig) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """The pool of generic background styles: (kind, base RGB, delta RGB, scale in pixels), from cfg.seed."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5EED_BAC6]))
    styles = []
    for i in range(cfg.n_generic_backgrounds):
        kind = GENERIC_BACKGROUND_KINDS[i % len(GENERIC_BACKGROUND_KINDS)]
        base = _hsv_to_rgb(float(rng.random()), float(rng.uniform(0.05, 0.35)), float(rng.uniform(0.35, 0.70)))
        direction = rng.normal(size=3).astype(np.float32) + 0.8  # mostly a brightness change, a little hue
        delta = cfg.background_contrast * direction / (np.linalg.norm(direction) / math.sqrt(3) + 1e-8)
        scale = float(rng.uniform(0.03, 0.12)) * cfg.image_size
        styles.append((kind, base, delta.astype(np.float32), scale))
    return styles


def _background(cfg: SyntheticConfig, name: str, rng: np.random.Generator) -> np.ndarray:
    """An H x W x 3 float32 background in [0, 1] (before clipping) for a style or context name."""
    s = cfg.image_size
    unit = s / 256.0
    yy = np.arange(s, dtype=np.float32)[:, None]
    xx = np.arange(s, dtype=np.float32)[None, :]
    grain = _smooth_noise(rng, s, s, 0.6 * unit)[..., None]
    if name.startswith("generic:"):
        kind, base, delta, scale = _generic_styles(cfg)[int(name.split(":", 1)[1])]
        if kind == "noise":
            t = _smooth_noise(rng, s, s, scale)
        elif kind == "waves":
            phi = float(rng.uniform(0, np.pi))
            warp = _smooth_noise(rng, s, s, 4 * scale)
            t = np.sin(2 * np.pi * (xx * math.cos(phi) + yy * math.sin(phi)) / (3 * scale) + warp)
        elif kind == "gradient":
            phi = float(rng.uniform(0, 2 * np.pi))
            ramp = (xx * math.cos(phi) + yy * math.sin(phi)) / s
            t = 2.0 * (ramp - ramp.mean()) + 0.3 * _smooth_noise(rng, s, s, scale)
        else:  # blotches
            t = np.tanh(2.5 * _smooth_noise(rng, s, s, 0.7 * scale))
        return base + np.clip(t, -2.0, 2.0)[..., None] * delta + 0.03 * grain
    if name == "sky":
        top, bottom = np.array([0.40, 0.62, 0.92], np.float32), np.array([0.75, 0.86, 0.97], np.float32)
        img = top + (yy / s)[..., None] * (bottom - top)
        clouds = np.clip(_smooth_noise(rng, s, s, 14 * unit, 24 * unit) - 0.4, 0.0, 1.0)[..., None]
        return img + 0.6 * clouds * (1.0 - img) + 0.01 * grain
    if name == "water":
        base = np.array([0.10, 0.30, 0.50], np.float32)
        warp = _smooth_noise(rng, s, s, 20 * unit)
        t = np.sin(2 * np.pi * yy / (7 * unit) + 1.5 * warp + 0.02 * xx)
        glint = np.clip(t - 0.8, 0, None) * 3.0
        return base + 0.08 * t[..., None] * np.array([0.5, 0.8, 1.0], np.float32) + 0.25 * glint[..., None] + 0.02 * grain
    if name == "rails":
        gravel = np.array([0.45, 0.40, 0.35], np.float32) + 0.07 * _smooth_noise(rng, s, s, 1.0 * unit)[..., None]
        band = 0.33 * s
        offset = float(rng.uniform(0, band))
        ty = np.mod(yy + offset, band) / band  # position within a track band
        tie_period, x0 = 14 * unit, float(rng.uniform(0, 14 * unit))
        ties = (np.mod(xx + x0, tie_period) < 0.45 * tie_period) & (ty > 0.12) & (ty < 0.88)
        rails = (np.abs(ty - 0.27) < 0.04) | (np.abs(ty - 0.73) < 0.04)
        img = np.where(ties[..., None], np.array([0.30, 0.20, 0.12], np.float32), gravel)
        img = np.where(np.broadcast_to(rails, (s, s))[..., None], np.array([0.78, 0.78, 0.80], np.float32), img)
        return img + 0.02 * grain
    if name == "grass":
        base = np.array([0.25, 0.50, 0.18], np.float32)
        blades = _smooth_noise(rng, s, s, 5 * unit, 0.8 * unit)
        return base + 0.10 * blades[..., None] * np.array([0.6, 1.0, 0.4], np.float32) + 0.03 * grain
    raise ValueError(f"unknown background {name!r}; expected 'generic:<i>' or one of {CONTEXT_TEXTURES}")


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inside test in the normalised body frame (u, v in units of the half-axes; v points down)."""
    if shape == "ellipse":
        return u * u + v * v <= 1.0
    if shape == "rectangle":
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == "rounded":
        return u**4 + v**4 <= 1.0
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "trapezoid":  # wide top, narrow bottom (a hull)
        return (np.abs(v) <= 1.0) & (np.abs(u) <= 1.0 - 0.175 * (v + 1.0))
    if shape == "cross":  # fuselage plus wings
        return ((np.abs(v) <= 0.35) & (np.abs(u) <= 1.0)) | ((np.abs(u - 0.1) <= 0.22) & (np.abs(v) <= 1.0))
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    if shape == "blob":  # random radial harmonics per instance
        amp = rng.uniform(0.0, 0.07, size=3)
        phase = rng.uniform(0.0, 2 * np.pi, size=3)
        radius = 0.85 + sum(amp[i] * np.cos((i + 2) * theta + phase[i]) for i in range(3))
        return rho <= radius
    if shape == "triangle":  # regular polygon radial function, a vertex pointing up
        n, theta0 = 3, -np.pi / 2
        sector = np.mod(theta - theta0, 2 * np.pi / n) - np.pi / n
        return rho <= math.cos(np.pi / n) / np.cos(sector)
    if shape == "star":  # five smooth points, one pointing up
        return rho <= 1.0 - 0.4 * (0.5 - 0.5 * np.cos(5 * (theta + np.pi / 2)))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _part_pattern(pattern: str, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Binary part pattern in part units (the part is the unit disc qx^2 + qy^2 <= 1)."""
    k = 2.0
    if pattern == "checker":
        return (np.floor(qx * k) + np.floor(qy * k)) % 2 == 0
    if pattern == "stripes":
        return np.sin(np.pi * 2.5 * qx) > 0
    if pattern == "dots":
        return (np.mod(qx * k, 1.0) - 0.5) ** 2 + (np.mod(qy * k, 1.0) - 0.5) ** 2 < 0.1
    if pattern == "rings":
        return np.sin(np.pi * 3.0 * np.hypot(qx, qy)) > 0
    if pattern == "diagonal":
        return np.sin(np.pi * 2.5 * (qx + qy) / math.sqrt(2)) > 0
    if pattern == "plus":
        return (np.abs(qx) < 0.3) | (np.abs(qy) < 0.3)
    if pattern == "pinwheel":
        return np.sin(4 * np.arctan2(qy, qx)) > 0
    if pattern == "grid":
        return (np.mod(qx * k, 1.0) < 0.35) | (np.mod(qy * k, 1.0) < 0.35)
    if pattern == "zigzag":
        return np.sin(np.pi * 2.5 * (qy + 0.35 * np.abs(np.mod(2 * qx, 2.0) - 1.0))) > 0
    raise ValueError(f"unknown part pattern {pattern!r}; expected one of {PART_PATTERNS}")


def _body_field(kind: str, lu: np.ndarray, lv: np.ndarray, minor: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean texture field (about unit amplitude) on the instance window, in the body frame."""
    h, w = lu.shape
    if kind == "mottled":
        return np.clip(_smooth_noise(rng, h, w, max(0.25 * minor, 1.0)), -2, 2) * 0.7
    if kind == "stripes":
        period = max(0.6 * minor, 3.0)
        return np.sin(2 * np.pi * lv / period + float(rng.uniform(0, 2 * np.pi))).astype(np.float32)
    if kind == "grain":
        return np.clip(_smooth_noise(rng, h, w, 0.8), -2, 2) * 0.7
    if kind == "shaded":
        return (np.clip(lu / max(2 * minor, 1.0), -1.5, 1.5) + 0.3 * _smooth_noise(rng, h, w, 1.5)).astype(np.float32)
    raise ValueError(f"unknown body texture kind {kind!r}; expected one of {BODY_TEXTURE_KINDS}")


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------


def _paint_instance(cfg, inst, texture_id, image, inst_map, label, rng, region_map=None) -> int:
    """Paint one instance (body texture + part pattern) into ``image`` / ``inst_map`` in place, and its part /
    near-body / far-body codes into ``region_map`` when given (it draws nothing from ``rng`` for that).

    Returns the number of image pixels the instance covers (before later instances occlude it).
    """
    spec = cfg.classes[inst.class_index]
    s = cfg.image_size
    half = inst.extent / 2.0
    ax, ay = (half, half / inst.aspect) if inst.aspect >= 1 else (half * inst.aspect, half)
    ax, ay = max(ax, 1.0), max(ay, 1.0)
    minor = min(ax, ay)
    rp = max(1.5, cfg.part_size_fraction * minor)
    c, sn = math.cos(inst.angle), math.sin(inst.angle)
    pu, pv = spec.part_position
    pcx, pcy = pu * max(ax - rp, 0.0), pv * max(ay - rp, 0.0)  # part centre, body frame
    # every body shape lies inside [-1.1 ax, 1.1 ax] x [-1.1 ay, 1.1 ay] in the body frame; so does the
    # part unless part_size_fraction > 1; the window is that box's rotated bounding box
    hx, hy = max(1.1 * ax, abs(pcx) + rp), max(1.1 * ay, abs(pcy) + rp)
    reach_x = abs(c) * hx + abs(sn) * hy + 2.0
    reach_y = abs(sn) * hx + abs(c) * hy + 2.0
    x0, x1 = max(0, int(math.floor(inst.cx - reach_x))), min(s, int(math.ceil(inst.cx + reach_x)) + 1)
    y0, y1 = max(0, int(math.floor(inst.cy - reach_y))), min(s, int(math.ceil(inst.cy + reach_y)) + 1)
    if x0 >= x1 or y0 >= y1:
        return 0
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - inst.cx)[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - inst.cy)[:, None]
    lu = c * dx + sn * dy  # body frame, pixels
    lv = -sn * dx + c * dy
    body = _shape_mask(spec.shape, lu / ax, lv / ay, rng)
    qx = (lu - pcx) / rp
    qy = (lv - pcy) / rp
    part = qx * qx + qy * qy <= 1.0
    obj = body | part
    if not obj.any():
        return 0

    kind, base = _body_texture_style(texture_id)
    if cfg.body_class_tint > 0:
        hue = _hsv_to_rgb(inst.class_index / len(cfg.classes), 1.0, 1.0)
        base = base + (cfg.body_class_tint * (hue - 0.5)).astype(np.float32)
    base = base + rng.uniform(-cfg.body_color_jitter, cfg.body_color_jitter, size=3).astype(np.float32)
    tint = np.array([1.0, 1.0, 1.0], np.float32) + 0.3 * (base - base.mean())
    body_rgb = base + cfg.body_contrast * _body_field(kind, lu, lv, minor, rng)[..., None] * tint
    body_rgb *= (1.0 - 0.06 * np.clip(lv / ay, -1, 1))[..., None]  # soft top lighting

    col_a, col_b = (np.array(col, np.float32) / 255.0 for col in spec.part_colors)
    mean = 0.5 * (col_a + col_b)
    on = _part_pattern(spec.part_pattern, qx, qy)[..., None]
    part_rgb = mean + cfg.part_contrast * (np.where(on, col_a, col_b) - mean)

    rgb = np.where(part[..., None], part_rgb, body_rgb)
    win = image[y0:y1, x0:x1]
    win[obj] = rgb[obj]
    inst_map[y0:y1, x0:x1][obj] = label
    if region_map is not None:
        to_part = np.hypot(lu - pcx, lv - pcy) - rp  # distance to the part's edge, pixels
        far = to_part > cfg.far_body_distance * inst.extent
        codes = np.where(part, REGION_CODES["part"], np.where(far, REGION_CODES["far_body"], REGION_CODES["near_body"]))
        region_map[y0:y1, x0:x1][obj] = codes[obj]
    return int(np.count_nonzero(obj))


def _void_band(inst_map: np.ndarray, width: int) -> np.ndarray:
    """Pixels whose (2w+1)^2 neighbourhood holds another instance id (0 = background), vectorised."""
    if width <= 0:
        return np.zeros(inst_map.shape, dtype=bool)
    size = 2 * width + 1
    return ndimage.maximum_filter(inst_map, size=size, mode="nearest") != ndimage.minimum_filter(
        inst_map, size=size, mode="nearest"
    )


def render_sample(cfg: SyntheticConfig, index: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Image ``index``: ``(image uint8 HxWx3 before JPEG, mask uint8 HxW, objects)``; see :func:`_render`."""
    image, mask, objects, _ = _render(cfg, index, regions=False)
    return image, mask, objects


def render_regions(cfg: SyntheticConfig, index: int) -> np.ndarray:
    """The region annotation (``REGION_CODES``, 255 void, uint8 HxW) of image ``index``, whatever
    ``cfg.emit_regions`` says (the files are written only with it)."""
    return _render(cfg, index, regions=True)[3]


def _render(cfg: SyntheticConfig, index: int, regions: bool
            ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray | None]:
    """Image ``index``: ``(image uint8 HxWx3 before JPEG, mask uint8 HxW, objects, regions or None)``.

    ``mask``: 0 background, ``k`` = ``cfg.classes[k-1]``, 255 void (object outlines and the
    remnants of instances that count as fully occluded). ``objects``: one dict per *visible* instance
    in painting order with ``name``, ``label``, ``bbox`` (VOC 1-based inclusive xmin, ymin, xmax, ymax
    of its visible pixels), ``area`` (visible non-void pixels), ``truncated``, ``occluded``.
    """
    plan = plan_scene(cfg, index)
    _, rng = _streams(cfg, index)
    s = cfg.image_size
    image = np.empty((s, s, 3), dtype=np.float32)
    image[...] = _background(cfg, plan.background, rng)
    inst_map = np.zeros((s, s), dtype=np.int32)
    region_map = None
    if regions:
        background = REGION_CODES["context_background" if plan.background in CONTEXT_TEXTURES else "plain_background"]
        region_map = np.full((s, s), background, dtype=np.uint8)
    drawn = [0]
    for j, inst in enumerate(plan.instances, start=1):
        tex = cfg.classes[inst.class_index].body_texture if cfg.body_texture_sharing else inst.class_index
        drawn.append(_paint_instance(cfg, inst, tex, image, inst_map, j, rng, region_map))
    if cfg.edge_blur_sigma > 0:
        image = ndimage.gaussian_filter(image, sigma=(cfg.edge_blur_sigma, cfg.edge_blur_sigma, 0), mode="nearest")
    if cfg.pixel_noise_std > 0:
        image += cfg.pixel_noise_std * rng.standard_normal(image.shape, dtype=np.float32)
    image *= 255.0
    np.rint(image, out=image)
    np.clip(image, 0, 255, out=image)
    image_u8 = image.astype(np.uint8)

    labels = np.array([0] + [inst.class_index + 1 for inst in plan.instances], dtype=np.uint8)
    mask = labels[inst_map]
    void = _void_band(inst_map, cfg.void_width)
    mask[void] = IGNORE_INDEX

    n = len(plan.instances)
    visible = np.bincount(inst_map.ravel(), minlength=n + 1)
    kept = visible - np.bincount(inst_map[void], minlength=n + 1)
    min_pixels = max(1, math.ceil(cfg.min_visible_fraction * s * s))
    boxes = ndimage.find_objects(inst_map, max_label=n)
    objects: list[dict[str, Any]] = []
    for j, inst in enumerate(plan.instances, start=1):
        box = boxes[j - 1]
        if box is None:  # fully covered by later instances
            continue
        if kept[j] < min_pixels:  # effectively fully occluded: not listed, its remnant becomes void
            region = mask[box]
            region[inst_map[box] == j] = IGNORE_INDEX
            continue
        ymin, ymax, xmin, xmax = box[0].start, box[0].stop - 1, box[1].start, box[1].stop - 1
        objects.append({
            "name": cfg.classes[inst.class_index].name,
            "label": inst.class_index + 1,
            "bbox": (xmin + 1, ymin + 1, xmax + 1, ymax + 1),
            "area": int(kept[j]),
            "truncated": bool(xmin == 0 or ymin == 0 or xmax == s - 1 or ymax == s - 1),
            "occluded": bool(visible[j] < drawn[j]),
        })
    if region_map is not None:
        region_map[mask == IGNORE_INDEX] = IGNORE_INDEX
    return image_u8, mask, objects, region_map


# ----------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------


def _annotation_xml(image_id: str, size: int, objects: list[dict[str, Any]]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "wsss_lib synthetic WSSS benchmark"
    size_el = ET.SubElement(root, "size")
    ET.SubElement(size_el, "width").text = str(size)
    ET.SubElement(size_el, "height").text = str(size)
    ET.SubElement(size_el, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "1"
    for obj in objects:
        el = ET.SubElement(root, "object")
        ET.SubElement(el, "name").text = obj["name"]
        ET.SubElement(el, "pose").text = "Unspecified"
        ET.SubElement(el, "truncated").text = str(int(obj["truncated"]))
        ET.SubElement(el, "occluded").text = str(int(obj["occluded"]))
        ET.SubElement(el, "difficult").text = "0"
        box = ET.SubElement(el, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["bbox"]):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8") + b"\n"


def _encode_chunk(cfg: SyntheticConfig, items: list[tuple[int, str, bool]]) -> list[tuple[str, bytes]]:
    """Render images ``items`` = [(index, id, also_in_SegmentationClass)] and encode their files.

    Returns ``[(path relative to VOC2012/, bytes)]``; the caller writes them, so that worker
    processes only compute (concurrent small-file writes from several processes are slow on some disks).
    """
    files: list[tuple[str, bytes]] = []
    for index, image_id, seg_class in items:
        image, mask, objects, regions = _render(cfg, index, regions=cfg.emit_regions)
        buf = io.BytesIO()
        Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=cfg.jpeg_quality)
        files.append((f"JPEGImages/{image_id}.jpg", buf.getvalue()))
        buf = io.BytesIO()
        to_palette_image(mask).save(buf, format="PNG")
        files.append((f"SegmentationClassAug/{image_id}.png", buf.getvalue()))
        if seg_class:
            files.append((f"SegmentationClass/{image_id}.png", buf.getvalue()))
        files.append((f"Annotations/{image_id}.xml", _annotation_xml(image_id, cfg.image_size, objects)))
        if regions is not None:
            buf = io.BytesIO()
            Image.fromarray(regions, mode="L").save(buf, format="PNG")
            files.append((f"{REGION_DIR}/{image_id}.png", buf.getvalue()))
    return files


def _write_files(root: Path, files: list[tuple[str, bytes]]) -> None:
    for rel, data in files:
        (root / rel).write_bytes(data)


def generate(
    cfg: SyntheticConfig,
    out_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the dataset to ``out_dir/VOC2012`` atomically and return that path.

    Everything is written into a temporary sibling directory that is renamed onto ``out_dir/VOC2012``
    at the end, so an interrupted run leaves no partial dataset. ``workers`` processes
    (default ``os.cpu_count()``; 1 = in this process) render the images; the bytes do not depend on it.
    Raises ``FileExistsError`` if ``out_dir/VOC2012`` exists and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    target = out_dir / "VOC2012"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True or use ensure_synthetic()")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".VOC2012.tmp-", dir=out_dir))
    try:
        subs = ["JPEGImages", "SegmentationClassAug", "SegmentationClass", "Annotations", "ImageSets/Segmentation"]
        for sub in subs + ([REGION_DIR] if cfg.emit_regions else []):
            (tmp / sub).mkdir(parents=True)
        splits = split_ids(cfg)
        seg_class = set(splits["train"]) | set(splits["val"])
        all_ids = splits["train_aug"] + splits["val"]
        items = [(i, image_id, image_id in seg_class) for i, image_id in enumerate(all_ids)]
        workers = max(1, min(workers, len(items)))
        chunk = max(1, min(32, math.ceil(len(items) / (workers * 8)))) if items else 1
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        with tqdm(total=len(items), disable=not progress, desc="synthetic VOC", unit="img") as bar:
            if workers == 1:
                for part in chunks:
                    _write_files(tmp, _encode_chunk(cfg, part))
                    bar.update(len(part))
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    futures = {pool.submit(_encode_chunk, cfg, part): len(part) for part in chunks}
                    try:
                        for fut in as_completed(futures):
                            _write_files(tmp, fut.result())
                            bar.update(futures[fut])
                    except BaseException:
                        for fut in futures:
                            fut.cancel()
                        raise
        for split, ids in splits.items():
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        names = ["background"] + [c.name for c in cfg.classes]
        (tmp / "class_names.txt").write_text("".join(f"{n}\n" for n in names))
        (tmp / "class_groups.json").write_text(json.dumps(class_groups(cfg), indent=2) + "\n")
        (tmp / "generator_config.json").write_text(json.dumps(config_to_json(cfg), indent=2, sort_keys=True) + "\n")

        if target.exists():  # overwrite: move the old tree aside, swap, then delete it
            if not overwrite:
                raise FileExistsError(f"{target} appeared while generating; not overwriting it")
            trash = Path(tempfile.mkdtemp(prefix=".VOC2012.old-", dir=out_dir))
            os.replace(target, trash / "VOC2012")
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def ensure_synthetic(cfg: SyntheticConfig, out_dir: str | os.PathLike, **kwargs: Any) -> Path:
    """``out_dir/VOC2012``, generated by ``generate(cfg, out_dir, **kwargs)`` unless it is there already.

    If ``generator_config.json`` exists it must match ``cfg`` and this generator version exactly;
    otherwise a ``ValueError`` names the differing fields (delete the folder or pick another ``out_dir``).
    """
    target = Path(out_dir) / "VOC2012"
    record_path = target / "generator_config.json"
    if not record_path.is_file():
        return generate(cfg, out_dir, **kwargs)
    try:
        stored = json.loads(record_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{record_path}: not valid JSON ({err}); delete {target} to regenerate") from err
    expected = config_to_json(cfg)
    if stored != expected:
        s_cfg, e_cfg = stored.get("config", {}), expected["config"]
        diff = sorted(k for k in set(s_cfg) | set(e_cfg) if s_cfg.get(k) != e_cfg.get(k))
        if stored.get("generator_version") != expected["generator_version"]:
            diff.append(f"generator_version ({stored.get('generator_version')!r} vs {GENERATOR_VERSION!r})")
        raise ValueError(
            f"{target} was generated with a different configuration (differs in: {', '.join(diff)}); "
            f"delete it or choose another out_dir"
        )
    return target


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m wsss_lib.data.synthetic OUT_DIR [--n-train N ...]``: generate with the default classes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    defaults = SyntheticConfig()
    for f in dataclasses.fields(SyntheticConfig):
        if f.name == "classes":
            continue
        value = getattr(defaults, f.name)
        kind = _parse_bool if isinstance(value, bool) else type(value)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=value)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = vars(parser.parse_args(argv))
    out_dir, workers, overwrite = args.pop("out_dir"), args.pop("workers"), args.pop("overwrite")
    path = generate(SyntheticConfig(**args), out_dir, workers=workers, overwrite=overwrite)
    print(path)


if __name__ == "__main__":
    main()
