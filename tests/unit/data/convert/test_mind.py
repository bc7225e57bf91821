"""MIND layout: behaviors.tsv impressions/history and news.tsv items."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.convert import read_format
from funnelrec.errors import DataError

T0 = 1573568086  # 11/12/2019 2:14:46 PM UTC

BEHAVIORS = (
    "7\tU1\t11/12/2019 2:14:46 PM\tN1 N2 N1\tN10-0 N11-1 N12-0\n"
    "8\tU2\t11/12/2019 2:15:00 PM\t\tN10-1\n"
    "9\tU1\t11/13/2019 9:00:00 AM\tN1 N2 N3\tN13-0 N14-1\n"
)
NEWS = (
    "N10\tsports\tfootball\tA title\tAn abstract\thttps://x\t[]\t[]\n"
    'N11\tnews\tnewsus\tQuote "inside" title\t\thttps://y\t[]\t[]\n'
)


def make(folder: Path, behaviors: str = BEHAVIORS, news: str = NEWS) -> Path:
    (folder / "behaviors.tsv").write_text(behaviors)
    (folder / "news.tsv").write_text(news)
    return folder


def events(folder: Path) -> pl.DataFrame:
    return read_format("mind", folder).interactions


def test_impressions_and_clicks(tmp_path: Path) -> None:
    inter = events(make(tmp_path))
    shown = inter.filter(pl.col("event") == "impression")
    assert shown.height == 6
    first = shown.filter(pl.col("session_id") == 7)
    assert first["item_id"].to_list() == ["N10", "N11", "N12"]
    assert first["position"].to_list() == [0, 1, 2]
    assert first["timestamp"].to_list() == [T0] * 3
    clicks = inter.filter((pl.col("event") == "click") & pl.col("session_id").is_not_null())
    assert clicks.select("session_id", "item_id", "position").rows() == [
        (7, "N11", 1),
        (8, "N10", 0),
        (9, "N14", 1),
    ]


def test_history_deduplicated_before_first_impression(tmp_path: Path) -> None:
    inter = events(make(tmp_path))
    hist = inter.filter(pl.col("session_id").is_null())
    assert hist["event"].unique().to_list() == ["click"]
    assert hist.select("user_id", "item_id").rows() == [("U1", "N1"), ("U1", "N2"), ("U1", "N3")]
    later = 1573635600 - 1  # 11/13/2019 9:00:00 AM, the first impression listing N3
    assert hist["timestamp"].to_list() == [T0 - 1, T0 - 1, later]
    assert hist["position"].null_count() == 3


def test_sorted_by_time_with_canonical_columns(tmp_path: Path) -> None:
    inter = events(make(tmp_path))
    assert inter.columns == [
        "user_id", "item_id", "timestamp", "event", "value", "session_id", "position",
    ]  # fmt: skip
    assert inter["timestamp"].is_sorted()
    assert inter.schema["user_id"] == pl.String
    assert inter["value"].unique().to_list() == [1.0]


def test_unlabelled_test_split(tmp_path: Path) -> None:
    inter = events(make(tmp_path, "1\tU1\t11/12/2019 2:14:46 PM\t\tN10 N11\n"))
    assert inter["event"].to_list() == ["impression", "impression"]


def test_news_items(tmp_path: Path) -> None:
    items = read_format("mind", make(tmp_path)).items
    assert items is not None
    assert items.select("item_id", "category", "subcategory").rows() == [
        ("N10", "sports", "football"),
        ("N11", "news", "newsus"),
    ]
    assert items["title"][1] == 'Quote "inside" title'
    assert items["created_at"].null_count() == 2
    assert items["abstract"][1] is None


def test_bad_time_names_row_and_column(tmp_path: Path) -> None:
    bad = BEHAVIORS + "10\tU3\t2019-11-12 14:00\t\tN10-0\n"
    with pytest.raises(DataError) as info:
        read_format("mind", make(tmp_path, bad))
    assert info.value.path == str(tmp_path / "behaviors.tsv")
    assert (info.value.row, info.value.column) == (4, "time")


def test_bad_impression_token(tmp_path: Path) -> None:
    bad = BEHAVIORS + "10\tU3\t11/12/2019 2:14:46 PM\t\tN10-0 N11-yes\n"
    with pytest.raises(DataError) as info:
        read_format("mind", make(tmp_path, bad))
    assert (info.value.row, info.value.column) == (4, "impressions")
    assert "N11-yes" in str(info.value)


def test_line_without_user_is_dropped_and_counted(tmp_path: Path) -> None:
    t = read_format("mind", make(tmp_path, BEHAVIORS + "10\t\t11/12/2019 2:14:46 PM\t\tN10-0\n"))
    assert t.reports[0].dropped == {"null user_id": 1}
    assert t.reports[0].n_kept == 3


def test_missing_news(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "news.tsv").unlink()
    with pytest.raises(DataError, match=r"news\.tsv"):
        read_format("mind", tmp_path)


def test_wrong_field_count(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"behaviors\.tsv, row 1: expected 5 fields"):
        read_format("mind", make(tmp_path, "1\tU1\t11/12/2019 2:14:46 PM\n"))


@pytest.mark.shared_data
def test_real_mind_small_sample(shared_data: Path) -> None:
    t = read_format("mind", shared_data / "mind-small-sample")
    inter = t.interactions
    shown = inter.filter(pl.col("event") == "impression")
    assert shown.height == 189_359
    assert shown["session_id"].n_unique() == 5_000
    clicks = inter.filter((pl.col("event") == "click") & pl.col("session_id").is_not_null())
    assert clicks.height == 7_542
    assert inter["user_id"].n_unique() == 4_637
    assert t.items is not None and t.items.height == 2_000
    assert t.items["category"].n_unique() == 15
    history = inter.filter(pl.col("session_id").is_null())
    assert history.select("user_id", "item_id").is_unique().all()
    assert all(r.n_dropped == 0 for r in t.reports)
    lo, hi = shown["timestamp"].min(), shown["timestamp"].max()
    assert (lo, hi) == (1573257673, 1573775413)  # 2019-11-09 00:01:13 .. 2019-11-14 23:50:13
