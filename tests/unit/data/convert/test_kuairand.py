"""KuaiRand layout: exposure logs (official log_*.csv or the joined kuairand_sample.csv)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.convert import read_format
from funnelrec.errors import DataError

SAMPLE = (
    "user_id,video_id,is_click,play_time_ms,duration_ms,tab,video_type\n"
    "0,5543,0,863,30066,1,AD\n"
    "88,5543,1,937,30066,1,AD\n"
    "327,6000,0,2082,0,1,NORMAL\n"
)
OFFICIAL = (
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,"
    "is_hate,long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,"
    "is_profile_enter,is_rand,tab\n"
    "0,10,20220408,1600,1649404800123,1,1,0,0,0,0,1,5000,10000,0,0,0,0,1\n"
    "1,11,20220408,1600,1649404801999,0,0,0,0,0,1,0,100,10000,0,0,0,0,2\n"
)


def by_event(inter: pl.DataFrame) -> dict[str, int]:
    return dict(inter["event"].value_counts().iter_rows())


def test_sample_layout_synthesises_time(tmp_path: Path) -> None:
    (tmp_path / "kuairand_sample.csv").write_text(SAMPLE)
    t = read_format("kuairand", tmp_path)
    inter = t.interactions
    assert by_event(inter) == {"impression": 3, "click": 1, "watch": 2}
    assert inter.filter(pl.col("event") == "impression")["timestamp"].to_list() == [0, 1, 2]
    assert any("synthesised from row order" in note for note in t.notes)
    assert any("1 exposures without a positive duration_ms" in note for note in t.notes)
    watch = inter.filter(pl.col("event") == "watch")
    assert watch["value"].to_list() == pytest.approx([863 / 30066, 937 / 30066])
    assert inter["scenario"].unique().to_list() == ["1"]
    assert t.items is None and t.users is None


def test_durations_in_seconds(tmp_path: Path) -> None:
    (tmp_path / "kuairand_sample.csv").write_text(SAMPLE)
    inter = read_format("kuairand", tmp_path).interactions
    watch = inter.filter(pl.col("event") == "watch")
    assert watch["play_duration"].to_list() == pytest.approx([0.863, 0.937])
    # every row of an exposure knows the video's length; a zero duration_ms is unknown
    assert inter.filter(pl.col("user_id") == 88)["video_duration"].to_list() == pytest.approx(
        [30.066] * 3
    )
    assert inter.filter(pl.col("user_id") == 327)["video_duration"].to_list() == [None]
    assert inter.filter(pl.col("event") != "watch")["play_duration"].null_count() == 4


def test_events_of_a_row_are_ordered(tmp_path: Path) -> None:
    (tmp_path / "kuairand_sample.csv").write_text(SAMPLE)
    inter = read_format("kuairand", tmp_path).interactions
    row1 = inter.filter(pl.col("user_id") == 88)
    assert row1["event"].to_list() == ["impression", "click", "watch"]


def test_official_layout(tmp_path: Path) -> None:
    (tmp_path / "log_standard_4_08_to_4_21_1k.csv").write_text(OFFICIAL)
    t = read_format("kuairand", tmp_path)
    inter = t.interactions
    assert by_event(inter) == {"impression": 2, "click": 1, "like": 1, "watch": 2}
    assert inter["timestamp"].unique().sort().to_list() == [1649404800, 1649404801]
    assert "hate" not in by_event(inter)
    assert inter.columns[-2:] == ["scenario", "is_rand"]
    assert not any("synthesised" in note for note in t.notes)


def test_several_logs_concatenated(tmp_path: Path) -> None:
    (tmp_path / "log_random_4_22_to_5_08_1k.csv").write_text(OFFICIAL)
    (tmp_path / "log_standard_4_22_to_5_08_1k.csv").write_text(OFFICIAL)
    t = read_format("kuairand", tmp_path)
    assert len(t.reports) == 2
    assert t.interactions.filter(pl.col("event") == "impression").height == 4


def test_flag_not_binary(tmp_path: Path) -> None:
    (tmp_path / "kuairand_sample.csv").write_text(SAMPLE.replace("88,5543,1", "88,5543,2"))
    with pytest.raises(DataError) as info:
        read_format("kuairand", tmp_path)
    assert (info.value.row, info.value.column) == (3, "is_click")
    assert "kuairand_sample.csv" in str(info.value)


def test_missing_column(tmp_path: Path) -> None:
    (tmp_path / "kuairand_sample.csv").write_text(SAMPLE.replace("is_click", "clicked"))
    with pytest.raises(DataError) as info:
        read_format("kuairand", tmp_path)
    assert (info.value.row, info.value.column) == (1, "is_click")


def test_no_log(tmp_path: Path) -> None:
    (tmp_path / "user_features_1k.csv").write_text("user_id\n1\n")
    with pytest.raises(DataError, match="no KuaiRand log file"):
        read_format("kuairand", tmp_path)


@pytest.mark.shared_data
def test_real_kuairand_sample(shared_data: Path) -> None:
    t = read_format("kuairand", shared_data / "kuairand-sample")
    inter = t.interactions
    counts = by_event(inter)
    assert counts["impression"] == 200
    assert counts["click"] == 32
    assert counts["watch"] == 200 - 18  # 18 rows have duration_ms = 0
    assert inter["user_id"].n_unique() == 145
    assert inter["item_id"].n_unique() == 29
    assert t.reports[0].n_read == 200 and t.reports[0].n_dropped == 0
    assert any("synthesised" in note for note in t.notes)
