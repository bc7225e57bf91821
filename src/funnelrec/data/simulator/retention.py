"""Retention in the simulator: whether a user returns the next day depends on how satisfied
today's plays left them (:class:`~funnelrec.data.simulator.watch_config.RetentionConfig`).

Two uses of one rule (:func:`return_probability`):

* :func:`thin_by_retention` (``watch.retention.enabled``): a user who does not return loses
  the next day's sessions from the simulated log, day after day;
* :func:`expected_return` (evaluation): the next-day return probability of users shown a
  ranked list, from the expected satisfaction of what they would play of it. This is how a
  report measures long-term engagement of a ranking that offline click metrics cannot see.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.catalog import Catalog
from funnelrec.data.simulator.config import DAY_S, SimulatorConfig
from funnelrec.data.simulator.population import Population
from funnelrec.data.simulator.watch import WatchTruth, add_watch, build_watch_truth
from funnelrec.data.simulator.watch_config import RetentionConfig

_STREAM = 0x5245  # "RE": retention's own random stream


def return_probability(
    satisfaction: NDArray[np.float64], config: RetentionConfig
) -> NDArray[np.float64]:
    """``[...]`` next-day return probability after a day of the given satisfaction.

    Example:
        >>> cfg = RetentionConfig()
        >>> p = return_probability(np.array([-2.0, 0.0, 2.0]), cfg)
        >>> bool(p[0] < p[1] < p[2]), round(float(p[1]), 2)
        (True, 0.6)
    """
    base = np.log(config.base_return / (1.0 - config.base_return))
    shift = np.clip(
        config.sensitivity * np.asarray(satisfaction), -config.max_shift, config.max_shift
    )
    return 1.0 / (1.0 + np.exp(-(base + shift)))


def play_satisfaction(neutral_fraction: float) -> pl.Expr:
    """Per row: ``watched fraction - neutral_fraction`` on plays, 0 elsewhere (an expression
    over ``play_duration`` / ``video_duration``)."""
    fraction = pl.col("play_duration") / pl.col("video_duration")
    return (fraction - neutral_fraction).fill_null(0.0)


def thin_by_retention(
    interactions: pl.DataFrame, config: RetentionConfig, start: int, seed: int
) -> pl.DataFrame:
    """Drop the sessions of the days a user did not come back on.

    A session belongs to the day it starts on (days counted from ``start``). For each user,
    day by day: a day with sessions follows a kept day with sessions only with probability
    :func:`return_probability` of that previous day's satisfaction; otherwise its sessions
    are dropped, and the next day is judged as following a day without activity (kept).

    Args:
        interactions: a simulated log with plays (``play_duration``, ``video_duration``,
            ``session_id``, 1-based ``user_id``).
        config: the retention model.
        start: the simulation's start (unix s).
        seed: the simulation's seed (the stream is ``[seed, _STREAM]``).

    Returns:
        The rows of the kept sessions, in their order.
    """
    day = ((pl.col("timestamp").min().over("session_id") - start) // DAY_S).cast(pl.Int64)
    keyed = interactions.with_columns(
        day.alias("_day"),
        play_satisfaction(config.neutral_fraction).alias("_sat"),
    )
    per_day = keyed.group_by("user_id", "_day").agg(pl.col("_sat").sum())
    users = per_day["user_id"].to_numpy() - 1
    days = per_day["_day"].to_numpy()
    n_users, n_days = int(users.max()) + 1, int(days.max()) + 1
    active = np.zeros((n_users, n_days), dtype=bool)
    active[users, days] = True
    sat = np.zeros((n_users, n_days))
    sat[users, days] = per_day["_sat"].to_numpy()
    draws = np.random.default_rng([seed, _STREAM]).random((n_users, n_days))
    kept = np.zeros_like(active)
    kept[:, 0] = active[:, 0]
    for d in range(1, n_days):  # a loop over days, vectorised over users
        returns = draws[:, d] < return_probability(sat[:, d - 1], config)
        kept[:, d] = active[:, d] & (~kept[:, d - 1] | returns)
    keep_pair = kept[keyed["user_id"].to_numpy() - 1, keyed["_day"].to_numpy()]
    return keyed.filter(pl.Series(keep_pair)).drop("_day", "_sat")


def expected_return(
    truth: WatchTruth, users: NDArray[np.integer], items: NDArray[np.integer]
) -> NDArray[np.float64]:
    """Next-day return probability of users shown ranked lists, from their expected plays.

    The expected satisfaction of a list is ``sum_k P(click at k) * (E[fraction] -
    neutral_fraction)`` over its positions (:meth:`WatchTruth.click_probability`,
    :meth:`WatchTruth.mean_fraction`): disliked items, when clicked, are skipped and lower it.

    Args:
        truth: the simulation's watch ground truth (``truth.config.retention``).
        users: ``[B]`` user indices (``user_id - 1``).
        items: ``[B, K]`` item indices (``item_id - 1``) in list order; -1 = padding.

    Returns:
        ``[B]`` return probabilities.

    Example:
        >>> from funnelrec.data.simulator import SimulatorConfig, simulate
        >>> from funnelrec.data.simulator.watch_config import WatchConfig
        >>> cfg = SimulatorConfig.for_interactions(5_000).model_copy(
        ...     update={"watch": WatchConfig(enabled=True)})
        >>> p = expected_return(simulate(cfg).watch, np.array([0]), np.array([[0, 1, -1]]))
        >>> 0 < float(p[0]) < 1
        True
    """
    items = np.asarray(items)
    valid = items >= 0
    safe = np.where(valid, items, 0)
    rows = np.broadcast_to(np.asarray(users)[:, None], items.shape)
    positions = np.broadcast_to(np.arange(items.shape[1]), items.shape)
    gain = truth.click_probability(rows, safe, positions) * (
        truth.mean_fraction(rows, safe) - truth.config.retention.neutral_fraction
    )
    return return_probability(np.where(valid, gain, 0.0).sum(axis=1), truth.config.retention)


def watch_and_retention(
    config: SimulatorConfig, catalog: Catalog, population: Population, interactions: pl.DataFrame
) -> tuple[pl.DataFrame, WatchTruth | None]:
    """The log with plays, durations and likes (``config.watch``), thinned by retention when
    that is on, and the watch ground truth; the log unchanged and None when watch is off."""
    if not config.watch.enabled:
        return interactions, None
    truth = build_watch_truth(config, catalog, population)
    out = add_watch(interactions, truth, config.seed)
    if config.watch.retention.enabled:
        out = thin_by_retention(out, config.watch.retention, config.start_timestamp, config.seed)
    return out, truth
