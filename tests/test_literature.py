"""The literature tables under ``reports/literature/``: provenance on every row and internal consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wsss_lib.data.voc import VOC_CLASSES
from wsss_lib.paths import repo_root
from wsss_lib.reporting.literature import load_literature

LITERATURE_NAMES = sorted(p.stem for p in (repo_root() / "reports" / "literature").glob("*.csv"))
METHODS = ["CAM", "CSE", "P", "POC", "PNOC"]
PROPERTIES = ["O", "%S", "%C", "L"]
FOREGROUND = list(VOC_CLASSES[1:])


def test_literature_folder_is_not_empty():
    assert {"pnoc_table2_epochs", "pnoc_table3_class_iou", "pnoc_table3_class_groups",
            "pnoc_table3_correlations"} <= set(LITERATURE_NAMES)


@pytest.mark.parametrize("name", LITERATURE_NAMES)
def test_every_row_has_a_source(name):
    frame = load_literature(name)
    assert len(frame) > 0
    sources = frame["source"].astype(str).str.strip()
    assert (sources != "").all() and frame["source"].notna().all()


def test_missing_table_is_an_error():
    with pytest.raises(FileNotFoundError):
        load_literature("no_such_table")


def test_table2_epochs():
    frame = load_literature("pnoc_table2_epochs")
    assert list(frame.columns) == ["backbone", "strategy", "epoch", "miou", "source"]
    assert len(frame) == 9 * 16
    runs = frame.groupby(["backbone", "strategy"], sort=False).size()
    assert len(runs) == 9 and (runs == 16).all()
    assert set(frame["backbone"]) == {"ResNeSt-101", "ResNeSt-269"}
    assert set(frame["strategy"]) == {"CAM", "P", "P-OC", "P-OC+LS", "P-NOC", "P-NOC+LS"}
    expected_epochs = [str(e) for e in range(1, 16)] + ["TTA"]
    for _, run in frame.groupby(["backbone", "strategy"]):
        assert run["epoch"].astype(str).tolist() == expected_epochs
    assert not frame.duplicated(["backbone", "strategy", "epoch"]).any()
    miou = frame["miou"].astype(float)
    assert ((miou > 0) & (miou < 100)).all()
    # spot values from the printed table
    at = frame.assign(epoch=frame["epoch"].astype(str)).set_index(["backbone", "strategy", "epoch"])["miou"]
    assert at[("ResNeSt-269", "P-NOC+LS", "TTA")] == 63.6
    assert at[("ResNeSt-101", "CAM", "1")] == 48.7
    assert at[("ResNeSt-269", "P-OC+LS", "15")] == 58.5


@pytest.fixture(scope="module")
def class_iou():
    return load_literature("pnoc_table3_class_iou")


@pytest.fixture(scope="module")
def class_groups():
    return load_literature("pnoc_table3_class_groups")


def test_table3_class_rows(class_iou):
    assert list(class_iou.columns) == ["class", "group", "size", "frequency", *PROPERTIES, *METHODS, "source"]
    assert len(class_iou) == 21
    assert class_iou["class"].tolist() == list(VOC_CLASSES)
    background = class_iou.set_index("class").loc["background"]
    assert background["%S"] == 69.5
    assert background[["group", "size", "frequency", "O", "%C", "L"]].isna().all()
    values = class_iou[METHODS].astype(float)
    assert ((values > 0) & (values < 100)).all().all()


def test_table3_overall_mean_matches_class_rows(class_iou, class_groups):
    """The paper's "overall mu" is the mIoU over the 21 rows (background included), as usual for VOC.

    The mean over the 20 foreground classes alone is about 1.2-1.4 points lower for every method, so the
    comparison is made with the background row included; it then agrees within rounding (< 0.05).
    """
    overall = class_groups.set_index(["family", "group"]).loc[("Overall", "all")]
    per_class = class_iou.set_index("class")
    for method in METHODS:
        assert per_class[method].mean() == pytest.approx(overall[method], abs=0.1), method
        # the foreground-only mean is the one that does *not* match the printed overall row
        assert abs(per_class.loc[FOREGROUND, method].mean() - overall[method]) > 1.0, method
    # %S likewise includes background; O, %C and L are undefined for background (20 classes)
    assert per_class["%S"].mean() == pytest.approx(overall["%S"], abs=0.1)
    for prop in ("O", "%C", "L"):
        assert per_class.loc[FOREGROUND, prop].mean() == pytest.approx(overall[prop], abs=0.1), prop


def test_table3_overall_std_matches_class_rows(class_iou, class_groups):
    """The "overall sigma" row is the sample standard deviation (ddof=1) over the 20 foreground classes."""
    std = class_groups.set_index(["family", "group"]).loc[("Overall", "std")]
    foreground = class_iou.set_index("class").loc[FOREGROUND]
    for column in PROPERTIES + METHODS:
        assert foreground[column].std(ddof=1) == pytest.approx(std[column], abs=0.1), column


def test_table3_background_row_matches_class_row(class_iou, class_groups):
    groups = class_groups.set_index("family").loc["Background"]
    background = class_iou.set_index("class").loc["background"]
    for column in ["%S", *METHODS]:
        assert groups[column] == background[column], column


def test_table3_group_rows_are_means_of_their_classes(class_iou, class_groups):
    """Each group row is the mean of the classes the per-class table assigns to it.

    Membership comes from the per-class columns (size / frequency / group). For "Singleton" these are seven
    classes (aeroplane bird boat cat cow sheep train); the group row prints only five of them, but its
    numbers are those of all seven.
    """
    column_of = {"Size": "size", "Occurrence": "frequency", "Group": "group"}
    per_class = class_iou.set_index("class").loc[FOREGROUND]
    checked = 0
    for _, row in class_groups[class_groups["family"].isin(column_of)].iterrows():
        label = row["group"].split()[0].lower()
        members = per_class[per_class[column_of[row["family"]]] == label]
        assert len(members) > 0, row["group"]
        for column in PROPERTIES + METHODS:
            assert members[column].mean() == pytest.approx(row[column], abs=0.1), (row["group"], column)
        printed = set(row["classes"].split())
        assert printed <= set(FOREGROUND)
        if row["group"] == "Singleton":
            assert set(members.index) - printed == {"cat", "cow"}
        else:
            assert printed == set(members.index), row["group"]
        checked += 1
    assert checked == 11


def test_table3_groups_agree_with_table1(class_groups):
    """Table 1 and Table 3 share O, %S, %C, L, CAM, CSE and P for every group they both list."""
    table1 = load_literature("pnoc_table1_class_groups")
    merged = table1.merge(class_groups, on=["family", "group"], suffixes=("_1", "_3"), validate="one_to_one")
    assert len(merged) == len(table1)
    for column in ["classes", *PROPERTIES, "CAM", "CSE", "P"]:
        left, right = merged[f"{column}_1"], merged[f"{column}_3"]
        assert ((left == right) | (left.isna() & right.isna())).all(), column


@pytest.mark.parametrize("name", ["pnoc_table1_correlations", "pnoc_table3_correlations"])
def test_correlation_diagonal(name):
    frame = load_literature(name).set_index("property")
    assert frame.index.tolist() == PROPERTIES
    for prop in PROPERTIES:
        assert frame.loc[prop, prop] == 100.0
    block = frame[PROPERTIES].to_numpy(dtype=float)
    assert np.array_equal(block, block.T)
    numeric = frame.drop(columns="source").to_numpy(dtype=float)
    assert (np.abs(numeric) <= 100).all()


def test_table3_correlations_extend_table1():
    table1 = load_literature("pnoc_table1_correlations").set_index("property")
    table3 = load_literature("pnoc_table3_correlations").set_index("property")
    columns = [*PROPERTIES, "CAM", "CSE", "P"]
    pd.testing.assert_frame_equal(table1[columns], table3[columns])


def test_table3_correlations_roughly_recomputable(class_iou):
    """Pearson correlations (x100) over the 20 classes, from the printed (rounded) class values.

    L is printed with one decimal, so correlations involving it can move by up to ~2 points.
    """
    table3 = load_literature("pnoc_table3_correlations").set_index("property")
    foreground = class_iou.set_index("class").loc[FOREGROUND, PROPERTIES + METHODS].astype(float)
    recomputed = foreground.corr().loc[PROPERTIES, PROPERTIES + METHODS] * 100
    assert np.allclose(recomputed.to_numpy(), table3[PROPERTIES + METHODS].to_numpy(dtype=float), atol=2.1)


def test_voc_paper_groups_match_the_per_class_columns_of_table3():
    """The library's VOC groups equal Table 3's per-class group/size/frequency columns (Singleton: 7 classes)."""
    from wsss_lib.data.voc import VOC_PAPER_GROUPS

    table = load_literature("pnoc_table3_class_iou").set_index("class").drop(index="background")
    columns = {"Group": "group", "Size": "size", "Occurrence": "frequency"}
    for family, column in columns.items():
        for group, members in VOC_PAPER_GROUPS[family].items():
            key = group.split()[0].lower()
            expected = sorted(table.index[table[column].str.lower() == key])
            assert sorted(members) == expected, (family, group)
