"""The ranker's point-in-time aggregate features on Spark equal the single-machine ones, column
by column: on a simulated log with impressions and creation times, on samples that include
unknown users and items, samples at the very time of an event, and samples before any event."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.features.pit import PointInTimeFeatures
from funnelrec.features.pit.config import PointInTimeConfig, dense_feature_names
from funnelrec.features.pit.dense import assemble_dense
from funnelrec.features.pit.log import EventRules, LogArrays
from funnelrec.spark.pit_stats import aggregate_features

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="module")
def logged() -> Dataset:
    """A simulated log with impressions (CTR features) and item creation times."""
    sim = simulate(SimulatorConfig.for_interactions(6_000, seed=5))
    return Dataset.build(sim.interactions, sim.items)


def _samples(data: Dataset, rng: np.random.Generator) -> pl.DataFrame:
    """Random (user, item, time) samples, some at an event's exact time, some unknown keys."""
    log = data.interactions
    n = 1_500
    times = log["timestamp"].to_numpy()
    t_lo, t_hi = int(times.min()), int(times.max())
    rows = rng.integers(0, log.height, n)
    user = log["user_idx"].to_numpy()[rows].astype(np.int64)
    item = rng.integers(0, data.n_items, n)
    t = rng.integers(t_lo - 10, t_hi + 10, n)
    t[: n // 3] = log["timestamp"].to_numpy()[rows[: n // 3]]  # ties: strictly before
    item[n // 3 : n // 3 + 20] = log["item_idx"].to_numpy()[rows[n // 3 : n // 3 + 20]]
    user[-10:] = -1  # unknown user
    item[-20:-10] = data.n_items + 3  # an item the features were not fitted with
    return pl.DataFrame(
        {"query_id": np.arange(n), "user_idx": user, "item_idx": item, "timestamp": t}
    )


@pytest.mark.parametrize("windows", [(86_400, 604_800, 2_592_000), (3_600,)])
def test_spark_aggregates_equal_the_single_machine_features(
    spark: SparkSession, logged: Dataset, windows: tuple[int, ...], tmp_path: Path
) -> None:
    config = PointInTimeConfig(windows_s=windows, recall_evidence=False)
    samples = _samples(logged, np.random.default_rng(0))
    fit_rows = samples.filter(pl.col("user_idx") >= 0).with_columns(pl.lit(1).alias("label_click"))
    state = PointInTimeFeatures(config).fit(logged, fit_rows)._state
    assert state.has_impressions and state.item_created_at is not None
    log = logged.interactions
    expected = assemble_dense(config, state, samples, log)
    arrays = LogArrays.of(log, EventRules.of(config, state.positive_events))
    got = aggregate_features(spark, config, state, samples, arrays, staging=tmp_path)
    names = dense_feature_names(config, impressions=True, created_at=True)
    assert got.shape == expected.shape == (samples.height, len(names))
    for j, name in enumerate(names):
        np.testing.assert_array_equal(got[:, j], expected[:, j], err_msg=name)
    assert (expected[:, names.index("u_pos_all")] > 0).mean() > 0.5  # the lookups found events
