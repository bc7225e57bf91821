"""The Spark jobs' input and output: positives as a Spark DataFrame, top-K back as arrays.

Input: ``(u, i, t)`` rows (dense user / item index, unix seconds) - the Dataset's positives,
either read by Spark from the data folder's Parquet (one file or a hive-partitioned
``interactions/date=YYYY-MM-DD/`` folder, mapped to the Dataset's vocabularies by a join) or
staged from the driver's Dataset as Parquet. Output: per item ``i`` its top ``K`` ``(j,
sim)`` as the ``[n_items, K]`` arrays the single-machine kernels write.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.data.events import NON_POSITIVE_EVENTS
from funnelrec.data.vocab import Vocabulary
from funnelrec.recall.itemcf.kernel import MIN_SIM

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

POSITIVE_COLUMNS = ("u", "i", "t")
"""Columns of a positives frame: user index, item index, timestamp (unix s)."""


def stage_positives(spark: SparkSession, data: Dataset, folder: Path | None = None) -> DataFrame:
    """``data``'s positives written as Parquet under ``folder`` and read back by Spark.

    Parquet rather than ``createDataFrame``: the rows stream from a file instead of through
    the driver's Python process, and on a cluster ``folder`` (shared storage) is what the
    executors read.
    """
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="funnelrec-spark-", dir=folder))
    path = base / "positives.parquet"
    data.positives.select(
        pl.col("user_idx").alias("u"), pl.col("item_idx").alias("i"), pl.col("timestamp").alias("t")
    ).write_parquet(path)
    return spark.read.parquet(str(path))


def read_interactions(spark: SparkSession, path: Path) -> DataFrame:
    """Canonical interactions from a Parquet file or a hive-partitioned folder of them
    (``key=value`` folders become columns; ``_``/``.`` files are skipped, as Spark does)."""
    if path.is_dir():
        return spark.read.option("basePath", str(path)).parquet(str(path))
    return spark.read.parquet(str(path))


def _vocab_frame(spark: SparkSession, vocab: Vocabulary, id_name: str, idx_name: str) -> DataFrame:
    table = pa.table(
        {
            id_name: vocab.ids.to_arrow(),
            idx_name: pa.array(np.arange(len(vocab), dtype=np.int32)),
        }
    )
    return spark.createDataFrame(table)


def positives_from_interactions(
    spark: SparkSession, interactions: DataFrame, data: Dataset
) -> DataFrame:
    """The positive rows of raw ``interactions`` as ``(u, i, t)``, ids mapped through
    ``data``'s vocabularies (the events rule of :mod:`funnelrec.data.events`)."""
    from pyspark.sql import functions as sf

    events = sf.col("event")
    if data.positive_events is None:
        keep = ~events.isin(list(NON_POSITIVE_EVENTS))
    else:
        keep = events.isin(list(data.positive_events))
    users = _vocab_frame(spark, data.user_vocab, "user_id", "u")
    items = _vocab_frame(spark, data.item_vocab, "item_id", "i")
    rows = interactions.filter(keep).select(
        sf.col("user_id").cast(users.schema["user_id"].dataType).alias("user_id"),
        sf.col("item_id").cast(items.schema["item_id"].dataType).alias("item_id"),
        sf.col("timestamp").cast("long").alias("t"),
    )
    return (
        rows.join(sf.broadcast(users), "user_id")
        .join(sf.broadcast(items), "item_id")
        .select(*POSITIVE_COLUMNS)
    )


def _fingerprint(frame: DataFrame) -> tuple[int, int, int, int]:
    """``(rows, sum u, sum i, sum t)``: cheap evidence two positives tables hold the same rows."""
    from pyspark.sql import functions as sf

    row = frame.agg(sf.count("*"), sf.sum("u"), sf.sum("i"), sf.sum("t")).collect()[0]
    return tuple(int(v or 0) for v in row)  # type: ignore[return-value]


def spark_positives(
    spark: SparkSession, data: Dataset, source: Path | None, staging: Path | None
) -> DataFrame:
    """``data``'s positives as a Spark frame, read from ``source`` when it is Parquet and
    holds exactly ``data``'s positives, else staged from the driver.

    The check (row count and sums of ``u``, ``i``, ``t``) guards against rows the validation
    of :mod:`funnelrec.data.io` dropped or converted (null ids, ISO-8601 times): Spark does
    not re-implement it, so a source that disagrees is not used.
    """
    if source is not None and (source.is_dir() or source.suffix == ".parquet"):
        frame = positives_from_interactions(spark, read_interactions(spark, source), data)
        # Int64 sums: the int32 index columns would overflow past ~2^31 in total.
        sums = data.positives.select(
            pl.col(c).cast(pl.Int64).sum() for c in ("user_idx", "item_idx", "timestamp")
        ).row(0)
        expected = (data.positives.height, *(int(v) for v in sums))
        if _fingerprint(frame) == expected:
            return frame
        logger.warning(
            "spark: %s does not hold exactly the validated positives; staging them instead",
            source,
        )
    return stage_positives(spark, data, staging)


def top_k(similarities: DataFrame, k: int) -> DataFrame:
    """Each item's ``k`` best ``(i, j, sim)`` rows with their ``rank`` (0-based).

    As the numba kernels: similarities below :data:`MIN_SIM` are dropped, candidates rank by
    the *float32* similarity (what is stored) descending, ties by smaller ``j``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    kept = similarities.filter(sf.col("sim") >= sf.lit(MIN_SIM)).withColumn(
        "sim32", sf.col("sim").cast("float")
    )
    order = Window.partitionBy("i").orderBy(sf.col("sim32").desc(), sf.col("j").asc())
    ranked = kept.withColumn("rank", sf.row_number().over(order) - 1)
    return ranked.filter(sf.col("rank") < k).select("i", "j", "sim32", "rank")


def collect_neighbours(
    ranked: DataFrame, n_items: int, k: int, staging: Path | None = None
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """The rows of :func:`top_k` as ``[n_items, k]`` arrays (-1 / 0 padding).

    The executors write the rows as Parquet under ``staging`` (shared storage on a cluster; a
    temporary folder when None) and the driver reads them back one record batch at a time
    into the arrays. Not ``toArrow``: that gathers every row into the driver JVM's heap and
    then into Python at once, and a 50M-positive fit has hundreds of millions of neighbour
    rows, several times the arrays themselves.
    """
    import pyarrow.dataset as ds

    out_idx = np.full((n_items, k), -1, dtype=np.int32)
    out_sim = np.zeros((n_items, k), dtype=np.float32)
    if staging is not None:
        staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="funnelrec-neighbours-", dir=staging) as folder:
        path = str(Path(folder) / "neighbours")
        ranked.select("i", "rank", "j", "sim32").write.parquet(path)
        for batch in ds.dataset(path, format="parquet").to_batches():
            rows = batch.column("i").to_numpy().astype(np.int64)
            ranks = batch.column("rank").to_numpy().astype(np.int64)
            out_idx[rows, ranks] = batch.column("j").to_numpy()
            out_sim[rows, ranks] = batch.column("sim32").to_numpy()
    return out_idx, out_sim


def item_user_counts(sequences: DataFrame, n_items: int) -> NDArray[np.float64]:
    """``[n_items]`` distinct users per item, ``|N(i)|``, from deduplicated ``(u, i)`` rows."""
    table = sequences.groupBy("i").count().toArrow()
    out = np.zeros(n_items, dtype=np.float64)
    if table.num_rows:
        out[table.column("i").to_numpy()] = table.column("count").to_numpy()
    return out
