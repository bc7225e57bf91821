"""The popularity channel's item scores on Spark: :func:`funnelrec.recall.popular.decayed_pairs`
summed per item (distinct ``(u, i)`` pairs, each weighted ``0.5 ** ((as_of - t) /
half_life_s)`` with ``t`` its last time, or 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def item_popularity(
    positives: DataFrame, n_items: int, as_of: int, half_life_s: float | None
) -> NDArray[np.float32]:
    """``[n_items]`` float32 popularity scores from ``(u, i, t)`` positives."""
    from pyspark.sql import functions as sf

    pairs = positives.groupBy("u", "i").agg(sf.max("t").alias("t"))
    if half_life_s is None:
        weight = sf.lit(1.0)
    else:
        age = sf.greatest(sf.lit(as_of) - sf.col("t"), sf.lit(0)).cast("double")
        weight = sf.pow(sf.lit(0.5), age / half_life_s)
    table = pairs.groupBy("i").agg(sf.sum(weight).alias("score")).toArrow()
    score = np.zeros(n_items, dtype=np.float64)
    if table.num_rows:
        score[table.column("i").to_numpy()] = table.column("score").to_numpy()
    return score.astype(np.float32)
