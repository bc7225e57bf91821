"""Spark Swing equals the numba Swing kernel on simulator data (top-K lists identical,
similarities within 1e-5 relative), with the user cap binding and without it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.recall.swing import Swing, SwingConfig
from funnelrec.spark.frames import stage_positives
from funnelrec.spark.swing import fit_swing_arrays

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CONFIGS = {
    "capped": SwingConfig(neighbors=20, max_users_per_item=3),
    "uncapped_unweighted": SwingConfig(neighbors=20, max_users_per_item=None, user_beta=0.0),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_spark_swing_equals_the_numba_kernel(
    spark: SparkSession, sim_data: Dataset, name: str, tmp_path: Path
) -> None:
    config = CONFIGS[name]
    expected = Swing(config).fit(sim_data, rng=np.random.default_rng(0))
    assert (expected.neighbor_idx >= 0).sum() > 300
    if config.max_users_per_item is not None:  # the cap must bind somewhere to be tested
        assert int(np.bincount(sim_data.positives["item_idx"].to_numpy()).max()) > 3
    idx, sim = fit_swing_arrays(stage_positives(spark, sim_data, tmp_path), sim_data, config)
    np.testing.assert_array_equal(idx, expected.neighbor_idx)
    np.testing.assert_allclose(sim, expected.neighbor_sim, rtol=1e-5, atol=0.0)
