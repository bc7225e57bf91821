"""Time-decayed ItemCF on Spark: the pair weights of :mod:`funnelrec.recall.itemcf` (the numba
kernel's definition, term by term) as DataFrame joins and aggregations.

1. **Sequences**: per ``(u, i)`` the latest time; per user the positions ``p`` in ``(t, i)``
   order (a window function) and the length ``n = |I_u|``.
2. **Forward pairs** ``p < q <= p + window`` of a user: a self-join on ``(u, block)`` with
   ``block = p // window`` (a position meets the positions of its own and the next block
   only), so each position is compared with at most ``2 * window`` others instead of the
   whole sequence; ``window = None`` joins on ``u`` alone (all pairs).
3. **Weights**: ``act(u) * time_decay(t_q - t_p) * position_decay ** (q - p - 1) *
   pair_decay(as_of - t_q)``; the forward direction ``(i, j)`` gets ``forward_weight``, the
   mirrored ``(j, i)`` ``backward_weight`` (the later time of both is ``t_q``).
4. **Similarity**: ``C[i, j]`` summed per pair, divided by ``|N(i)| ** alpha * |N(j)| ** (1 -
   alpha)``, times the creation-time decay, then ItemCF's top-K (float32 rank, ties by ``j``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.itemcf.popularity import correct_popularity
from funnelrec.spark.frames import collect_neighbours, item_user_counts, top_k

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def user_sequences(positives: DataFrame) -> DataFrame:
    """``(u, i, t, p, n)``: each user's distinct items at their latest time, positions ``p``
    (0-based) in ``(t, i)`` order and the sequence length ``n`` (ItemCF's sequences)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    last = positives.groupBy("u", "i").agg(sf.max("t").alias("t"))
    in_order = Window.partitionBy("u").orderBy("t", "i")
    return last.withColumn("p", sf.row_number().over(in_order) - 1).withColumn(
        "n", sf.count("*").over(Window.partitionBy("u"))
    )


def forward_pairs(sequences: DataFrame, window: int | None) -> DataFrame:
    """``(u, n, i, t, j, tq, d)``: every pair of one user's positions ``p < q`` with ``d = q -
    p <= window`` (``i``, ``t`` at ``p``; ``j``, ``tq`` at ``q``)."""
    from pyspark.sql import functions as sf

    left = sequences.select("u", "n", "i", "t", "p")
    right = sequences.select(
        "u", sf.col("i").alias("j"), sf.col("t").alias("tq"), sf.col("p").alias("q")
    )
    if window is None:
        joined = left.join(right, "u").filter(sf.col("q") > sf.col("p"))
    else:
        block = sf.floor(sf.col("p") / window)
        left = left.withColumn("block", sf.explode(sf.array(block, block + 1)))
        right = right.withColumn("block", sf.floor(sf.col("q") / window))
        joined = left.join(right, ["u", "block"]).filter(
            (sf.col("q") > sf.col("p")) & (sf.col("q") - sf.col("p") <= window)
        )
    return joined.select("u", "n", "i", "t", "j", "tq", (sf.col("q") - sf.col("p")).alias("d"))


def pair_weight(config: ItemCFConfig, as_of: int) -> Column:
    """The direction-free weight of a forward pair (every factor of the ItemCF definition but
    the direction weight and the creation-time decay)."""
    from pyspark.sql import functions as sf

    weight = sf.pow(sf.lit(config.position_decay), sf.col("d") - 1)
    if config.user_activity_penalty:
        weight = weight / sf.log1p(sf.col("n").cast("double"))
    if config.time_decay == "exponential":
        gap = (sf.col("tq") - sf.col("t")).cast("double")
        weight = weight * sf.pow(sf.lit(0.5), gap / config.time_half_life_s)
    if config.pair_half_life_s is not None:
        age = sf.greatest(sf.lit(as_of) - sf.col("tq"), sf.lit(0)).cast("double")
        weight = weight * sf.pow(sf.lit(0.5), age / config.pair_half_life_s)
    return weight


def cooccurrence(pairs: DataFrame, config: ItemCFConfig, as_of: int) -> DataFrame:
    """``(i, j, c)``: ``C[i, j]`` summed over users, both directions of every pair."""
    from pyspark.sql import functions as sf

    weighted = pairs.select("i", "j", pair_weight(config, as_of).alias("w"))
    directed = []
    if config.forward_weight > 0:
        directed.append(weighted.select("i", "j", (sf.col("w") * config.forward_weight).alias("w")))
    if config.backward_weight > 0:
        directed.append(
            weighted.select(
                sf.col("j").alias("i"),
                sf.col("i").alias("j"),
                (sf.col("w") * config.backward_weight).alias("w"),
            )
        )
    if not directed:  # both directions weigh 0: no pair counts
        return weighted.select("i", "j", sf.col("w").alias("c")).limit(0)
    union = directed[0] if len(directed) == 1 else directed[0].unionByName(directed[1])
    return union.groupBy("i", "j").agg(sf.sum("w").alias("c"))


def similarities(
    spark: SparkSession,
    sequences: DataFrame,
    config: ItemCFConfig,
    as_of: int,
    created_at: NDArray[np.int64] | None,
) -> DataFrame:
    """``(i, j, sim)``: the normalised (and creation-time decayed) similarity of every
    co-occurring pair, before the top-K cut."""
    from pyspark.sql import functions as sf

    cooc = cooccurrence(forward_pairs(sequences, config.window), config, as_of)
    users_of = sequences.groupBy("i").agg(sf.count("*").cast("double").alias("ni"))
    sims = cooc.join(users_of, "i").join(
        users_of.select(sf.col("i").alias("j"), sf.col("ni").alias("nj")), "j"
    )
    sim = sf.col("c") / (
        sf.pow("ni", sf.lit(config.alpha)) * sf.pow("nj", sf.lit(1.0 - config.alpha))
    )
    if config.created_half_life_s is not None and created_at is not None:
        rate = math.log(2.0) / config.created_half_life_s
        created = spark.createDataFrame(
            pa.table(
                {
                    "i": np.arange(created_at.shape[0], dtype=np.int32),
                    "ci": created_at.astype(np.float64),
                }
            )
        )
        sims = sims.join(sf.broadcast(created), "i").join(
            sf.broadcast(created.select(sf.col("i").alias("j"), sf.col("ci").alias("cj"))), "j"
        )
        sim = sim * sf.exp(-rate * sf.abs(sf.col("cj") - sf.col("ci")))
    return sims.select("i", "j", sim.alias("sim"))


def fit_itemcf_arrays(
    spark: SparkSession,
    positives: DataFrame,
    data: Dataset,
    config: ItemCFConfig,
    staging: Path | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """ItemCF's fitted state ``(neighbor_idx, neighbor_sim)`` ``[n_items, neighbors]`` from
    ``(u, i, t)`` positives, computed on Spark (popularity correction applied, as the numba
    fit does); the neighbour rows come back through Parquet under ``staging``
    (:func:`~funnelrec.spark.frames.collect_neighbours`)."""
    from pyspark import StorageLevel

    sequences = user_sequences(positives).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        created = data.item_created_at if config.created_half_life_s is not None else None
        sims = similarities(spark, sequences, config, data.as_of, created)
        ranked = top_k(sims, config.neighbors)
        idx, sim = collect_neighbours(ranked, data.n_items, config.neighbors, staging)
        if config.popularity_correction > 0:
            users_of = item_user_counts(sequences, data.n_items)
            idx, sim = correct_popularity(idx, sim, users_of, config.popularity_correction)
    finally:
        sequences.unpersist()
    return idx, sim
