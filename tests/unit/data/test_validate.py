"""Table rules: required columns, defaults for missing cells, dropped rows counted per reason."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.io import read_table
from funnelrec.data.validate import DropReport, coerce_table
from funnelrec.errors import DataError
from funnelrec.schema import INTERACTIONS, ITEMS
from support.tables import HEADER, read_error, write


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


def test_items_created_at_parsed_and_nullable(tmp_path: Path) -> None:
    p = write(
        tmp_path / "items.csv", "item_id,category,created_at,title\n1,7,2020-01-02,a\n2,8,,b\n"
    )
    df, report = read_table(p, ITEMS)
    assert df["created_at"].to_list() == [1577923200, None]
    assert df.schema["category"] == pl.Int64
    assert report.n_kept == 2


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


def test_missing_required_column(tmp_path: Path) -> None:
    err = read_error(write(tmp_path / "i.csv", "user_id,item_id\n1,2\n"))
    assert err.path == str(tmp_path / "i.csv")
    assert err.row == 1
    assert err.column == "timestamp"
    assert "column 'timestamp'" in str(err)


def test_coerce_table_names_source_columns_in_errors() -> None:
    raw = pl.DataFrame({"user_id": ["1", "2"], "item_id": ["3", "4"], "timestamp": ["4", "5"]})
    df, report = coerce_table(raw, INTERACTIONS, path="ratings.csv")
    assert df.columns == ["user_id", "item_id", "timestamp", "event", "value"]
    assert report == DropReport("interactions", "ratings.csv", 2, 2, {}, {})
    bad = raw.with_columns(pl.Series("item_id", ["3", "4.5"]))
    with pytest.raises(DataError) as info:
        coerce_table(bad, INTERACTIONS, path="r.csv", source_names={"item_id": "movieId"})
    assert (info.value.row, info.value.column) == (2, "movieId")
    with pytest.raises(DataError) as info:
        coerce_table(raw.drop("timestamp"), INTERACTIONS, path="r.csv", header_row=1)
    assert (info.value.row, info.value.column) == (1, "timestamp")


def _interactions(times: list[int]) -> pl.DataFrame:
    n = len(times)
    return pl.DataFrame(
        {"user_id": [i % 7 for i in range(n)], "item_id": [1] * n, "timestamp": times}
    )


@pytest.mark.parametrize("outlier", [-5, 0, 32_503_680_000])
def test_an_outlier_timestamp_is_dropped_and_counted(outlier: int) -> None:
    """A 0, -5 or year-3000 typo among weeks of events: dropped, counted, warned about (the
    temporal split would otherwise cut the time span it stretches)."""
    times = [1_700_000_000 + 600 * i for i in range(2_000)]
    df, report = coerce_table(_interactions([*times, outlier]), INTERACTIONS, path="x")
    assert df.height == 2_000 and outlier not in df["timestamp"].to_list()
    assert report.dropped == {"outlier timestamp": 1}


def test_sparse_early_years_are_not_outliers() -> None:
    """A log that grew over the years keeps its early events, however sparse, as long as
    they are over 1% of the rows (then the 1% quantile lies among them)."""
    year = 365 * 86_400
    times = [1_500_000_000 + year * i // 10 for i in range(40)]  # four sparse years: 2%
    times += [1_500_000_000 + 4 * year + 60 * i for i in range(2_000)]  # then a busy day
    _, report = coerce_table(_interactions(times), INTERACTIONS, path="x")
    assert report.dropped == {}


def test_small_or_flat_logs_are_never_judged() -> None:
    """Under ~100 rows the quantiles are the extremes; a zero range has no spread to judge."""
    _, small = coerce_table(_interactions([*range(50), 10**9]), INTERACTIONS, path="x")
    _, flat = coerce_table(_interactions([5] * 500 + [10**9]), INTERACTIONS, path="x")
    assert small.dropped == {} and flat.dropped == {}


def test_a_repeated_key_keeps_the_first_row(caplog: pytest.LogCaptureFixture) -> None:
    raw = pl.DataFrame({"item_id": ["a", "b", "a", "a"], "category": ["x", "y", "z", "w"]})
    df, report = coerce_table(raw, ITEMS, path="items.csv")
    assert df.rows() == [("a", "x"), ("b", "y")]
    assert report.dropped == {"repeated item_id": 2}
    assert "2 row(s) repeat an earlier item_id (first at row 3: 'a')" in caplog.text
