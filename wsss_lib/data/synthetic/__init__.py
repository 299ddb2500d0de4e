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

The package: :mod:`.config` (class specs, knobs, region codes, groups, splits), :mod:`.scene` (planning),
:mod:`.render` (textures, shapes, painting), :mod:`.writer` (the VOC layout on disk) and ``python -m
wsss_lib.data.synthetic`` (its ``__main__``).
"""

from wsss_lib.data.synthetic.config import (
    CONTEXT_TEXTURES,
    GENERATOR_VERSION,
    REGION_CODES,
    REGION_DIR,
    ClassSpec,
    SyntheticConfig,
    class_groups,
    config_to_json,
    default_classes,
    split_ids,
)
from wsss_lib.data.synthetic.render import render_regions, render_sample
from wsss_lib.data.synthetic.scene import InstancePlan, ScenePlan, plan_scene
from wsss_lib.data.synthetic.writer import ensure_synthetic, generate

__all__ = [
    "GENERATOR_VERSION",
    "CONTEXT_TEXTURES",
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
