"""Loaders: VOC layout (real VOC and synthetic share it), COCO, transforms, and every bad-input case."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import write_tiny_coco, write_voc_tree
from PIL import Image

from wsss_lib.data import COCOSegmentation, DatasetConfig, DatasetError, VOCSegmentation, open_dataset
from wsss_lib.data.transforms import AugmentConfig, build_eval_transform, build_train_transform
from wsss_lib.data.voc import VOC_CLASSES, VOC_PAPER_GROUPS


def test_voc_reads_layout_and_labels(tiny_voc):
    train = VOCSegmentation(tiny_voc, "train", label_check="error")
    assert train.ids == ["a", "b"] and train.num_classes == 4
    np.testing.assert_array_equal(train.labels, [[1, 0, 0], [0, 1, 1]])
    image, mask = train.load_pair("a")
    assert image.shape == (8, 10, 3) and image.dtype == np.uint8 and mask[1, 1] == 255
    sample = train[1]
    assert sample["id"] == "b" and sample["label"].tolist() == [0.0, 1.0, 1.0]
    # train_aug reads SegmentationClassAug (d exists only there); VOC2012 folder works as a root too
    aug = VOCSegmentation(tiny_voc / "VOC2012", "train_aug", label_check="error")
    assert aug.ids == ["a", "b", "d"] and aug.label_of("d").tolist() == [0, 1, 0]


def test_voc_label_cache(tiny_voc, tmp_path):
    cache = tmp_path / "cache"
    first = VOCSegmentation(tiny_voc, "train", cache_dir=cache).labels
    files = list(cache.glob("labels-*.json"))
    assert len(files) == 1
    second = VOCSegmentation(tiny_voc, "train", cache_dir=cache)
    second.compute_labels = lambda: pytest.fail("labels should come from the cache")  # type: ignore[method-assign]
    np.testing.assert_array_equal(second.labels, first)


def test_voc_without_class_list_uses_voc_names(tmp_path):
    mask = np.zeros((4, 4), np.uint8); mask[0, 0] = 20
    root = write_voc_tree(tmp_path, {"x": mask}, {"train": ["x"]})
    ds = VOCSegmentation(root, "train", label_check="off")
    assert ds.class_names == VOC_CLASSES and ds.labels[0, 19] == 1
    members = {c for fam in VOC_PAPER_GROUPS.values() for g in fam.values() for c in g}
    assert members == set(VOC_CLASSES[1:])


def test_missing_root_and_split(tmp_path, tiny_voc):
    with pytest.raises(DatasetError, match="does not exist"):
        VOCSegmentation(tmp_path / "nowhere", "train")
    with pytest.raises(DatasetError, match="no JPEGImages"):
        VOCSegmentation(tmp_path, "train")
    with pytest.raises(DatasetError, match=r"test\.txt is missing; available splits: \['train', 'train_aug', 'val'\]"):
        VOCSegmentation(tiny_voc, "test")


def test_voc_needs_a_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("WSSS_DATA", raising=False)
    with pytest.raises(DatasetError, match="needs a data root"):
        open_dataset(DatasetConfig(name="voc", data_root=""), "train", work_dir=tmp_path)


def test_listed_id_missing_on_disk(tiny_voc):
    (tiny_voc / "VOC2012" / "JPEGImages" / "b.jpg").unlink()
    ds = VOCSegmentation(tiny_voc, "train", label_check="off")
    with pytest.raises(DatasetError, match=r"b\.jpg is missing"):
        ds.load_image("b")
    (tiny_voc / "VOC2012" / "SegmentationClass" / "a.png").unlink()
    with pytest.raises(DatasetError, match=r"a\.png is missing"):
        ds.labels


def test_corrupt_image(tiny_voc):
    (tiny_voc / "VOC2012" / "JPEGImages" / "a.jpg").write_bytes(b"not a jpeg")
    ds = VOCSegmentation(tiny_voc, "train", label_check="off")
    with pytest.raises(DatasetError, match=r"a\.jpg cannot be decoded"):
        ds.load_image("a")


def test_stray_mask_value(tiny_voc):
    bad = np.zeros((8, 10), np.uint8); bad[0, 0] = 7  # 4 classes: 7 is neither a class nor 255
    Image.fromarray(bad, mode="L").save(tiny_voc / "VOC2012" / "SegmentationClass" / "a.png")
    ds = VOCSegmentation(tiny_voc, "train", label_check="off")
    with pytest.raises(DatasetError, match=r"a\.png contains value\(s\) \[7\] that are neither a class \(0\.\.3\) nor 255"):
        ds.load_mask("a")


def test_rgb_mask_rejected(tiny_voc):
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tiny_voc / "VOC2012" / "SegmentationClass" / "a.png")
    with pytest.raises(DatasetError, match="mode 'RGB'"):
        VOCSegmentation(tiny_voc, "train", label_check="off").load_mask("a")


def test_mask_image_size_mismatch(tiny_voc):
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(tiny_voc / "VOC2012" / "SegmentationClass" / "a.png")
    with pytest.raises(DatasetError, match=r"mask size \(5, 5\) does not match image"):
        VOCSegmentation(tiny_voc, "train", label_check="off").load_pair("a")


def test_class_list_mismatch(tiny_voc):
    with pytest.raises(DatasetError, match="does not match the expected"):
        VOCSegmentation(tiny_voc, "train", class_names=VOC_CLASSES)
    (tiny_voc / "VOC2012" / "class_names.txt").write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match="first class must be 'background'"):
        VOCSegmentation(tiny_voc, "train")


def test_xml_unknown_class_and_mismatch(tiny_voc):
    xml = tiny_voc / "VOC2012" / "Annotations" / "a.xml"
    xml.write_text("<annotation><object><name>cat</name></object><object><name>horse</name></object></annotation>")
    with pytest.raises(DatasetError, match=r"a\.xml: object name\(s\) \['horse'\] are not in the class list"):
        VOCSegmentation(tiny_voc, "train", label_check="warn").labels
    xml.write_text("<annotation><object><name>cat</name></object><object><name>car</name></object></annotation>")
    with pytest.raises(DatasetError, match=r"a: only in XML \['car'\], only in mask \[\]"):
        VOCSegmentation(tiny_voc, "train", label_check="error").labels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = VOCSegmentation(tiny_voc, "train", label_check="warn").labels
    assert labels[0].tolist() == [1, 0, 0] and any("only in XML" in str(w.message) for w in caught)


def test_duplicate_ids_rejected(tiny_voc):
    (tiny_voc / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\na\n")
    with pytest.raises(DatasetError, match=r"duplicated ids, e\.g\. \['a'\]"):
        VOCSegmentation(tiny_voc, "train")


def test_coco_masks_labels_and_cache(tmp_path):
    root = write_tiny_coco(tmp_path / "coco")
    assert COCOSegmentation(root, "train").ids == ["COCO_train2014_000000000003", "COCO_train2014_000000000007"]
    ds = COCOSegmentation(root, "train", unlabeled="keep")  # image 9 has no annotation
    assert ds.class_names == ("background", "person", "car", "dog")
    assert ds.ids == ["COCO_train2014_000000000003", "COCO_train2014_000000000007", "COCO_train2014_000000000009"]
    np.testing.assert_array_equal(ds.labels, [[0, 1, 0], [1, 0, 1], [0, 0, 0]])  # crowd is not a label
    mask7 = ds.load_mask("COCO_train2014_000000000007")
    assert mask7[4, 4] == 1 and mask7[8, 15] == 3 and mask7[15, 25] == 0  # small person painted over dog
    mask3 = ds.load_mask("COCO_train2014_000000000003")
    assert (mask3[:, 0:2] == 255).all() and mask3[10, 10] == 2 and mask3[10, 5] == 0
    cached = root / "SegmentationClass" / "train2014" / "COCO_train2014_000000000007.png"
    assert cached.is_file()
    np.testing.assert_array_equal(np.asarray(Image.open(cached)), mask7)
    assert ds.check_labels() == []
    with pytest.raises(DatasetError, match="instances_val2014.json is missing"):
        COCOSegmentation(root, "val")


def test_train_transform_pads_mask_with_void_and_normalises():
    torch.manual_seed(0)
    image = np.full((20, 30, 3), 255, np.uint8)
    mask = np.ones((20, 30), np.uint8)
    cfg = AugmentConfig(crop_size=48, resize_mode="none", color_jitter=None, hflip=False)
    out_image, out_mask = build_train_transform(cfg, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(image, mask)
    assert out_image.shape == (3, 48, 48) and out_mask.shape == (48, 48) and out_mask.dtype == torch.int64
    assert set(out_mask.unique().tolist()) == {1, 255}
    # padded pixels are 0 after normalisation (the mean), real pixels are (1 - 0.5) / 0.5 = 1
    assert torch.allclose(out_image[:, out_mask == 255], torch.zeros(1)) and torch.allclose(out_image[:, out_mask == 1], torch.ones(1))


def test_train_transform_resizes_jointly():
    torch.manual_seed(1)
    image = np.zeros((100, 200, 3), np.uint8); image[:, 100:] = 255
    mask = np.zeros((100, 200), np.uint8); mask[:, 100:] = 1
    cfg = AugmentConfig(crop_size=64, resize_mode="long_side", resize_long_side=(64, 64), color_jitter=None, hflip=True)
    out_image, out_mask = build_train_transform(cfg, (0.0,) * 3, (1.0,) * 3)(image, mask)
    valid = out_mask != 255
    assert valid.sum() == 64 * 32  # 200x100 -> 64x32, padded to 64x64
    bright = out_image[0][valid] > 0.5
    assert (bright == (out_mask[valid] == 1)).float().mean() > 0.95  # mask moved with the image
    eval_image, eval_mask = build_eval_transform((0.0,) * 3, (1.0,) * 3)(image, mask)
    assert eval_image.shape == (3, 100, 200) and eval_mask.shape == (100, 200)


def test_randaugment_applies_to_image_only():
    torch.manual_seed(2)
    cfg = AugmentConfig(crop_size=32, resize_mode="none", randaugment=True)
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    mask = np.random.default_rng(1).integers(0, 3, (32, 32)).astype(np.uint8)
    for _ in range(5):
        _, out_mask = build_train_transform(cfg, (0.5,) * 3, (0.5,) * 3)(image, mask)
        assert set(out_mask.unique().tolist()) <= {0, 1, 2, 255}
