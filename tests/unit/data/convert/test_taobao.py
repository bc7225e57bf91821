"""Taobao UserBehavior layout: headerless CSV user,item,category,behavior,timestamp."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.convert import read_format
from funnelrec.errors import DataError

ROWS = (
    "1,2268318,2520377,pv,1511544070\n"
    "1,2333346,2520771,cart,1511561733\n"
    "2,2268318,2520377,fav,1511572885\n"
    "2,3000000,4000000,buy,1511572886\n"
    "3,3000000,4000000,pv"
)


def make(folder: Path, rows: str = ROWS) -> Path:
    (folder / "UserBehavior.csv").write_text(rows)
    return folder


def test_events_mapped(tmp_path: Path) -> None:
    t = read_format("taobao", make(tmp_path))
    assert t.interactions["event"].to_list() == ["click", "cart", "fav", "order"]
    assert t.interactions["value"].to_list() == [1.0] * 4
    assert t.interactions.columns == ["user_id", "item_id", "timestamp", "event", "value"]


def test_truncated_last_line_dropped_and_counted(tmp_path: Path) -> None:
    t = read_format("taobao", make(tmp_path))
    assert t.reports[0].n_read == 5
    assert t.reports[0].dropped == {"null timestamp": 1}


def test_items_category(tmp_path: Path) -> None:
    items = read_format("taobao", make(tmp_path)).items
    assert items is not None
    assert items.rows() == [(2268318, 2520377), (2333346, 2520771), (3000000, 4000000)]
    assert items.schema["category"] == pl.Int64


def test_file_path_accepted(tmp_path: Path) -> None:
    make(tmp_path)
    t = read_format("taobao", tmp_path / "UserBehavior.csv")
    assert t.interactions.height == 4


def test_unknown_behaviour(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_format("taobao", make(tmp_path, ROWS.replace("fav", "like")))
    assert info.value.path == str(tmp_path / "UserBehavior.csv")
    assert (info.value.row, info.value.column) == (3, "behavior_type")


def test_bad_timestamp(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_format("taobao", make(tmp_path, ROWS.replace("1511561733", "soon")))
    assert (info.value.row, info.value.column) == (2, "timestamp")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"UserBehavior\.csv"):
        read_format("taobao", tmp_path)


@pytest.mark.shared_data
def test_real_taobao_head(shared_data: Path) -> None:
    t = read_format("taobao", shared_data / "taobao-userbehavior-head")
    inter = t.interactions
    (report,) = t.reports
    assert report.n_read == 84_476
    # The file ends mid-line; one click is dated 2017-09-11, 2.5 months before the official
    # window, far outside the bulk (data.validate.outlier_time_bounds).
    assert report.dropped == {"null timestamp": 1, "outlier timestamp": 1}
    assert inter.height == 84_474
    assert inter["user_id"].n_unique() == 815
    assert inter["item_id"].n_unique() == 55_367
    counts = dict(inter["event"].value_counts().iter_rows())
    assert counts == {"click": 75_871, "cart": 4_497, "fav": 2_356, "order": 1_750}
    assert t.items is not None and t.items.height == 55_367
    assert t.items["category"].n_unique() == 2_914
