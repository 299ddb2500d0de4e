"""The synthetic benchmark's v2 knobs: v1 unchanged at their defaults, the region annotation, determinism."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from wsss_lib.data.synthetic import (
    CONTEXT_TEXTURES,
    SyntheticConfig,
    generate,
    plan_scene,
    render_regions,
    render_sample,
)
from wsss_lib.evaluation.pathology import REGIONS

V1_96PX_FIRST4 = "e3455b40790276cdb879de2597ddc0e96a6b1144217c92e581355711b687a3d4"
"""render_sample of images 0-3 of SyntheticConfig(image_size=96), computed with generator 1.0.0 (commit 5cbf72c)."""


def test_v1_images_are_unchanged_by_the_v2_knobs_at_their_defaults():
    h = hashlib.sha256()
    for i in range(4):
        image, mask, objects = render_sample(SyntheticConfig(image_size=96), i)
        h.update(image.tobytes()), h.update(mask.tobytes()), h.update(repr(objects).encode())
    assert h.hexdigest() == V1_96PX_FIRST4


def test_region_codes_agree_with_the_mask_and_the_background():
    cfg = SyntheticConfig(image_size=96, context_prob=1.0)
    seen = set()
    for i in range(12):
        _, mask, _ = render_sample(cfg, i)
        regions = render_regions(cfg, i)
        assert regions.shape == mask.shape and regions.dtype == np.uint8
        assert ((regions == 255) == (mask == 255)).all()
        fg = (mask > 0) & (mask < 255)
        assert np.isin(regions[fg], [REGIONS["part"], REGIONS["near_body"], REGIONS["far_body"]]).all()
        background = regions[mask == 0]
        context = plan_scene(cfg, i).background in CONTEXT_TEXTURES
        expected = REGIONS["context_background" if context else "plain_background"]
        assert (background == expected).all()
        seen |= set(np.unique(regions).tolist())
    assert {REGIONS["part"], REGIONS["near_body"], REGIONS["far_body"], REGIONS["context_background"],
            REGIONS["plain_background"]} <= seen


def test_far_body_distance_moves_body_pixels_between_near_and_far():
    near_only = render_regions(SyntheticConfig(image_size=96, far_body_distance=10.0), 3)
    far_only = render_regions(SyntheticConfig(image_size=96, far_body_distance=0.0), 3)
    assert not (near_only == REGIONS["far_body"]).any() and (near_only == REGIONS["near_body"]).any()
    assert not (far_only == REGIONS["near_body"]).any() and (far_only == REGIONS["far_body"]).any()
    assert ((near_only == REGIONS["part"]) == (far_only == REGIONS["part"])).all()


def test_body_class_tint_changes_colours_not_layout():
    a_img, a_mask, a_obj = render_sample(SyntheticConfig(image_size=96), 5)
    b_img, b_mask, b_obj = render_sample(SyntheticConfig(image_size=96, body_class_tint=0.2), 5)
    assert (a_mask == b_mask).all() and a_obj == b_obj and not (a_img == b_img).all()
    with pytest.raises(ValueError, match="body_class_tint"):
        SyntheticConfig(body_class_tint=-1.0)


def test_region_files_are_written_and_do_not_depend_on_workers(tmp_path):
    cfg = SyntheticConfig(image_size=48, n_train=3, n_train_aug_extra=1, n_val=2, emit_regions=True)
    one = generate(cfg, tmp_path / "one", workers=1, progress=False)
    two = generate(cfg, tmp_path / "two", workers=2, progress=False)
    files = sorted(p.name for p in (one / "SegmentationRegion").iterdir())
    assert len(files) == 6
    for name in files:
        assert (one / "SegmentationRegion" / name).read_bytes() == (two / "SegmentationRegion" / name).read_bytes()
    stored = np.asarray(Image.open(one / "SegmentationRegion" / "syn_000000.png"))
    assert (stored == render_regions(cfg, 0)).all()
    plain = generate(SyntheticConfig(image_size=48, n_train=3, n_train_aug_extra=1, n_val=2), tmp_path / "v1",
                     workers=1, progress=False)
    assert not (plain / "SegmentationRegion").exists()
