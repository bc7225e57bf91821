"""Swing on Spark: the similarity of :mod:`funnelrec.recall.swing` (the numba kernel's
definition) as DataFrame joins and aggregations.

1. **Sets**: ItemCF's deduplicated sequences give ``I_u`` (``n = |I_u|``) and each item's
   users; with ``max_users_per_item`` an item keeps its users whose last interaction is most
   recent (ties by smaller user), exactly :func:`~funnelrec.recall.swing.model.capped_item_users`.
2. **User pairs** ``u < v`` of every item's kept users (a self-join on the item).
3. **Overlaps**: for each distinct user pair its common items ``I_u ∩ I_v`` (a join of the two
   users' full, uncapped item sets), ``c_uv`` of them.
4. **Similarity**: every common ``j != i`` of a pair of ``U_i`` adds ``w_u * w_v / (alpha +
   c_uv)``, ``w_u = (|I_u| + user_alpha) ** -user_beta``; summed per ``(i, j)``, then ItemCF's
   top-K (float32 rank, ties by ``j``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.recall.swing.config import SwingConfig
from funnelrec.spark.frames import collect_neighbours, top_k
from funnelrec.spark.itemcf import user_sequences

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def capped_users(sequences: DataFrame, cap: int | None) -> DataFrame:
    """``(i, u)``: each item's users, at most ``cap``: the most recent (ties by smaller ``u``)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    if cap is None:
        return sequences.select("i", "u")
    recent_first = Window.partitionBy("i").orderBy(sf.col("t").desc(), sf.col("u").asc())
    ranked = sequences.withColumn("r", sf.row_number().over(recent_first))
    return ranked.filter(sf.col("r") <= cap).select("i", "u")


def pair_overlaps(sequences: DataFrame, user_pairs: DataFrame, config: SwingConfig) -> DataFrame:
    """``(u, v, j, w)``: the common items ``j`` of each user pair and the pair's weight
    ``w_u * w_v / (alpha + c_uv)``."""
    from pyspark.sql import functions as sf

    items_of = sequences.select("u", "i", "n")
    common = user_pairs.join(
        items_of.select("u", sf.col("i").alias("j"), sf.col("n").alias("nu")), "u"
    ).join(
        items_of.select(sf.col("u").alias("v"), sf.col("i").alias("j"), sf.col("n").alias("nv")),
        ["v", "j"],
    )
    sizes = common.groupBy("u", "v").agg(sf.count("*").cast("double").alias("c"))

    def user_weight(size: str) -> Column:
        return sf.pow(sf.col(size).cast("double") + config.user_alpha, sf.lit(-config.user_beta))

    weight = user_weight("nu") * user_weight("nv") / (sf.lit(config.alpha) + sf.col("c"))
    return common.join(sizes, ["u", "v"]).select("u", "v", "j", weight.alias("w"))


def swing_similarities(sequences: DataFrame, config: SwingConfig) -> DataFrame:
    """``(i, j, sim)``: the Swing similarity of every pair some user pair connects."""
    from pyspark.sql import functions as sf

    kept = capped_users(sequences, config.max_users_per_item)
    triples = kept.join(kept.select("i", sf.col("u").alias("v")), "i").filter(
        sf.col("u") < sf.col("v")
    )
    overlaps = pair_overlaps(sequences, triples.select("u", "v").distinct(), config)
    contributions = triples.join(overlaps, ["u", "v"]).filter(sf.col("j") != sf.col("i"))
    return contributions.groupBy("i", "j").agg(sf.sum("w").alias("sim"))


def fit_swing_arrays(
    positives: DataFrame, data: Dataset, config: SwingConfig, staging: Path | None = None
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Swing's fitted state ``(neighbor_idx, neighbor_sim)`` ``[n_items, neighbors]`` from
    ``(u, i, t)`` positives, computed on Spark (the rows back through Parquet under
    ``staging``)."""
    from pyspark import StorageLevel

    sequences = user_sequences(positives).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        ranked = top_k(swing_similarities(sequences, config), config.neighbors)
        return collect_neighbours(ranked, data.n_items, config.neighbors, staging)
    finally:
        sequences.unpersist()
