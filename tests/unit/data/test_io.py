"""Reading, validating and writing canonical tables: every error names file, row and column."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from funnelrec.data.io import (
    DropReport,
    RawTables,
    load_dataset_dir,
    read_table,
    write_tables,
)
from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, ITEMS, USERS

HEADER = "user_id,item_id,timestamp"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read_error(path: Path, spec=INTERACTIONS) -> DataError:
    with pytest.raises(DataError) as info:
        read_table(path, spec)
    return info.value


# ---------------------------------------------------------------------------------------------
# happy paths


def test_csv_defaults_event_and_value(tmp_path: Path) -> None:
    p = write(tmp_path / "i.csv", f"{HEADER}\n1,10,100\n2,20,200\n")
    df, report = read_table(p, INTERACTIONS)
    assert df.columns == ["user_id", "item_id", "timestamp", "event", "value"]
    assert df.schema["user_id"] == pl.Int64
    assert df.schema["timestamp"] == pl.Int64
    assert df.schema["value"] == pl.Float32
    assert df["event"].to_list() == ["click", "click"]
    assert df["value"].to_list() == [1.0, 1.0]
    assert report == DropReport("interactions", str(p), 2, 2, {}, {})


def test_tsv_with_text_ids_and_null_event_filled(tmp_path: Path) -> None:
    p = write(
        tmp_path / "i.tsv", "user_id\titem_id\ttimestamp\tevent\nU1\tN2\t5\t\nU3\tN4\t6\torder\n"
    )
    df, report = read_table(p, INTERACTIONS)
    assert df.schema["user_id"] == pl.String
    assert df["event"].to_list() == ["click", "order"]
    assert report.filled == {"event": 1}


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


def test_items_created_at_parsed_and_nullable(tmp_path: Path) -> None:
    p = write(
        tmp_path / "items.csv", "item_id,category,created_at,title\n1,7,2020-01-02,a\n2,8,,b\n"
    )
    df, report = read_table(p, ITEMS)
    assert df["created_at"].to_list() == [1577923200, None]
    assert df.schema["category"] == pl.Int64
    assert report.n_kept == 2


def test_users_keep_leading_zero_codes_as_text(tmp_path: Path) -> None:
    p = write(tmp_path / "users.csv", "user_id,age,region\n1,24,01234\n2,53,94043\n")
    df, _ = read_table(p, USERS)
    assert df.schema["age"] == pl.Int64
    assert df["region"].to_list() == ["01234", "94043"]


def test_bom_and_crlf(tmp_path: Path) -> None:
    p = write(tmp_path / "i.csv", b"\xef\xbb\xbfuser_id,item_id,timestamp\r\n1,2,3\r\n")
    df, _ = read_table(p, INTERACTIONS)
    assert df.row(0)[:3] == (1, 2, 3)


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


# ---------------------------------------------------------------------------------------------
# drops


def test_null_keys_dropped_and_counted(tmp_path: Path) -> None:
    text = f"{HEADER}\n1,10,5\n,11,5\n2,,5\n3,12,\n\n4,13,nan\n5,14,6\n"
    p = write(tmp_path / "i.csv", text)
    df, report = read_table(p, INTERACTIONS)
    assert df["user_id"].to_list() == [1, 5]
    assert report.n_read == 7
    assert report.n_kept == 2
    assert report.n_dropped == 5
    assert report.dropped == {
        "empty row": 1,
        "null user_id": 1,
        "null item_id": 1,
        "null timestamp": 2,
    }


def test_all_rows_dropped_is_an_error(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER}\n1,2,\n3,4,\n"))
    assert "i.csv" in str(err)
    assert "null timestamp: 2" in str(err)


# ---------------------------------------------------------------------------------------------
# file-level errors


def test_missing_file(tmp_path: Path) -> None:
    err = read_error(tmp_path / "nope.csv")
    assert "nope.csv" in str(err) and "does not exist" in str(err)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    assert "directory" in str(read_error(tmp_path / "d.csv"))


def test_unsupported_extension(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.json", "{}"))
    assert "i.json" in str(err) and ".parquet" in str(err)


def test_zero_byte_file(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", ""))
    assert "i.csv" in str(err) and "empty" in str(err)


def test_header_only_file(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", HEADER + "\n"))
    assert "i.csv" in str(err) and "no rows" in str(err)


def test_empty_parquet(tmp_path: Path) -> None:
    p = tmp_path / "i.parquet"
    pl.DataFrame({"user_id": [], "item_id": [], "timestamp": []}).write_parquet(p)
    assert "no rows" in str(read_error(p))


def test_garbled_parquet(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.parquet", b"not parquet at all"))
    assert "i.parquet" in str(err) and "Parquet" in str(err)


def test_missing_required_column(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", "user_id,item_id\n1,2\n"))
    assert err.path == str(tmp_path / "i.csv")
    assert err.row == 1
    assert err.column == "timestamp"
    assert "column 'timestamp'" in str(err)


def test_duplicated_column_names(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", "user_id,item_id,timestamp,item_id\n1,2,3,4\n"))
    assert (err.row, err.column) == (1, "item_id")
    assert "duplicated column" in str(err)


def test_duplicated_column_names_parquet(tmp_path: Path) -> None:
    p = tmp_path / "i.parquet"
    table = pa.Table.from_arrays(
        [pa.array([1]), pa.array([2]), pa.array([3])], names=["user_id", "user_id", "timestamp"]
    )
    pq.write_table(table, p)
    err = read_error(p)
    assert err.column == "user_id" and "duplicated" in str(err)


def test_duplicated_header_line(tmp_path: Path) -> None:
    text = f"{HEADER}\n1,2,3\n{HEADER}\n4,5,6\n"
    err = read_error(write(tmp_path / "i.csv", text))
    assert err.row == 3
    assert "duplicated header" in str(err) and "i.csv" in str(err)


def test_ragged_line(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER}\n1,2,3\n4,5,6,7\n"))
    assert err.row == 3 and "i.csv" in str(err)


def test_not_utf8(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", f"{HEADER}\n1,2,3\n4,\xe9,6\n".encode("latin-1")))
    assert err.row == 3 and "UTF-8" in str(err)


# ---------------------------------------------------------------------------------------------
# value-level errors


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


def test_row_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    text = f'{HEADER},title\n1,2,3,"two\nlines"\n1,2,bad,x\n'
    err = read_error(write(tmp_path / "i.csv", text))
    assert err.row == 4


def test_bad_created_at(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "items.csv", "item_id,created_at\n1,someday\n"), ITEMS)
    assert (err.row, err.column) == (2, "created_at")


# ---------------------------------------------------------------------------------------------
# dataset folders and writing


def test_load_dataset_dir_reads_all_tables(tmp_path: Path) -> None:
    write(tmp_path / "interactions.csv", f"{HEADER}\n1,10,5\n2,,6\n")
    write(tmp_path / "items.tsv", "item_id\tcategory\n10\ta\n")
    pl.DataFrame({"user_id": [1, 2], "age": [30, 40]}).write_parquet(tmp_path / "users.parquet")
    tables = load_dataset_dir(tmp_path)
    assert tables.interactions.height == 1
    assert tables.items is not None and tables.items["category"].to_list() == ["a"]
    assert tables.users is not None and tables.users.height == 2
    assert [r.table for r in tables.reports] == ["interactions", "items", "users"]
    assert tables.reports[0].dropped == {"null item_id": 1}


def test_load_dataset_dir_optional_tables_absent(tmp_path: Path) -> None:
    write(tmp_path / "interactions.csv", f"{HEADER}\n1,10,5\n")
    tables = load_dataset_dir(tmp_path)
    assert tables.items is None and tables.users is None


def test_load_dataset_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset_dir(tmp_path / "nope")


def test_load_dataset_dir_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="found a file"):
        load_dataset_dir(write(tmp_path / "x.csv", "a\n1\n"))


def test_load_dataset_dir_without_interactions(tmp_path: Path) -> None:
    write(tmp_path / "items.csv", "item_id\n1\n")
    with pytest.raises(DataError, match="no interactions file"):
        load_dataset_dir(tmp_path)


def test_load_dataset_dir_two_candidates(tmp_path: Path) -> None:
    write(tmp_path / "interactions.csv", f"{HEADER}\n1,10,5\n")
    pl.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [3]}).write_parquet(
        tmp_path / "interactions.parquet"
    )
    with pytest.raises(DataError, match=r"interactions\.csv and interactions\.parquet"):
        load_dataset_dir(tmp_path)


def test_load_dataset_dir_error_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "interactions.csv", f"{HEADER}\n1,10,5\n")
    write(tmp_path / "users.csv", "user_id,age\n1.5,3\n")
    with pytest.raises(DataError) as info:
        load_dataset_dir(tmp_path)
    assert info.value.path == str(tmp_path / "users.csv")
    assert info.value.row == 2


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write(
        src / "interactions.csv",
        f"{HEADER},event,value,session_id\nu1,10,5,order,2.5,7\nu2,11,6,,,\n",
    )
    write(src / "items.csv", "item_id,category,created_at,title\n10,a,2020-01-01,x\n11,b,,y\n")
    tables = load_dataset_dir(src)
    written = write_tables(tables, tmp_path / "out")
    assert [p.name for p in written] == ["interactions.parquet", "items.parquet"]
    back = load_dataset_dir(tmp_path / "out")
    assert back.interactions.equals(tables.interactions)
    assert back.items is not None and tables.items is not None
    assert back.items.equals(tables.items)
    assert back.users is None


def test_write_removes_stale_optional_tables(tmp_path: Path) -> None:
    inter = pl.DataFrame(
        {"user_id": [1], "item_id": [2], "timestamp": [3], "event": ["click"], "value": [1.0]}
    )
    items = pl.DataFrame({"item_id": [2], "category": ["a"]})
    write_tables(RawTables(inter, items), tmp_path)
    assert (tmp_path / "items.parquet").exists()
    write_tables(RawTables(inter), tmp_path)
    assert not (tmp_path / "items.parquet").exists()
    assert load_dataset_dir(tmp_path).items is None


def test_raw_tables_checks_schema() -> None:
    with pytest.raises(DataError, match="timestamp"):
        RawTables(pl.DataFrame({"user_id": [1], "item_id": [2]}))
