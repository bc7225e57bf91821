"""Measurements of the planted periodic interests: is the periodicity there, and how much does
a long history know that the last N events do not?

Everything here reads a log plus the ground truth (:attr:`SimulatedData.periodic_interests`),
so the tests that check the planting and the benchmark that sizes the achievable gain
(``benchmarks/long_interest_signal.py``) measure the same quantities. Events are the positive
rows (every event but impressions, :func:`funnelrec.data.events.positive_expr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.events import positive_expr
from funnelrec.data.simulator.core import SimulatedData

PROBE_COLUMNS = (
    "n_before",
    "target",
    "engaged",
    "cat_in_last_n",
    "cat_in_history",
    "target_in_last_n",
    "target_in_history",
    "last_n_top1",
    "history_top1",
    "last_n_distinct",
    "history_distinct",
)
"""Columns :func:`history_probes` adds to each probe."""


def category_events(data: SimulatedData) -> pl.DataFrame:
    """``user_id, timestamp, category`` of every positive event, sorted by user then time.

    Example:
        >>> from funnelrec.data.simulator import SimulatorConfig, simulate
        >>> category_events(simulate(SimulatorConfig.for_interactions(5_000))).columns
        ['user_id', 'timestamp', 'category']
    """
    return (
        data.interactions.filter(positive_expr(None))
        .join(data.items.select("item_id", "category"), on="item_id")
        .select("user_id", "timestamp", "category")
        .sort("user_id", "timestamp", maintain_order=True)
    )


def return_shares(events: pl.DataFrame, periodic: pl.DataFrame, gap_s: int) -> dict[str, float]:
    """Share of events that come back to a category after more than ``gap_s`` without it.

    Among the events of a (user, category) pair that have an earlier event in the same pair,
    the share whose previous one is more than ``gap_s`` earlier. A periodic category returns
    after each quiet spell; an ordinary interest is either steady (small gaps) or occasional.

    Returns:
        ``planted`` (the planted pairs), ``planted_users_other`` (the other categories of
        planted users) and ``other_users`` (every pair of users without periodic categories).
    """
    gaps = events.with_columns(
        pl.col("timestamp").diff().over("user_id", "category").alias("gap")
    ).drop_nulls("gap")
    pairs = periodic.select("user_id", "category", pl.lit(True).alias("planted_pair"))
    planted_users = periodic.select("user_id").unique().with_columns(pl.lit(True).alias("pu"))
    labelled = (
        gaps.join(pairs, on=["user_id", "category"], how="left")
        .join(planted_users, on="user_id", how="left")
        .with_columns(
            pl.when(pl.col("planted_pair"))
            .then(pl.lit("planted"))
            .when(pl.col("pu"))
            .then(pl.lit("planted_users_other"))
            .otherwise(pl.lit("other_users"))
            .alias("group")
        )
    )
    shares = labelled.group_by("group").agg((pl.col("gap") > gap_s).mean().alias("share"))
    found = dict(shares.iter_rows())
    return {g: float(found.get(g, float("nan"))) for g in _GROUPS}


_GROUPS = ("planted", "planted_users_other", "other_users")


def in_burst_share(events: pl.DataFrame, windows: pl.DataFrame) -> float:
    """Share of the planted pairs' events that fall inside one of the pair's bursts.

    Compare with the time share the bursts cover (``burst_s / period_s``): without planting,
    an event would land in a burst about that often.
    """
    pairs = windows.select("user_id", "category").unique()
    planted = events.join(pairs, on=["user_id", "category"])
    if planted.height == 0:
        return float("nan")
    starts = windows.sort("burst_start").select("user_id", "category", "burst_start", "burst_end")
    matched = planted.sort("timestamp").join_asof(
        starts,
        left_on="timestamp",
        right_on="burst_start",
        by=["user_id", "category"],
        strategy="backward",
        check_sortedness=False,  # both sides are sorted by time; `by` hides that from polars
    )
    inside = matched["burst_end"].is_not_null() & (matched["timestamp"] < matched["burst_end"])
    return float(np.mean(inside.to_numpy()))


@dataclass(frozen=True, slots=True)
class _UserLog:
    """Positive events as per-user CSR arrays (categories as dense codes)."""

    ptr: NDArray[np.int64]  # [max user id + 2]
    ts: NDArray[np.int64]
    cat: NDArray[np.int64]
    names: list[str]


def _user_log(events: pl.DataFrame) -> _UserLog:
    names = sorted(events["category"].unique().to_list())
    code = {name: i for i, name in enumerate(names)}
    users = events["user_id"].to_numpy()
    top = int(users.max()) if users.shape[0] else 0
    ptr = np.searchsorted(users, np.arange(top + 2), side="left").astype(np.int64)
    cat = events["category"].replace_strict(code, return_dtype=pl.Int64).to_numpy()
    return _UserLog(ptr=ptr, ts=events["timestamp"].to_numpy(), cat=cat, names=names)


def _probe_row(log: _UserLog, user: int, at: int, until: int, c: int, last_n: int) -> tuple:
    """The :data:`PROBE_COLUMNS` of one probe (see :func:`history_probes`)."""
    n_cat = len(log.names)
    lo, hi = (int(log.ptr[user]), int(log.ptr[user + 1])) if user + 1 < log.ptr.shape[0] else (0, 0)
    p = lo + int(np.searchsorted(log.ts[lo:hi], at, side="left"))
    q = lo + int(np.searchsorted(log.ts[lo:hi], until, side="left"))
    hist, last = log.cat[lo:p], log.cat[max(lo, p - last_n) : p]
    target = int(log.cat[p]) if p < q else -1
    h_count = np.bincount(hist, minlength=n_cat)
    l_count = np.bincount(last, minlength=n_cat)
    return (
        p - lo,
        log.names[target] if target >= 0 else None,
        bool(c >= 0 and np.any(log.cat[p:q] == c)),
        bool(c >= 0 and l_count[c] > 0),
        bool(c >= 0 and h_count[c] > 0),
        bool(target >= 0 and l_count[target] > 0),
        bool(target >= 0 and h_count[target] > 0),
        log.names[int(l_count.argmax())] if last.shape[0] else None,
        log.names[int(h_count.argmax())] if hist.shape[0] else None,
        int((l_count > 0).sum()),
        int((h_count > 0).sum()),
    )


def history_probes(events: pl.DataFrame, probes: pl.DataFrame, last_n: int = 50) -> pl.DataFrame:
    """What the last ``last_n`` events and the full history say at each probe time.

    Args:
        events: :func:`category_events`.
        probes: ``user_id, at, until`` (Int64) and ``category`` (String or null: the category
            under study, e.g. the planted one of a burst ``[at, until)``).
        last_n: the short history a short-sequence model sees.

    Returns:
        ``probes`` plus :data:`PROBE_COLUMNS`: ``n_before`` (events before ``at``), ``target``
        (category of the first event in ``[at, until)``, null if none), ``engaged`` (any event in
        ``category`` in ``[at, until)``), ``cat_in_last_n`` / ``cat_in_history`` (``category``
        among the last ``last_n`` / all events before ``at``), ``target_in_last_n`` /
        ``target_in_history`` (the same for ``target``), ``last_n_top1`` / ``history_top1``
        (the most frequent category there) and ``last_n_distinct`` / ``history_distinct``
        (how many categories there).
    """
    log = _user_log(events)
    code = {name: i for i, name in enumerate(log.names)}
    rows = [
        _probe_row(log, user, at, until, code.get(c, -1) if c is not None else -1, last_n)
        for user, at, until, c in probes.select("user_id", "at", "until", "category").iter_rows()
    ]
    added = pl.DataFrame(
        rows,
        schema={
            "n_before": pl.Int64,
            "target": pl.String,
            "engaged": pl.Boolean,
            "cat_in_last_n": pl.Boolean,
            "cat_in_history": pl.Boolean,
            "target_in_last_n": pl.Boolean,
            "target_in_history": pl.Boolean,
            "last_n_top1": pl.String,
            "history_top1": pl.String,
            "last_n_distinct": pl.Int64,
            "history_distinct": pl.Int64,
        },
        orient="row",
    )
    return pl.concat([probes, added], how="horizontal")


def burst_probes(windows: pl.DataFrame, start: int, end: int) -> pl.DataFrame:
    """One probe per burst that starts inside ``[start, end)``: ``user_id, at`` (the burst's
    start), ``until`` (its end, cut at ``end``) and ``category`` (the periodic category)."""
    return windows.filter(pl.col("burst_start").is_between(start, end, closed="left")).select(
        "user_id",
        pl.col("burst_start").alias("at"),
        pl.col("burst_end").clip(upper_bound=end).alias("until"),
        "category",
    )


def oracle_hits(probes: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """The ground-truth predictor: the user's periodic categories in burst at ``at``.

    A perfect long-sequence model could recover them from the history (the periods repeat), so
    this is an upper bound on what such a model adds at a probe.

    Returns:
        One row per probe (same order): ``oracle_hit`` (``target`` is one of those categories;
        null without a target) and ``oracle_size`` (how many there are, 0 for a user without
        periodic categories).
    """
    keyed = probes.select("user_id", "at", "target").with_row_index("row")
    live = (
        keyed.join(windows, on="user_id")
        .filter((pl.col("burst_start") <= pl.col("at")) & (pl.col("at") < pl.col("burst_end")))
        .group_by("row")
        .agg(
            (pl.col("category") == pl.col("target")).any().alias("hit"),
            pl.len().cast(pl.Int64).alias("oracle_size"),
        )
    )
    return (
        keyed.join(live, on="row", how="left")
        .sort("row")
        .select(
            pl.when(pl.col("target").is_null())
            .then(None)
            .otherwise(pl.col("hit").fill_null(False))
            .alias("oracle_hit"),
            pl.col("oracle_size").fill_null(0),
        )
    )
