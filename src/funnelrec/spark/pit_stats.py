"""The ranker's point-in-time aggregate features on Spark: the counts, recencies, ages and CTRs
of :func:`funnelrec.features.pit.dense.assemble_dense` (every dense column but the recall
evidence), for samples against an event log.

The single-machine path sorts each side's events by ``(key, time)`` and answers every sample
with a binary search. Here each side is one Spark job: the side's events and the samples are
unioned, partitioned by the side's key and ordered by time, and window frames ending one second
before each row (``rangeBetween(..., -1)``: events strictly before the sample, as the
single-machine lookups) count the events in ``[t - w, t)``, all events before ``t``, and give
the last and first of them. Spark returns raw integers per sample; the columns are then formed
with the same formulas (``log1p``, caps, the smoothed CTR), so both engines give equal floats
(``tests/unit/spark/test_pit_stats.py`` compares them column by column).

Sides and the events they count: user (positives; clicks and impressions for CTR), item (the
same, plus the first positive's age), user x category of the target item (positives on items
of that category), user x item (positives and impressions of that very item).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit.config import PointInTimeConfig
from funnelrec.features.pit.item_stats import item_age_column
from funnelrec.features.pit.log import LogArrays
from funnelrec.features.pit.state import FittedState
from funnelrec.features.pit.stats import StatInputs

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


@dataclass(frozen=True)
class SideCounts:
    """One side's raw point-in-time answers per sample (``[N]`` each).

    Attributes:
        before: events of the sample's key strictly before its time.
        windows: ``{w: events in [t - w, t)}``.
        last: time of the last of them (valid where ``before > 0``).
        first: time of the first of them (valid where ``before > 0``).
    """

    before: NDArray[np.int64]
    windows: dict[int, NDArray[np.int64]]
    last: NDArray[np.int64]
    first: NDArray[np.int64]

    @property
    def has(self) -> NDArray[np.bool_]:
        return self.before > 0


@dataclass(frozen=True)
class _Side:
    """What one Spark job counts: the key columns, the event flag, the windows, and whether
    the last / first event times are wanted."""

    keys: tuple[str, ...]
    flag: str
    windows: tuple[int, ...] = ()
    times: bool = False


def stage(
    spark: SparkSession,
    samples: pl.DataFrame,
    log: LogArrays,
    state: FittedState,
    folder: Path | None = None,
) -> tuple[DataFrame, DataFrame]:
    """The samples and the log as Spark frames, written as Parquet and read back (what the
    executors of a cluster read from shared storage).

    Samples: ``sid`` (row number), ``u``, ``i``, ``c`` (the item's category, -1 none), ``t``.
    Log: ``u``, ``i``, ``c``, ``t`` and the ``pos`` / ``imp`` / ``ctr`` flags.
    """
    base = Path(tempfile.mkdtemp(prefix="funnelrec-pit-", dir=folder))
    s_item = samples["item_idx"].to_numpy().astype(np.int64)
    pl.DataFrame(
        {
            "sid": np.arange(samples.height, dtype=np.int64),
            "u": samples["user_idx"].to_numpy().astype(np.int64),
            "i": s_item,
            "c": state.category_of(s_item),
            "t": samples["timestamp"].to_numpy().astype(np.int64),
        }
    ).write_parquet(base / "samples.parquet")
    pl.DataFrame(
        {
            "u": log.user,
            "i": log.item,
            "c": state.category_of(log.item),
            "t": log.timestamp,
            **{kind: log.flags[kind] for kind in ("pos", "imp", "ctr")},
        }
    ).write_parquet(base / "log.parquet")
    return (
        spark.read.parquet(str(base / "samples.parquet")),
        spark.read.parquet(str(base / "log.parquet")),
    )


def side_counts(samples: DataFrame, log: DataFrame, side: _Side, n: int) -> SideCounts:
    """``side``'s :class:`SideCounts` for the ``n`` staged samples (no valid key: zeros)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    valid = _all_valid(side.keys)
    events = log.filter(sf.col(side.flag) & valid).select(
        *side.keys, "t", sf.lit(None).cast("long").alias("sid")
    )
    asks = samples.filter(valid).select(*side.keys, "t", "sid")
    both = events.unionByName(asks)
    is_event = sf.col("sid").isNull()
    ordered = Window.partitionBy(*side.keys).orderBy("t")
    before = ordered.rangeBetween(Window.unboundedPreceding, -1)
    aggregates: list[Column] = [sf.count(sf.when(is_event, 1)).over(before).alias("n_all")]
    for w in side.windows:
        frame = ordered.rangeBetween(-w, -1)
        aggregates.append(sf.count(sf.when(is_event, 1)).over(frame).alias(f"n_{w}"))
    if side.times:
        aggregates.append(sf.max(sf.when(is_event, sf.col("t"))).over(before).alias("last"))
        aggregates.append(sf.min(sf.when(is_event, sf.col("t"))).over(before).alias("first"))
    table = both.select("sid", *aggregates).filter(~is_event).toArrow()
    sid = table.column("sid").to_numpy()

    def scatter(name: str) -> NDArray[np.int64]:
        out = np.zeros(n, dtype=np.int64)
        if name in table.column_names:
            out[sid] = table.column(name).fill_null(0).to_numpy()
        return out

    return SideCounts(
        before=scatter("n_all"),
        windows={w: scatter(f"n_{w}") for w in side.windows},
        last=scatter("last"),
        first=scatter("first"),
    )


def _all_valid(keys: tuple[str, ...]) -> Column:
    from pyspark.sql import functions as sf

    condition = sf.lit(True)
    for key in keys:
        condition = condition & (sf.col(key) >= 0)
    return condition


def aggregate_features(
    spark: SparkSession,
    config: PointInTimeConfig,
    state: FittedState,
    samples: pl.DataFrame,
    log: LogArrays,
    *,
    staging: Path | None = None,
) -> NDArray[np.float64]:
    """``[N, D]`` float64 aggregate features of ``samples`` (``user_idx, item_idx,
    timestamp``) from ``log``, in :func:`~funnelrec.features.pit.config.dense_feature_names`
    order: the columns of :func:`~funnelrec.features.pit.dense.assemble_dense` before the
    recall evidence, equal to them."""
    n = samples.height
    s_frame, l_frame = stage(spark, samples, log, state, staging)
    windows = tuple(config.windows_s)
    impressions = state.has_impressions

    def counts(side: _Side) -> SideCounts:
        return side_counts(s_frame, l_frame, side, n)

    def ctr(key: str) -> list[NDArray[np.float64]]:
        if not impressions:
            return []
        return _ctr_columns(
            config, state, counts(_Side((key,), "ctr")), counts(_Side((key,), "imp"))
        )

    s_t = samples["timestamp"].to_numpy().astype(np.int64)
    user = counts(_Side(("u",), "pos", windows, times=True))
    cols = _window_columns(config, user, s_t) + ctr("u")
    item = counts(_Side(("i",), "pos", windows, times=True))
    cols += _window_columns(config, item, s_t) + _lifetime_columns(config, item, s_t) + ctr("i")
    if state.item_created_at is not None:
        empty = LogArrays(*(np.zeros(0, dtype=np.int64),) * 3, {})
        x = StatInputs.build(config, state, samples, empty, None)
        cols.append(item_age_column(x, state.item_created_at))
    user_category = counts(_Side(("u", "c"), "pos", windows, times=True))
    cols += _window_columns(config, user_category, s_t)
    share = user_category.before / np.maximum(user.before, 1)
    cols.append(np.where(user.before > 0, share, 0.0))
    cols.append(np.log1p(counts(_Side(("u", "i"), "pos")).before))
    if impressions:
        cols.append(np.log1p(counts(_Side(("u", "i"), "imp")).before))
    if not cols or n == 0:
        return np.zeros((n, len(cols)))
    return np.column_stack(cols).astype(np.float64)


def _window_columns(
    config: PointInTimeConfig, side: SideCounts, s_t: NDArray[np.int64]
) -> list[NDArray[np.float64]]:
    """As :func:`funnelrec.features.pit.stats.window_columns` with recency."""
    cap = float(config.recency_cap_s)
    cols = [np.log1p(side.windows[w]) for w in config.windows_s]
    cols.append(np.log1p(side.before))
    cols.append(np.log1p(np.where(side.has, np.minimum(s_t - side.last, cap), cap)))
    return cols


def _lifetime_columns(
    config: PointInTimeConfig, side: SideCounts, s_t: NDArray[np.int64]
) -> list[NDArray[np.float64]]:
    """As :func:`funnelrec.features.pit.stats.lifetime_columns`."""
    cap = float(config.recency_cap_s)
    age = np.log1p(np.where(side.has, np.minimum(s_t - side.first, cap), cap))
    short, long = side.windows[min(config.windows_s)], side.windows[max(config.windows_s)]
    return [age, short / np.maximum(long, 1)]


def _ctr_columns(
    config: PointInTimeConfig, state: FittedState, clicks: SideCounts, imps: SideCounts
) -> list[NDArray[np.float64]]:
    """As :func:`funnelrec.features.pit.stats.ctr_columns`."""
    prior = config.ctr_prior
    ctr = (clicks.before + prior * state.global_ctr) / np.maximum(imps.before + prior, 1e-9)
    return [np.log1p(imps.before), np.minimum(ctr, 1.0)]
