"""Hive-partitioned interactions: written by day, read back lazily into the same tables as the
single-file layout; partition columns, and one-line errors for unusable folders."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from funnelrec.data.io import RawTables, load_dataset_dir, write_tables
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.errors import DataError


def inter(users: list[int], times: list[int]) -> pl.DataFrame:
    n = len(users)
    return pl.DataFrame(
        {
            "user_id": users,
            "item_id": [10 + u for u in users],
            "timestamp": times,
            "event": ["click"] * n,
            "value": [1.0] * n,
        }
    )


def test_partitioned_round_trip_equals_the_single_file_layout(tmp_path: Path) -> None:
    sim = simulate(SimulatorConfig.for_interactions(3000, seed=1))
    tables = RawTables(sim.interactions, sim.items, sim.users)
    write_tables(tables, tmp_path / "single")
    written = write_tables(tables, tmp_path / "parts", partitioned=True)
    assert len([p for p in written if p.parent.name.startswith("date=")]) > 1
    assert not (tmp_path / "parts" / "interactions.parquet").exists()
    single = load_dataset_dir(tmp_path / "single")
    parts = load_dataset_dir(tmp_path / "parts")
    for name, frame in single.tables.items():
        assert parts.tables[name].equals(frame), name
    assert parts.notes == (
        "interactions: partition column(s) date dropped (not canonical columns)",
    )


def test_a_partition_column_of_the_schema_is_kept(tmp_path: Path) -> None:
    for scenario, users in (("feed", [1, 2]), ("search", [3])):
        folder = tmp_path / "interactions" / f"scenario={scenario}"
        folder.mkdir(parents=True)
        inter(users, [5] * len(users)).write_parquet(folder / "part-0.parquet")
    tables = load_dataset_dir(tmp_path)
    assert tables.interactions["scenario"].to_list() == ["feed", "feed", "search"]
    assert tables.notes == ()


def test_an_empty_partition_folder_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "interactions" / "date=2024-01-01").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no .parquet files") as info:
        load_dataset_dir(tmp_path)
    assert "\n" not in str(info.value)


def test_mixed_schemas_are_a_one_line_error(tmp_path: Path) -> None:
    a = tmp_path / "interactions" / "date=2024-01-01"
    b = tmp_path / "interactions" / "date=2024-01-02"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    inter([1], [5]).write_parquet(a / "part-0.parquet")
    inter([2], [86_405]).drop("value").write_parquet(b / "part-0.parquet")
    with pytest.raises(DataError, match="cannot be read as one table") as info:
        load_dataset_dir(tmp_path)
    assert "\n" not in str(info.value)


def test_a_file_and_a_folder_of_interactions_conflict(tmp_path: Path) -> None:
    write_tables(RawTables(inter([1], [5])), tmp_path, partitioned=True)
    inter([1], [5]).write_parquet(tmp_path / "interactions.parquet")
    with pytest.raises(DataError, match="two interactions files"):
        load_dataset_dir(tmp_path)


def test_a_single_file_write_refuses_a_partitioned_folder(tmp_path: Path) -> None:
    write_tables(RawTables(inter([1], [5])), tmp_path, partitioned=True)
    with pytest.raises(DataError, match="partitioned interactions/ folder"):
        write_tables(RawTables(inter([1], [5])), tmp_path)
