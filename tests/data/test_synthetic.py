"""Tests of the synthetic WSSS benchmark generator (wsss_lib.data.synthetic)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss_lib.data import synthetic
from wsss_lib.data.synthetic import (
    CONTEXT_TEXTURES,
    SyntheticConfig,
    class_groups,
    ensure_synthetic,
    generate,
    plan_scene,
    render_sample,
    split_ids,
)
from wsss_lib.data.synthetic import writer as synthetic_writer

TINY = SyntheticConfig(seed=3, image_size=64, n_train=6, n_train_aug_extra=4, n_val=5)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read_ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def _xml_objects(path: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    root = ET.parse(path).getroot()
    out = []
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        out.append((obj.findtext("name"), tuple(int(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))))
    return out


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate(TINY, tmp_path_factory.mktemp("tiny"), workers=1, progress=False)


# ---------------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_for_any_worker_count(tiny_root, tmp_path):
    other = generate(TINY, tmp_path / "w2", workers=2, progress=False)
    first, second = _digest(tiny_root), _digest(other)
    assert len(first) > 4 * TINY.num_images
    assert first == second


def test_different_seed_different_bytes(tiny_root, tmp_path):
    other = generate(dataclasses.replace(TINY, seed=4), tmp_path, workers=1, progress=False)
    first, second = _digest(tiny_root), _digest(other)
    assert first.keys() == second.keys()
    jpgs = [k for k in first if k.startswith("JPEGImages/")]
    assert sum(first[k] != second[k] for k in jpgs) == len(jpgs)


def test_render_sample_is_deterministic_and_matches_files(tiny_root):
    image, mask, objects = render_sample(TINY, 2)
    image2, mask2, objects2 = render_sample(TINY, 2)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert mask.dtype == np.uint8 and mask.shape == (64, 64)
    np.testing.assert_array_equal(image, image2)
    np.testing.assert_array_equal(mask, mask2)
    assert objects == objects2
    image_id = split_ids(TINY)["train_aug"][2]
    np.testing.assert_array_equal(np.asarray(Image.open(tiny_root / "SegmentationClassAug" / f"{image_id}.png")), mask)


# ---------------------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------------------


def test_voc_layout_and_splits(tiny_root):
    train, train_aug, val = (_read_ids(tiny_root, s) for s in ("train", "train_aug", "val"))
    assert (len(train), len(train_aug), len(val)) == (6, 10, 5)
    assert set(train) <= set(train_aug) and not set(train_aug) & set(val)
    for ids in (train, train_aug, val):
        assert ids == sorted(ids)
    assert train == [f"syn_{i:06d}" for i in range(6)] and val[0] == "syn_000010"
    for image_id in train_aug + val:
        for sub, ext in (("JPEGImages", "jpg"), ("SegmentationClassAug", "png"), ("Annotations", "xml")):
            assert (tiny_root / sub / f"{image_id}.{ext}").is_file(), (sub, image_id)
    seg_class = {p.stem for p in (tiny_root / "SegmentationClass").glob("*.png")}
    assert seg_class == set(train) | set(val)
    assert len(list((tiny_root / "JPEGImages").iterdir())) == TINY.num_images

    names = (tiny_root / "class_names.txt").read_text().split("\n")[:-1]
    assert names == ["background"] + [c.name for c in TINY.classes]
    groups = json.loads((tiny_root / "class_groups.json").read_text())
    assert groups == class_groups(TINY)
    assert list(groups) == ["Occurrence", "Size", "Group", "Context"]
    for family, members in groups.items():  # every family partitions the classes
        flat = [n for group in members.values() for n in group]
        assert sorted(flat) == sorted(names[1:]), family
    assert groups["Group"]["Room"] == ["chair", "table", "sofa", "lamp"]
    assert set(groups["Context"]["Context-biased"]) == {"plane", "boat", "train"}
    record = json.loads((tiny_root / "generator_config.json").read_text())
    assert record["generator_version"] == synthetic.GENERATOR_VERSION
    assert record["config"]["n_val"] == 5 and record["config"]["classes"][0]["name"] == "person"


def test_images_masks_and_annotations(tiny_root):
    num_classes = len(TINY.classes)
    names = [c.name for c in TINY.classes]
    seen_void = 0
    for image_id in _read_ids(tiny_root, "train_aug") + _read_ids(tiny_root, "val"):
        with Image.open(tiny_root / "JPEGImages" / f"{image_id}.jpg") as img:
            assert img.mode == "RGB" and img.size == (64, 64)
        with Image.open(tiny_root / "SegmentationClassAug" / f"{image_id}.png") as png:
            assert png.mode == "P"
            mask = np.asarray(png)
        values = set(np.unique(mask).tolist())
        assert values <= set(range(num_classes + 1)) | {255}, values
        seen_void += int((mask == 255).any())
        objects = _xml_objects(tiny_root / "Annotations" / f"{image_id}.xml")
        in_mask = {names[v - 1] for v in values - {0, 255}}
        assert {name for name, _ in objects} == in_mask, image_id
        for name, (x0, y0, x1, y1) in objects:
            assert 1 <= x0 <= x1 <= 64 and 1 <= y0 <= y1 <= 64
            label = names.index(name) + 1
            assert (mask[y0 - 1 : y1, x0 - 1 : x1] == label).any()
        root = ET.parse(tiny_root / "Annotations" / f"{image_id}.xml").getroot()
        assert root.findtext("filename") == f"{image_id}.jpg"
        assert [root.findtext(f"size/{k}") for k in ("width", "height", "depth")] == ["64", "64", "3"]
    assert seen_void > 0


def test_fully_occluded_instances_are_not_listed():
    crowded = dataclasses.replace(
        TINY, size_scale=2.0, max_instances=3, instance_continue_prob=1.0, room_cooccurrence_prob=1.0
    )
    hidden = 0
    names = [c.name for c in crowded.classes]
    for index in range(25):
        _, mask, objects = render_sample(crowded, index)
        hidden += len(plan_scene(crowded, index).instances) - len(objects)
        in_mask = {names[v - 1] for v in np.unique(mask).tolist() if v not in (0, 255)}
        assert {o["name"] for o in objects} == in_mask
        for label in {o["label"] for o in objects}:  # areas = the visible non-void pixels of each class
            assert sum(o["area"] for o in objects if o["label"] == label) == (mask == label).sum()
    assert hidden > 0  # the crowded scenes do hide some instances completely


# ---------------------------------------------------------------------------------------------------
# void band
# ---------------------------------------------------------------------------------------------------


def _touching_different_labels(mask: np.ndarray) -> int:
    """Pairs of 8-neighbours that carry two different non-void labels."""
    count = 0
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = mask[max(dy, 0) :, max(dx, 0) : mask.shape[1] + min(dx, 0)]
        b = mask[: mask.shape[0] - dy, max(-dx, 0) : mask.shape[1] - max(dx, 0)]
        count += int(((a != b) & (a != 255) & (b != 255)).sum())
    return count


def test_void_band_separates_labels():
    cfg = dataclasses.replace(TINY, image_size=96)
    thin = dataclasses.replace(cfg, void_width=1)
    wide = dataclasses.replace(cfg, void_width=2)
    none = dataclasses.replace(cfg, void_width=0, min_visible_fraction=0.0)
    for index in range(6):
        _, m_none, _ = render_sample(none, index)
        _, m_thin, _ = render_sample(thin, index)
        _, m_wide, _ = render_sample(wide, index)
        assert not (m_none == 255).any()
        assert _touching_different_labels(m_none) > 0  # objects do touch the background
        assert _touching_different_labels(m_thin) == 0
        assert _touching_different_labels(m_wide) == 0
        assert 0 < (m_thin == 255).sum() < (m_wide == 255).sum()
        # the band only replaces labels: outside it the three masks agree
        keep = m_wide != 255
        np.testing.assert_array_equal(m_none[keep], m_wide[keep])


# ---------------------------------------------------------------------------------------------------
# failure-mode knobs (scene plans are cheap; a few renders check the pixels)
# ---------------------------------------------------------------------------------------------------

N_PLANS = 300


def _plans(cfg: SyntheticConfig, n: int = N_PLANS):
    return [plan_scene(cfg, i) for i in range(n)]


def _names(cfg, plan) -> set[str]:
    return {cfg.classes[k].name for k in plan.classes}


def test_room_cooccurrence_knob():
    room = {"chair", "table", "sofa", "lamp"}

    def mean_room_classes(prob: float) -> float:
        cfg = dataclasses.replace(TINY, room_cooccurrence_prob=prob)
        counts = [len(_names(cfg, p) & room) for p in _plans(cfg)]
        counts = [c for c in counts if c > 0]
        return float(np.mean(counts))

    together, apart = mean_room_classes(1.0), mean_room_classes(0.0)
    assert together >= 2.0 and together - apart > 1.0, (together, apart)


def test_person_cooccurrence_knob():
    def person_rate(prob: float) -> float:
        cfg = dataclasses.replace(TINY, person_cooccurrence_prob=prob, extra_class_prob=0.0)
        plans = [p for p in _plans(cfg) if _names(cfg, p) & {"dog", "horse", "car", "bike"}]
        return float(np.mean(["person" in _names(cfg, p) for p in plans]))

    assert person_rate(1.0) > 0.9 and person_rate(0.0) < 0.3


def test_singletons_appear_alone():
    cfg = dataclasses.replace(TINY, singleton_alone_prob=1.0)
    singletons = {"plane", "bird", "boat", "train"}
    plans = [p for p in _plans(cfg) if _names(cfg, p) & singletons]
    assert len(plans) > 20 and all(len(p.classes) == 1 for p in plans)


def test_context_knobs():
    always = dataclasses.replace(TINY, context_prob=1.0, context_alone_prob=0.0)
    never = dataclasses.replace(TINY, context_prob=0.0, context_alone_prob=0.0)
    alone = dataclasses.replace(TINY, context_prob=0.0, context_alone_prob=1.0)
    ctx = {c.name: c.context for c in TINY.classes}
    n_boats = 0
    for p in _plans(always):
        names = _names(always, p)
        wanted = {ctx[n] for n in names if ctx[n] is not None}
        if wanted:
            assert p.background in wanted
        else:
            assert p.background.startswith("generic:")
        n_boats += "boat" in names
    assert n_boats > 5
    assert all(p.background.startswith("generic:") for p in _plans(never))
    for p in _plans(alone):
        has_ctx = any(ctx[n] is not None for n in _names(alone, p))
        assert (p.background in CONTEXT_TEXTURES) != has_ctx

    # pixels: a boat on water has a blue background, the same scene without context does not
    cfg = dataclasses.replace(always, image_size=96)
    index = next(i for i in range(N_PLANS) if plan_scene(cfg, i).background == "water")
    image, mask, _ = render_sample(cfg, index)
    bg = image[mask == 0].astype(float).mean(axis=0)
    assert bg[2] > bg[0] + 40, bg


def test_frequency_and_size_groups():
    cfg = TINY
    groups = class_groups(cfg)
    plans = _plans(cfg)
    presence = {
        g: np.mean([len(_names(cfg, p) & set(m)) for p in plans]) / len(m) for g, m in groups["Occurrence"].items()
    }
    assert presence["High freq."] > presence["Mid freq."] > presence["Low freq."], presence
    size_of = {c.name: g for g, members in groups["Size"].items() for c in cfg.classes if c.name in members}
    extents: dict[str, list[float]] = {g: [] for g in groups["Size"]}
    for p in plans:
        for inst in p.instances:
            extents[size_of[cfg.classes[inst.class_index].name]].append(inst.extent)
    means = {g: np.mean(v) for g, v in extents.items()}
    assert means["Small"] < means["Mid"] < means["Large"], means
    bigger = dataclasses.replace(cfg, size_scale=1.5)
    assert plan_scene(bigger, 0).instances[0].extent == pytest.approx(1.5 * plan_scene(cfg, 0).instances[0].extent)


def test_part_and_body_knobs_change_pixels():
    base = dataclasses.replace(TINY, image_size=96, pixel_noise_std=0.0, edge_blur_sigma=0.0)
    index = next(i for i in range(50) if len(plan_scene(base, i).instances) >= 2)
    image, mask, _ = render_sample(base, index)
    flat_parts, _, _ = render_sample(dataclasses.replace(base, part_contrast=0.0), index)
    fg = (mask != 0) & (mask != 255)
    assert fg.sum() > 50
    # the high-contrast parts are the main source of colour variation inside objects
    assert image[fg].astype(float).std(axis=0).mean() > flat_parts[fg].astype(float).std(axis=0).mean()
    np.testing.assert_array_equal(image[mask == 0], flat_parts[mask == 0])
    unshared, _, _ = render_sample(dataclasses.replace(base, body_texture_sharing=False), index)
    assert not np.array_equal(image[fg], unshared[fg])


def test_config_validation():
    with pytest.raises(ValueError, match="context_prob"):
        SyntheticConfig(context_prob=1.5)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticConfig(image_size=8)
    bad = dataclasses.replace(synthetic.default_classes()[0], shape="hexagon")
    with pytest.raises(ValueError, match="hexagon"):
        SyntheticConfig(classes=(bad,))


# ---------------------------------------------------------------------------------------------------
# atomicity and ensure_synthetic
# ---------------------------------------------------------------------------------------------------


def test_existing_output_requires_overwrite(tmp_path):
    cfg = dataclasses.replace(TINY, n_train=2, n_train_aug_extra=1, n_val=1)
    root = generate(cfg, tmp_path, workers=1, progress=False)
    with pytest.raises(FileExistsError):
        generate(cfg, tmp_path, workers=1, progress=False)
    other = dataclasses.replace(cfg, seed=9)
    generate(other, tmp_path, workers=1, progress=False, overwrite=True)
    assert json.loads((root / "generator_config.json").read_text())["config"]["seed"] == 9
    assert [p.name for p in tmp_path.iterdir()] == ["VOC2012"]  # no temporary directories left


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def broken(cfg, items):
        raise RuntimeError("boom")

    monkeypatch.setattr(synthetic_writer, "_encode_chunk", broken)
    with pytest.raises(RuntimeError, match="boom"):
        generate(TINY, tmp_path, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_ensure_synthetic_reuses_and_rejects(tmp_path, monkeypatch):
    cfg = dataclasses.replace(TINY, n_train=2, n_train_aug_extra=1, n_val=1)
    root = ensure_synthetic(cfg, tmp_path, workers=1, progress=False)
    jpg = next((root / "JPEGImages").iterdir())
    stamp = jpg.stat().st_mtime_ns

    def no_generate(*args, **kwargs):
        raise AssertionError("ensure_synthetic regenerated an up-to-date dataset")

    monkeypatch.setattr(synthetic_writer, "generate", no_generate)
    assert ensure_synthetic(cfg, tmp_path, workers=1, progress=False) == root
    assert jpg.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="n_val"):
        ensure_synthetic(dataclasses.replace(cfg, n_val=2), tmp_path)


def test_config_json_round_trip(tiny_root):
    record = json.loads((tiny_root / "generator_config.json").read_text())
    assert SyntheticConfig.from_dict(record["config"]) == TINY
    assert SyntheticConfig.from_dict({"n_val": 3}) == dataclasses.replace(SyntheticConfig(), n_val=3)
    with pytest.raises(ValueError, match="n_vall"):
        SyntheticConfig.from_dict({"n_vall": 3})
