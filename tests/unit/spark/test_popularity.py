"""The popularity channel's item scores on Spark equal the single-machine fit (recent and
global modes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.recall.popular import Popular, PopularConfig
from funnelrec.spark.frames import stage_positives
from funnelrec.spark.popularity import item_popularity

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.mark.parametrize("mode", ["recent", "global"])
def test_spark_popularity_equals_the_single_machine_fit(
    spark: SparkSession, sim_data: Dataset, mode: str, tmp_path: Path
) -> None:
    config = PopularConfig(mode=mode)  # type: ignore[arg-type]
    expected = Popular(config).fit(sim_data, rng=np.random.default_rng(0)).item_score
    half_life = None if mode == "global" else config.half_life_s
    score = item_popularity(
        stage_positives(spark, sim_data, tmp_path), sim_data.n_items, sim_data.as_of, half_life
    )
    assert np.count_nonzero(expected) > 100
    np.testing.assert_allclose(score, expected, rtol=1e-6)
