"""Leakage-free evaluation splits.

Every split returns the *training* tables (what fitted components may see) and the held-out
positives (what they are scored against). Nothing from the held-out side reaches training:

* ``temporal`` (default): one global cutoff time; training keeps only rows before it and only
  items/users that existed before it (``created_at`` / ``signup_at`` when the data has them), so
  popularity counts, item statistics and vocabularies never see the test period.
* ``leave_last_out``: per user, the last positive interaction with an item new to that user is
  the target; training keeps that user's rows before it. This is the protocol of the well-known
  news-recommendation competitions; it shares global time across users by design.
* ``random_ratio``: RecBole's "general" protocol: each user's distinct positive items shuffled
  (seeded) and cut train/valid/test by ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.data.events import positive_expr
from funnelrec.errors import DataError


class TemporalSplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["temporal"] = "temporal"
    test_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the time span held out.")


class LeaveLastOutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["leave_last_out"] = "leave_last_out"


class RandomRatioConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["random_ratio"] = "random_ratio"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 2020


SplitConfig = Annotated[
    TemporalSplitConfig | LeaveLastOutConfig | RandomRatioConfig, Field(discriminator="kind")
]


@dataclass(frozen=True)
class Split:
    """Training tables plus held-out positives.

    Attributes:
        train_interactions: rows training may use (all events).
        train_items / train_users: attribute tables restricted to what existed at the cutoff.
        test: held-out positive rows (``user_id``, ``item_id``, ``timestamp``, ``query_ts``):
            ``query_ts`` is the as-of time of the request that should retrieve them.
        as_of: the time up to which training data may know anything.
        info: a JSON-able summary (sizes, cutoff, dropped rows).
        masked: held-out (``user_id``, ``item_id``) pairs that are neither training data nor
            targets (RecBole's validation part): evaluation removes them from recommendation
            lists, as RecBole does when it ranks the test part.
    """

    train_interactions: pl.DataFrame
    train_items: pl.DataFrame | None
    train_users: pl.DataFrame | None
    test: pl.DataFrame
    as_of: int
    info: dict
    masked: pl.DataFrame | None = None


def _time_range(interactions: pl.DataFrame) -> tuple[int, int]:
    """Earliest and latest interaction time (unix s)."""
    ts = interactions["timestamp"]
    lo, hi = ts.min(), ts.max()
    if not isinstance(lo, int) or not isinstance(hi, int):  # no rows, or all null
        raise DataError("no interaction timestamps to split on")
    return lo, hi


def _existing_before(table: pl.DataFrame | None, column: str, cutoff: int) -> pl.DataFrame | None:
    if table is None or column not in table.columns:
        return table
    return table.filter(pl.col(column).is_null() | (pl.col(column) < cutoff))


def temporal_split(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    users: pl.DataFrame | None,
    config: TemporalSplitConfig,
    positive_events: tuple[str, ...] | None = None,
) -> Split:
    """Hold out the last ``test_fraction`` of the time span (by time, not by row count)."""
    t_min, t_max = _time_range(interactions)
    if t_max <= t_min:
        raise DataError("all interactions share one timestamp: a temporal split is impossible")
    cutoff = int(np.ceil(t_max - (t_max - t_min) * config.test_fraction))
    train = interactions.filter(pl.col("timestamp") < cutoff)
    test = (
        interactions.filter((pl.col("timestamp") >= cutoff) & positive_expr(positive_events))
        .select("user_id", "item_id", "timestamp")
        .with_columns(pl.lit(cutoff, dtype=pl.Int64).alias("query_ts"))
    )
    info = {
        "kind": "temporal",
        "cutoff": cutoff,
        "test_fraction": config.test_fraction,
        "train_rows": train.height,
        "test_positive_rows": test.height,
    }
    return Split(
        train,
        _existing_before(items, "created_at", cutoff),
        _existing_before(users, "signup_at", cutoff),
        test,
        cutoff,
        info,
    )


def _user_order(interactions: pl.DataFrame) -> pl.DataFrame:
    return interactions.with_row_index("_row").sort("user_id", "timestamp", "_row")


def leave_last_out_split(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    users: pl.DataFrame | None,
    config: LeaveLastOutConfig,
    positive_events: tuple[str, ...] | None = None,
) -> Split:
    """Per user, hold out the last positive on an item the user had not interacted with before."""
    ordered = _user_order(interactions).with_columns(
        positive_expr(positive_events).alias("_pos"),
        pl.int_range(pl.len()).over("user_id").alias("_seq"),
    )
    first_pos = ordered.filter("_pos").with_columns(
        pl.col("_seq").min().over("user_id", "item_id").alias("_first_seq")
    )
    targets = (
        first_pos.filter(pl.col("_seq") == pl.col("_first_seq"))
        .group_by("user_id")
        .agg(pl.all().sort_by("_seq").last())
        .select("user_id", "item_id", "timestamp", pl.col("_seq").alias("_target_seq"))
    )
    # A target needs at least one earlier positive of the same user; otherwise the user's rows
    # all stay in training and the user has no test query.
    earlier = ordered.filter("_pos").group_by("user_id").agg(pl.col("_seq").min().alias("_s0"))
    targets = targets.join(earlier, on="user_id").filter(pl.col("_target_seq") > pl.col("_s0"))
    with_target = ordered.join(targets.select("user_id", "_target_seq"), on="user_id", how="left")
    train = with_target.filter(
        pl.col("_target_seq").is_null() | (pl.col("_seq") < pl.col("_target_seq"))
    )
    dropped_after = with_target.height - train.height - targets.height
    train = train.sort("_row").drop("_row", "_pos", "_seq", "_target_seq")
    test = targets.select("user_id", "item_id", "timestamp", pl.col("timestamp").alias("query_ts"))
    as_of = _time_range(interactions)[1] + 1
    info = {
        "kind": "leave_last_out",
        "train_rows": train.height,
        "test_users": test.height,
        "dropped_rows_after_target": int(dropped_after),
    }
    return Split(train, items, users, test, as_of, info)


def random_ratio_split(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    users: pl.DataFrame | None,
    config: RandomRatioConfig,
    positive_events: tuple[str, ...] | None = None,
) -> Split:
    """RecBole "general": per user, shuffle distinct positive items and cut by ``ratios``."""
    ratios = np.asarray(config.ratios, dtype=np.float64)
    if np.any(ratios < 0) or not np.isclose(ratios.sum(), 1.0):
        raise DataError(f"split ratios must be non-negative and sum to 1, got {config.ratios}")
    pos = (
        interactions.filter(positive_expr(positive_events))
        .sort("timestamp")
        .unique(["user_id", "item_id"], keep="first", maintain_order=True)
        .sort("user_id", "timestamp", "item_id")
    )
    rng = np.random.default_rng(config.seed)
    pos = pos.with_columns(pl.Series("_rand", rng.random(pos.height)))
    pos = pos.with_columns(
        pl.col("_rand").rank("ordinal").over("user_id").alias("_r"),
        pl.len().over("user_id").alias("_n"),
    )
    # RecBole rounds the boundaries per user: train = ceil-free int(n * r0), etc.
    n = pl.col("_n").cast(pl.Float64)
    train_end = (n * ratios[0]).floor()
    valid_end = (n * (ratios[0] + ratios[1])).floor()
    part = (
        pl.when(pl.col("_r") <= train_end)
        .then(pl.lit("train"))
        .when(pl.col("_r") <= valid_end)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("test"))
    )
    pos = pos.with_columns(part.alias("_part"))
    train = pos.filter(pl.col("_part") == "train").drop("_rand", "_r", "_n", "_part")
    test = pos.filter(pl.col("_part") == "test")
    as_of = _time_range(interactions)[1] + 1
    test = test.select(
        "user_id", "item_id", "timestamp", pl.lit(as_of, dtype=pl.Int64).alias("query_ts")
    )
    info = {
        "kind": "random_ratio",
        "ratios": list(config.ratios),
        "seed": config.seed,
        "train_rows": train.height,
        "valid_rows": int((pos["_part"] == "valid").sum()),
        "test_positive_rows": test.height,
    }
    masked = pos.filter(pl.col("_part") == "valid").select("user_id", "item_id")
    return Split(train, items, users, test, as_of, info, masked)


def make_split(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    users: pl.DataFrame | None,
    config: TemporalSplitConfig | LeaveLastOutConfig | RandomRatioConfig,
    positive_events: tuple[str, ...] | None = None,
) -> Split:
    """Dispatch on ``config.kind``."""
    if interactions.height == 0:
        raise DataError("no interactions to split")
    match config:
        case TemporalSplitConfig():
            return temporal_split(interactions, items, users, config, positive_events)
        case LeaveLastOutConfig():
            return leave_last_out_split(interactions, items, users, config, positive_events)
        case RandomRatioConfig():
            return random_ratio_split(interactions, items, users, config, positive_events)
