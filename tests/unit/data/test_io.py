"""Reading and writing dataset folders: file-level errors name the file, round trips are exact."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from funnelrec.data.io import RawTables, load_dataset_dir, write_tables
from funnelrec.errors import DataError
from support.tables import HEADER, read_error, write


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


def test_empty_parquet(tmp_path: Path) -> None:
    p = tmp_path / "i.parquet"
    pl.DataFrame({"user_id": [], "item_id": [], "timestamp": []}).write_parquet(p)
    assert "no rows" in str(read_error(p))


def test_garbled_parquet(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.parquet", b"not parquet at all"))
    assert "i.parquet" in str(err) and "Parquet" in str(err)


def test_duplicated_column_names_parquet(tmp_path: Path) -> None:
    p = tmp_path / "i.parquet"
    table = pa.Table.from_arrays(
        [pa.array([1]), pa.array([2]), pa.array([3])], names=["user_id", "user_id", "timestamp"]
    )
    pq.write_table(table, p)
    err = read_error(p)
    assert err.column == "user_id" and "duplicated" in str(err)


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
