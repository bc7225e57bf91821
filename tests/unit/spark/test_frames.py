"""Spark reads the data folder's Parquet itself (one file, or a hive-partitioned folder) and
maps it to the Dataset's indices; a source that disagrees with the validated positives is not
used."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.data.partitioned import write_partitioned
from funnelrec.spark.frames import spark_positives

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _rows(frame: object) -> list[tuple[int, int, int]]:
    table = frame.toArrow()  # type: ignore[attr-defined]
    return sorted(zip(*(table.column(c).to_pylist() for c in ("u", "i", "t")), strict=True))


def _expected(data: Dataset) -> list[tuple[int, int, int]]:
    pos = data.positives
    cols = (pos["user_idx"], pos["item_idx"], pos["timestamp"])
    return sorted(zip(*(c.to_list() for c in cols), strict=True))


def test_reads_a_partitioned_folder_and_a_single_file(
    spark: SparkSession, sim_data: Dataset, tmp_path: Path
) -> None:
    folder = tmp_path / "interactions"
    write_partitioned(sim_data.interactions.drop("user_idx", "item_idx"), folder)
    assert len(list(folder.glob("date=*"))) > 1
    single = tmp_path / "interactions.parquet"
    sim_data.interactions.drop("user_idx", "item_idx").write_parquet(single)
    expected = _expected(sim_data)
    for source in (folder, single):
        frame = spark_positives(spark, sim_data, source, tmp_path / "staging")
        assert _rows(frame) == expected
    assert not (tmp_path / "staging").exists(), "a matching source must be read, not staged"


def test_a_source_that_disagrees_is_staged_instead(
    spark: SparkSession, sim_data: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "interactions.parquet"
    raw = sim_data.interactions.drop("user_idx", "item_idx")
    raw.with_columns(pl.col("timestamp") + 1).write_parquet(source)  # not what was validated
    staging = tmp_path / "staging"
    staging.mkdir()
    frame = spark_positives(spark, sim_data, source, staging)
    assert _rows(frame) == _expected(sim_data)
    assert any(staging.iterdir())
