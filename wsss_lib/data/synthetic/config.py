"""The benchmark's configuration: the class specs, the generator's knobs (``SyntheticConfig``), the region codes,
the class groups and the splits."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

REGION_CODES = {"plain_background": 0, "context_background": 1, "part": 2, "near_body": 3, "far_body": 4}
"""Codes of ``<REGION_DIR>/<id>.png`` (``emit_regions``; 255 = void, as in the class mask), read by
``wsss_lib.evaluation.pathology``."""
REGION_DIR = "SegmentationRegion"
"""The folder of the region annotation, beside ``SegmentationClass`` in ``VOC2012/``."""

GENERATOR_VERSION = "wsss_lib.data.synthetic 2.0.0"
"""2.0.0 added the v2 knobs (``body_class_tint``, ``emit_regions``, ``far_body_distance``); their defaults render
byte-identical files to 1.0.0, so a v1 dataset is reproduced by its configuration (tests/data/test_synthetic_v2.py)."""

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
            name=name,
            shape=shape,
            aspect=aspect,
            body_texture=tex,
            part_pattern=pattern,
            part_colors=colors,
            part_position=pos,
            size_range=_SIZE_RANGES[size],
            size_group=size,
            frequency=weight,
            frequency_group=freq,
            context=context,
            role=role,
            person_companion=companion,
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
            "part_contrast",
            "context_prob",
            "context_alone_prob",
            "room_cooccurrence_prob",
            "person_cooccurrence_prob",
            "singleton_alone_prob",
            "extra_class_prob",
            "instance_continue_prob",
            "min_visible_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in (
            "part_size_fraction",
            "body_contrast",
            "body_color_jitter",
            "aspect_jitter",
            "body_class_tint",
            "far_body_distance",
            "rotation_range_deg",
            "background_contrast",
            "pixel_noise_std",
            "edge_blur_sigma",
        ):
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
            raise ValueError(
                f"SyntheticConfig.from_dict: unknown fields {unknown}; expected a subset of {sorted(known)}"
            )
        kwargs = dict(data)
        if "classes" in kwargs:
            kwargs["classes"] = tuple(
                ClassSpec(
                    **{
                        **c,
                        "part_colors": tuple(tuple(int(v) for v in col) for col in c["part_colors"]),
                        "part_position": tuple(float(v) for v in c["part_position"]),
                        "size_range": tuple(float(v) for v in c["size_range"]),
                    }
                )
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
