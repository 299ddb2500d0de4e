"""Your own data (dataset family ``folder``): the layout read as documented, and every kind of bad input a named
error (file, line, what was expected)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wsss_lib.data.checks import check_dataset
from wsss_lib.data.fixtures import write_folder_example
from wsss_lib.data.registry import DatasetConfig, open_dataset
from wsss_lib.formats.errors import DatasetError


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return write_folder_example(tmp_path_factory.mktemp("own") / "data", image_size=48, n_train=6, n_val=3)


def _copy(example, tmp_path):
    import shutil

    return shutil.copytree(example, tmp_path / "data")


def _open(root, split="train", **kwargs):
    return open_dataset(DatasetConfig(name="folder", data_root=str(root), **kwargs), split, work_dir=root.parent / "w",
                        progress=False)


def test_the_example_folder_reads_as_documented(example):
    train, val = _open(example), _open(example, "val")
    assert (len(train), len(val)) == (6, 3) and train.class_names[0] == "background"
    assert _open(example, "train_aug").ids == train.ids  # train_aug defaults to train
    item = train[0]
    assert item["image"].shape[:2] == item["mask"].shape and item["label"].sum() >= 1
    masks = np.stack([np.isin(np.arange(1, train.num_classes), np.unique(train.load_mask(i))) for i in train.ids])
    assert np.array_equal(train.labels.astype(bool), masks)  # labels.csv, written from the masks, agrees
    assert check_dataset(DatasetConfig(name="folder", data_root=str(example)), ["train", "val", "train_aug"]) == []


def test_bad_labels_are_named_with_their_line(example, tmp_path):
    root = _copy(example, tmp_path)
    lines = (root / "labels.csv").read_text().splitlines()
    first = lines[1].split(",")[0]
    (root / "labels.csv").write_text("\n".join([*lines[:2], f"{lines[2].split(',')[0]},unicorn", *lines[3:]]) + "\n")
    with pytest.raises(DatasetError, match=r"labels.csv, line 3: unknown class\(es\) \['unicorn'\]"):
        _open(root)
    (root / "labels.csv").write_text("\n".join([*lines, f"{first},"]) + "\n")
    with pytest.raises(DatasetError, match=f"line {len(lines) + 1}: image '{first}' is listed twice"):
        _open(root)
    (root / "labels.csv").write_text("id,classes\n")
    with pytest.raises(DatasetError, match="the first line must be the header 'image,labels'"):
        _open(root)


def test_bad_masks_and_missing_files_are_named(example, tmp_path):
    root = _copy(example, tmp_path)
    dataset = _open(root)
    bad, small = dataset.ids[0], dataset.ids[1]
    mask = np.asarray(Image.open(root / "masks" / f"{bad}.png")).copy()
    mask[0, 0] = 200
    Image.fromarray(mask, mode="L").save(root / "masks" / f"{bad}.png")
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="L").save(root / "masks" / f"{small}.png")
    with pytest.raises(DatasetError, match=rf"{bad}.png contains value\(s\) \[200\] that are neither a class"):
        dataset.load_pair(bad)
    with pytest.raises(DatasetError, match=rf"{small}.png: mask size \(10, 10\) does not match image"):
        dataset.load_pair(small)
    (root / "images" / f"{small}.jpg").unlink()
    problems = check_dataset(DatasetConfig(name="folder", data_root=str(root)), ["train", "test"])
    assert any(f"1 of 6 images of split 'train' are missing in {root / 'images'}" in p for p in problems)
    assert any("splits/test.txt is missing; available splits: ['train', 'val']" in p for p in problems)


def test_labels_that_disagree_with_the_masks_warn_or_fail(example, tmp_path):
    root = _copy(example, tmp_path)
    lines = (root / "labels.csv").read_text().splitlines()
    image_id = lines[1].split(",")[0]
    (root / "labels.csv").write_text("\n".join([lines[0], f"{image_id},", *lines[2:]]) + "\n")
    with pytest.warns(UserWarning, match=r"1 image\(s\) of split 'train' have labels.csv classes that differ"):
        labels = _open(root).labels
    assert labels[0].sum() == 0  # labels.csv is the supervision
    with pytest.raises(DatasetError, match="differ from their masks"):
        _ = _open(root, label_check="error").labels


def test_without_masks_training_reads_void_and_the_runner_refuses_evaluation(example, tmp_path):
    import shutil

    root = _copy(example, tmp_path)
    shutil.rmtree(root / "masks")
    dataset = _open(root)
    assert not dataset.has_masks and (dataset.load_mask(dataset.ids[0]) == 255).all()
    assert dataset.labels.sum() > 0  # the supervision is labels.csv
    assert any("masks is missing; the notebooks evaluate" in p
               for p in check_dataset(DatasetConfig(name="folder", data_root=str(root)), ["train"]))
