"""Spark ItemCF equals the numba kernel on simulator data: the same top-K lists, similarities
within 1e-5 relative, under the default, textbook and every-option configurations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.spark.frames import stage_positives
from funnelrec.spark.itemcf import fit_itemcf_arrays

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DAY = 86_400.0
CONFIGS = {
    "default": ItemCFConfig(neighbors=30),
    "plain": ItemCFConfig.plain(neighbors=30),
    "every_option": ItemCFConfig(
        neighbors=20,
        window=3,
        time_half_life_s=0.5 * DAY,
        position_decay=0.6,
        forward_weight=1.3,
        backward_weight=0.4,
        created_half_life_s=30 * DAY,
        pair_half_life_s=3 * DAY,
        alpha=0.3,
        popularity_correction=0.5,
    ),
    "forward_only": ItemCFConfig(neighbors=10, backward_weight=0.0, user_activity_penalty=False),
}


def assert_same_neighbours(
    spark_idx: np.ndarray, spark_sim: np.ndarray, model: ItemCF, rtol: float = 1e-5
) -> None:
    """Identical top-K lists and similarities within ``rtol`` (relative)."""
    np.testing.assert_array_equal(spark_idx, model.neighbor_idx)
    np.testing.assert_allclose(spark_sim, model.neighbor_sim, rtol=rtol, atol=0.0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_spark_itemcf_equals_the_numba_kernel(
    spark: SparkSession, sim_data: Dataset, name: str, tmp_path: Path
) -> None:
    config = CONFIGS[name]
    expected = ItemCF(config).fit(sim_data, rng=np.random.default_rng(0))
    assert (expected.neighbor_idx >= 0).sum() > 1000  # the data has many neighbours to get wrong
    positives = stage_positives(spark, sim_data, tmp_path)
    idx, sim = fit_itemcf_arrays(spark, positives, sim_data, config)
    assert_same_neighbours(idx, sim, expected)


def test_window_blocks_meet_every_pair_within_the_window(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A window of 2 over one user's 7 items: the block join (blocks of 2) must find the pairs
    that straddle a block boundary, and no pair further apart."""
    import polars as pl

    n = 7
    inter = pl.DataFrame(
        {
            "user_id": [1] * n,
            "item_id": list(range(n)),
            "timestamp": list(range(n)),
            "event": ["click"] * n,
            "value": [1.0] * n,
        }
    )
    data = Dataset.build(inter)
    config = ItemCFConfig.plain(neighbors=n).model_copy(update={"window": 2})
    idx, _ = fit_itemcf_arrays(spark, stage_positives(spark, data, tmp_path), data, config)
    for i in range(n):
        got = {int(j) for j in idx[i] if j >= 0}
        assert got == {j for j in range(n) if j != i and abs(j - i) <= 2}
