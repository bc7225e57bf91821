"""KuaiRec layout: big/small matrix CSVs (UTF-8 with BOM), item categories, user features."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.convert import read_format
from funnelrec.errors import DataError

BOM = "\ufeff"
HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"
MATRIX = (
    BOM
    + HEADER
    + "0,3649,13838,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1.2733965215790926\n"
    + "0,9598,851,7908,2020-07-05 00:13:41.297,20200705,1593879221.297,0.1076125442589782\n"
    + "1,3649,100,10867,,,,0.0092\n"
)
CATEGORIES = BOM + 'video_id,feat\n3649,[8]\n9598,"[27, 9]"\n'


def make(folder: Path, matrix: str = MATRIX, name: str = "big_matrix.csv") -> Path:
    (folder / name).write_text(matrix, encoding="utf-8")
    (folder / "item_categories.csv").write_text(CATEGORIES, encoding="utf-8")
    return folder


def test_watch_events(tmp_path: Path) -> None:
    t = read_format("kuairec", make(tmp_path))
    inter = t.interactions
    assert inter["event"].unique().to_list() == ["watch"]
    assert inter["timestamp"].to_list() == [1593878903, 1593879221]
    assert inter["value"].to_list() == pytest.approx([1.2733966, 0.1076125])
    assert inter["play_duration"].to_list() == pytest.approx([13.838, 0.851])  # seconds
    assert inter["video_duration"].to_list() == pytest.approx([10.867, 7.908])
    assert t.reports[0].dropped == {"null timestamp": 1}


def test_item_categories_first_tag(tmp_path: Path) -> None:
    items = read_format("kuairec", make(tmp_path)).items
    assert items is not None
    assert items.rows() == [(3649, 8, "8"), (9598, 27, "27|9")]


def test_both_matrices_tagged(tmp_path: Path) -> None:
    make(tmp_path)
    make(tmp_path, name="small_matrix.csv")
    inter = read_format("kuairec", tmp_path).interactions
    assert inter.group_by("matrix").len().sort("matrix").rows() == [("big", 2), ("small", 2)]


def test_no_side_files(tmp_path: Path) -> None:
    (tmp_path / "small_matrix.csv").write_text(MATRIX, encoding="utf-8")
    t = read_format("kuairec", tmp_path)
    assert t.items is None and t.users is None
    assert "matrix" not in t.interactions.columns


def test_user_features(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "user_features.csv").write_text(
        'user_id,user_active_degree,follow_user_num_range\n0,high_active,"(0,10]"\n'
    )
    users = read_format("kuairec", tmp_path).users
    assert users is not None
    assert users.rows() == [(0, "high_active", "(0,10]")]


def test_no_matrix(tmp_path: Path) -> None:
    (tmp_path / "item_categories.csv").write_text(CATEGORIES)
    with pytest.raises(DataError, match=r"big_matrix\.csv"):
        read_format("kuairec", tmp_path)


def test_two_candidates(tmp_path: Path) -> None:
    make(tmp_path)
    make(tmp_path, name="big_matrix_1000.csv")
    with pytest.raises(DataError, match=r"big_matrix\.csv, big_matrix_1000\.csv"):
        read_format("kuairec", tmp_path)


def test_bad_watch_ratio(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_format("kuairec", make(tmp_path, MATRIX.replace("0.0092", "lots")))
    assert (info.value.row, info.value.column) == (4, "watch_ratio")
    assert "big_matrix.csv" in str(info.value)


def test_missing_column(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_format("kuairec", make(tmp_path, MATRIX.replace("watch_ratio", "ratio")))
    assert (info.value.row, info.value.column) == (1, "watch_ratio")


@pytest.mark.shared_data
def test_real_kuairec_head(shared_data: Path) -> None:
    t = read_format("kuairec", shared_data / "kuairec-head")
    inter = t.interactions
    assert inter.height == 1_000
    assert inter["user_id"].n_unique() == 1
    assert inter["item_id"].n_unique() == 915
    assert t.items is not None and t.items.height == 1_000
    assert t.users is not None and t.users.height == 1_000
    covered = inter.filter(pl.col("item_id").is_in(t.items["item_id"].implode()))
    assert covered["item_id"].n_unique() / 915 == pytest.approx(0.176, abs=0.01)
    assert (inter["timestamp"].min(), inter["timestamp"].max()) == (1593878903, 1596475150)
