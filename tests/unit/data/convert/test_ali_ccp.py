"""Ali-CCP layout: torch-rechub's ali_ccp_{train,val,test}[_sample].csv."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.convert import read_format
from funnelrec.errors import DataError

HEADER = "click,purchase,101,121,122,124,125,126,127,128,129,205,206,207,301,D508\n"
TRAIN = HEADER + (
    "0,0,7,1,2,1,3,0,1,1,4,10,100,5,1,0.5\n"
    "1,1,7,1,2,1,3,0,1,1,4,11,101,5,1,0.0\n"
    "1,0,8,2,2,2,5,1,1,0,4,10,100,6,2,0.25\n"
)
VAL = HEADER + "0,0,8,2,2,2,5,1,1,0,4,12,102,6,3,0.0\n"
TEST = HEADER + "0,1,9,3,1,1,2,0,0,1,2,10,103,7,2,0.0\n"


def by_event(inter: pl.DataFrame) -> dict[str, int]:
    return dict(inter["event"].value_counts().iter_rows())


def write_splits(folder: Path, suffix: str = "_sample") -> None:
    for split, text in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        (folder / f"ali_ccp_{split}{suffix}.csv").write_text(text)


def test_events_scenario_and_synthesised_time(tmp_path: Path) -> None:
    write_splits(tmp_path)
    t = read_format("ali-ccp", tmp_path)
    inter = t.interactions
    assert by_event(inter) == {"impression": 5, "click": 2, "order": 2}
    # one second per row over train, val, test in that order
    impressions = inter.filter(pl.col("event") == "impression")
    assert impressions["timestamp"].to_list() == [0, 1, 2, 3, 4]
    assert impressions["item_id"].to_list() == [10, 11, 10, 12, 10]
    assert impressions["scenario"].to_list() == ["1", "1", "2", "3", "2"]
    assert inter.filter(pl.col("timestamp") == 1)["event"].to_list() == [
        "impression",
        "click",
        "order",
    ]
    assert inter.columns == ["user_id", "item_id", "timestamp", "event", "value", "scenario"]
    assert inter["value"].dtype == pl.Float32 and set(inter["value"].to_list()) == {1.0}
    assert [n for n in t.notes if "synthesised from row order" in n] == [
        "ali_ccp_train_sample.csv has no time column: timestamps synthesised from row order "
        "(0..2 s); only their order is meaningful",
        "ali_ccp_val_sample.csv has no time column: timestamps synthesised from row order "
        "(3..3 s); only their order is meaningful",
        "ali_ccp_test_sample.csv has no time column: timestamps synthesised from row order "
        "(4..4 s); only their order is meaningful",
    ]
    # the test file's purchase has no click: kept, and said
    assert "1 purchases without a click on the same exposure; kept" in t.notes


def test_items_and_users(tmp_path: Path) -> None:
    write_splits(tmp_path)
    t = read_format("ali-ccp", tmp_path)
    assert t.items is not None and t.users is not None
    assert t.items.rows() == [(10, 100), (11, 101), (12, 102)]
    assert any("1 item_ids seen with different category (most: item_id 10" in n for n in t.notes)
    users = t.users
    assert users["user_id"].to_list() == [7, 8, 9]
    assert users.columns == [
        "user_id",
        "profile",
        "profile_group",
        "gender",
        "age",
        "consumption_level_1",
        "consumption_level_2",
        "occupation",
        "region",
    ]
    # text, so that the encoded age id is a category, not bucketed as years
    assert users.row(1) == (8, "2", "2", "2", "5", "1", "1", "0", "4")
    assert not any("user_ids seen" in n for n in t.notes)


def test_full_file_names_and_one_file(tmp_path: Path) -> None:
    write_splits(tmp_path, suffix="")
    assert len(read_format("ali-ccp", tmp_path).reports) == 3
    one = read_format("ali-ccp", tmp_path / "ali_ccp_val.csv")
    assert one.interactions["timestamp"].to_list() == [0]


def test_optional_fields_absent(tmp_path: Path) -> None:
    (tmp_path / "ali_ccp_train.csv").write_text("click,purchase,101,205\n1,0,1,2\n0,0,1,3\n")
    t = read_format("ali-ccp", tmp_path)
    assert by_event(t.interactions) == {"impression": 2, "click": 1}
    assert "scenario" not in t.interactions.columns
    assert t.items is None and t.users is None


def test_null_ids_dropped_and_counted(tmp_path: Path) -> None:
    (tmp_path / "ali_ccp_train.csv").write_text("click,purchase,101,205\n1,0,1,2\n0,0,,3\n")
    t = read_format("ali-ccp", tmp_path)
    assert t.reports[0].dropped == {"null user_id": 1}
    assert t.interactions.height == 2


def test_flag_not_binary(tmp_path: Path) -> None:
    write_splits(tmp_path)
    (tmp_path / "ali_ccp_val_sample.csv").write_text(VAL.replace("0,0,8", "2,0,8"))
    with pytest.raises(DataError) as info:
        read_format("ali-ccp", tmp_path)
    assert (info.value.row, info.value.column) == (2, "click")
    assert "ali_ccp_val_sample.csv" in str(info.value)


def test_missing_column(tmp_path: Path) -> None:
    (tmp_path / "ali_ccp_train.csv").write_text(TRAIN.replace(",205,", ",item,"))
    with pytest.raises(DataError) as info:
        read_format("ali-ccp", tmp_path)
    assert (info.value.row, info.value.column) == (1, "205")
    assert "ali_ccp_train.csv" in str(info.value)


def test_bad_id_names_the_source_column(tmp_path: Path) -> None:
    (tmp_path / "ali_ccp_train.csv").write_text("click,purchase,101,205\n1,0,1,2.5\n")
    with pytest.raises(DataError) as info:
        read_format("ali-ccp", tmp_path)
    assert (info.value.row, info.value.column) == (2, "205")


def test_two_files_for_one_split(tmp_path: Path) -> None:
    write_splits(tmp_path)
    (tmp_path / "ali_ccp_train.csv").write_text(TRAIN)
    with pytest.raises(DataError, match="several Ali-CCP train files"):
        read_format("ali-ccp", tmp_path)


def test_no_file(tmp_path: Path) -> None:
    (tmp_path / "other.csv").write_text("click\n1\n")
    with pytest.raises(DataError, match="no Ali-CCP file"):
        read_format("ali-ccp", tmp_path)


@pytest.mark.shared_data
def test_real_ali_ccp_sample(shared_data: Path) -> None:
    t = read_format("ali-ccp", shared_data / "ali-ccp-sample")
    # PROVENANCE.md: train 100 rows (7 clicks, 1 purchase), val 50 (3, 1), test 50 (2, 1)
    assert [(Path(r.path).name, r.n_read, r.n_dropped) for r in t.reports] == [
        ("ali_ccp_train_sample.csv", 100, 0),
        ("ali_ccp_val_sample.csv", 50, 0),
        ("ali_ccp_test_sample.csv", 50, 0),
    ]
    inter = t.interactions
    for lo, hi, clicks, orders in ((0, 99, 7, 1), (100, 149, 3, 1), (150, 199, 2, 1)):
        part = inter.filter(pl.col("timestamp").is_between(lo, hi))
        assert by_event(part) == {"impression": hi - lo + 1, "click": clicks, "order": orders}
    assert inter["scenario"].unique().to_list() == ["1"]
    assert t.items is not None and t.items.height == inter["item_id"].n_unique()
    assert t.users is not None and t.users.height == inter["user_id"].n_unique()
