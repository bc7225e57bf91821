"""Column parsing: ids, timestamps, numbers and attributes, and the row each error names."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.io import read_table
from funnelrec.data.parse import parse_timestamp
from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, ITEMS, USERS
from support.tables import HEADER, read_error, write


def test_parquet_typed_columns(tmp_path: Path) -> None:
    p = tmp_path / "i.parquet"
    pl.DataFrame(
        {
            "user_id": [1.0, 2.0],
            "item_id": ["a", "b"],
            "timestamp": pl.Series(["2020-01-01", "2020-01-02"]).str.to_datetime(),
            "value": [2, 3],
        }
    ).write_parquet(p)
    df, _ = read_table(p, INTERACTIONS)
    assert df.schema["user_id"] == pl.Int64
    assert df["timestamp"].to_list() == [1577836800, 1577923200]
    assert df.schema["value"] == pl.Float32


def test_timestamps_iso_float_and_int(tmp_path: Path) -> None:
    rows = [
        "1,1,1577836800",
        "1,2,1577836800.9",
        "1,3,2020-01-01",
        "1,4,2020-01-01T00:00:00",
        "1,5,2020-01-01 00:00:00.250",
        "1,6,2020-01-01T01:00:00+01:00",
        "1,7,2020-01-01T00:00:00Z",
        "1,8,2020-01-01T00:00",
    ]
    p = write(tmp_path / "i.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    df, _ = read_table(p, INTERACTIONS)
    assert df["timestamp"].to_list() == [1577836800] * len(rows)


def test_ids_from_integral_floats_are_integers(tmp_path: Path) -> None:
    p = write(tmp_path / "i.csv", f"{HEADER}\n1.0,2,3\n 4 ,5,6\n")
    df, _ = read_table(p, INTERACTIONS)
    assert df.schema["user_id"] == pl.Int64
    assert df["user_id"].to_list() == [1, 4]


def test_mixed_integer_and_text_ids_are_text(tmp_path: Path) -> None:
    p = write(tmp_path / "i.csv", f"{HEADER}\n1,2,3\nu7,5,6\n")
    df, _ = read_table(p, INTERACTIONS)
    assert df.schema["user_id"] == pl.String
    assert df["user_id"].to_list() == ["1", "u7"]


def test_extra_columns_kept_and_typed(tmp_path: Path) -> None:
    p = write(tmp_path / "i.csv", f"{HEADER},dwell,device\n1,2,3,0.5,ios\n4,5,6,1,web\n")
    df, _ = read_table(p, INTERACTIONS)
    assert df.columns[-2:] == ["dwell", "device"]
    assert df.schema["dwell"] == pl.Float64
    assert df.schema["device"] == pl.String


def test_users_keep_leading_zero_codes_as_text(tmp_path: Path) -> None:
    p = write(tmp_path / "users.csv", "user_id,age,region\n1,24,01234\n2,53,94043\n")
    df, _ = read_table(p, USERS)
    assert df.schema["age"] == pl.Int64
    assert df["region"].to_list() == ["01234", "94043"]


def test_float_user_id(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER}\n1,2,3\n2,2,3\n1.5,2,3\n"))
    assert (err.row, err.column) == (4, "user_id")
    assert "1.5" in str(err) and "i.csv" in str(err)


def test_float_item_id_in_parquet_names_record(tmp_path: Path) -> None:
    p = tmp_path / "i.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [1.0, 2.5], "timestamp": [1, 2]}).write_parquet(p)
    err = read_error(p)
    assert (err.row, err.column) == (2, "item_id")


def test_value_not_numeric(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER},value\n1,2,3,0.5\n1,2,3,high\n"))
    assert (err.row, err.column) == (3, "value")
    assert "'high'" in str(err)


def test_value_infinite(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER},value\n1,2,3,inf\n"))
    assert (err.row, err.column) == (2, "value")


def test_position_not_integer(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER},position\n1,2,3,0\n1,2,3,1.5\n"))
    assert (err.row, err.column) == (3, "position")


def test_unparsable_timestamp_names_first_bad_row(tmp_path: Path) -> None:
    text = f"{HEADER}\n1,2,3\n1,2,2020-13-45\n1,2,yesterday\n"
    err = read_error(write(tmp_path / "i.csv", text))
    assert (err.row, err.column) == (3, "timestamp")
    assert "2020-13-45" in str(err)


def test_bad_created_at(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "items.csv", "item_id,created_at\n1,someday\n"), ITEMS)
    assert (err.row, err.column) == (2, "created_at")


def test_parse_timestamp_direct() -> None:
    s = pl.Series("t", ["5", "7.9", "1970-01-02", None, "NaN"])
    assert parse_timestamp(s, path="x", row_of=lambda i: i).to_list() == [5, 7, 86400, None, None]
    with pytest.raises(DataError) as info:
        parse_timestamp(pl.Series("t", ["1", "soon"]), path="x", row_of=lambda i: i + 10)
    assert (info.value.row, info.value.column) == (11, "t")
