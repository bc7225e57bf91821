"""Long-term periodic interests: which users get them, and the ground truth evaluation reads.

A planted user has 1-3 *periodic categories* (``SimulatorConfig.long_term``). Each has a period
``P``, a burst length ``B < P`` and a phase ``0 <= phi < P``: bursts run over
``[origin + k * P, origin + k * P + B)`` for every integer ``k``, with
``origin = start_timestamp + phi``. The compiled session loop
(:func:`~funnelrec.data.simulator.kernel.simulate_chunk`) boosts the category during a burst and
suppresses it between bursts, through :func:`burst_mask` and :func:`periodic_interest` here.

The draws come from a generator of their own (``default_rng([seed, tag])``, as the onboarding
tags do), never from the simulation's main generator: with the feature off nothing is drawn and
the log is bit-identical to a simulator without it; with it on, only planted users change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.catalog import category_names
from funnelrec.data.simulator.config import DAY_S, SimulatorConfig
from funnelrec.data.simulator.population import Population

_STREAM_TAG = 0x10C7  # the planting's own stream: default_rng([seed, _STREAM_TAG])

PERIODIC_SCHEMA = pl.Schema(
    {
        "user_id": pl.Int64,
        "category": pl.String,
        "period_s": pl.Int64,
        "burst_s": pl.Int64,
        "phase_s": pl.Int64,
        "burst_origin": pl.Int64,
    }
)
"""Columns of the ground-truth table :attr:`SimulatedData.periodic_interests`."""


@dataclass(frozen=True, slots=True)
class PeriodicInterests:
    """Planted periodic categories grouped by user (``U`` users, ``P`` planted pairs).

    Attributes:
        user_ptr: ``[U + 1]`` int64 offsets of each user's periodic categories.
        category: ``[P]`` int32 category index.
        period: ``[P]`` int64 seconds between the starts of two bursts.
        burst: ``[P]`` int64 length of a burst (s), shorter than the period.
        phase: ``[P]`` int64 offset (s) of a burst start from the span's start, in ``[0, P)``.
    """

    user_ptr: NDArray[np.int64]
    category: NDArray[np.int32]
    period: NDArray[np.int64]
    burst: NDArray[np.int64]
    phase: NDArray[np.int64]

    @property
    def n_pairs(self) -> int:
        return int(self.category.shape[0])


def no_periodic(n_users: int) -> PeriodicInterests:
    """No user has a periodic category (the default)."""
    empty = np.zeros(0, dtype=np.int64)
    return PeriodicInterests(
        user_ptr=np.zeros(n_users + 1, dtype=np.int64),
        category=np.zeros(0, dtype=np.int32),
        period=empty,
        burst=empty.copy(),
        phase=empty.copy(),
    )


def _periodic_categories(
    rng: np.random.Generator, weights: NDArray[np.float64], counts: NDArray[np.int64]
) -> list[NDArray[np.int64]]:
    """Per user, ``counts[i]`` distinct categories drawn without replacement from ``weights[i]``
    (Gumbel top-k; a zero weight is never drawn)."""
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=weights.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    return [order[i, : counts[i]] for i in range(counts.shape[0])]


def plant_periodic(config: SimulatorConfig, population: Population) -> PeriodicInterests:
    """Choose the planted users and draw their periodic categories, periods, bursts, phases.

    The users are ``round(share_of_users * active users)`` of the active ones, uniformly. Their
    periodic categories follow their demographic group's category prior (things people like
    them buy), never their strongest initial interest (a main interest is not periodic).

    Args:
        config: the simulator config (``config.long_term`` and the time span).
        population: the users (cold flags, initial interests, group priors).

    Returns:
        The :class:`PeriodicInterests`; :func:`no_periodic` when the feature is off.
    """
    lt = config.long_term
    n = population.n_users
    if not lt.enabled:
        return no_periodic(n)
    rng = np.random.default_rng([config.seed, _STREAM_TAG])
    active = np.flatnonzero(~population.cold)
    n_planted = round(lt.share_of_users * active.shape[0])
    users = np.sort(rng.choice(active, size=n_planted, replace=False))
    counts = rng.integers(lt.min_categories, lt.max_categories, size=n_planted, endpoint=True)
    prior = np.diff(population.group_cum, axis=1, prepend=0.0)[population.group[users]]
    prior = np.maximum(prior, 0.0) + 1e-12
    prior[np.arange(n_planted), population.interest[users].argmax(axis=1)] = 0.0
    cats = _periodic_categories(rng, prior, counts)
    total = int(counts.sum())
    period = rng.uniform(lt.min_period_days, lt.max_period_days, size=total) * DAY_S
    burst = rng.uniform(lt.min_burst_days, lt.max_burst_days, size=total) * DAY_S
    phase = rng.random(total) * period
    per_user = np.zeros(n, dtype=np.int64)
    per_user[users] = counts
    user_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_user, out=user_ptr[1:])
    category = np.concatenate(cats) if cats else np.zeros(0, dtype=np.int64)
    return PeriodicInterests(
        user_ptr=user_ptr,
        category=category.astype(np.int32),
        period=np.round(period).astype(np.int64),
        burst=np.round(burst).astype(np.int64),
        phase=np.floor(phase).astype(np.int64),
    )


def periodic_table(config: SimulatorConfig, periodic: PeriodicInterests) -> pl.DataFrame:
    """The ground truth as a table (:data:`PERIODIC_SCHEMA`), one row per planted pair.

    ``burst_origin`` is the start of one burst (``start_timestamp + phase_s``); the pair's
    bursts start at ``burst_origin + k * period_s`` for every integer ``k`` and last
    ``burst_s`` seconds. Empty (with the schema) when the feature is off.

    Example:
        >>> cfg = SimulatorConfig.for_interactions(5_000)
        >>> periodic_table(cfg, no_periodic(3)).height
        0
    """
    counts = np.diff(periodic.user_ptr)
    user = np.repeat(np.arange(1, counts.shape[0] + 1, dtype=np.int64), counts)
    names = pl.Series("category", category_names(config.n_categories), dtype=pl.String)
    return pl.DataFrame(
        {
            "user_id": user,
            "category": names.gather(periodic.category.astype(np.uint32)),
            "period_s": periodic.period,
            "burst_s": periodic.burst,
            "phase_s": periodic.phase,
            "burst_origin": config.start_timestamp + periodic.phase,
        },
        schema=PERIODIC_SCHEMA,
    )


def burst_windows(periodic: pl.DataFrame, start: int, end: int) -> pl.DataFrame:
    """Every burst of every planted pair that overlaps ``[start, end)``.

    Args:
        periodic: the ground-truth table (:data:`PERIODIC_SCHEMA`).
        start: beginning of the time range (unix s).
        end: its end (exclusive).

    Returns:
        ``user_id, category, burst_start, burst_end`` (Int64, a burst covers
        ``[burst_start, burst_end)``, possibly beginning before ``start``), sorted by user,
        category and time.

    Example:
        >>> table = pl.DataFrame(
        ...     {"user_id": [1], "category": ["c01"], "period_s": [10], "burst_s": [2],
        ...      "phase_s": [3], "burst_origin": [3]}, schema=PERIODIC_SCHEMA)
        >>> burst_windows(table, 0, 25)["burst_start"].to_list()
        [3, 13, 23]
    """
    first = (start - pl.col("burst_origin") - pl.col("burst_s")) // pl.col("period_s") + 1
    last = (end - 1 - pl.col("burst_origin")) // pl.col("period_s")
    return (
        periodic.with_columns(pl.int_ranges(first, last + 1, dtype=pl.Int64).alias("k"))
        .explode("k")
        .drop_nulls("k")
        .select(
            "user_id",
            "category",
            (pl.col("burst_origin") + pl.col("k") * pl.col("period_s")).alias("burst_start"),
            (pl.col("burst_origin") + pl.col("k") * pl.col("period_s") + pl.col("burst_s")).alias(
                "burst_end"
            ),
        )
        .sort("user_id", "category", "burst_start")
    )


@numba.njit(cache=True)
def burst_mask(users, u, t, start):  # pragma: no cover - compiled
    """Bit ``j`` set when user ``u``'s ``j``-th periodic category is in a burst at ``t``."""
    lo = users.lt_ptr[u]
    mask = 0
    for j in range(lo, users.lt_ptr[u + 1]):
        r = (t - start - users.lt_phase[j]) % users.lt_period[j]
        if r < 0:
            r += users.lt_period[j]
        if r < users.lt_burst[j]:
            mask |= 1 << (j - lo)
    return mask


@numba.njit(cache=True)
def periodic_interest(theta, out, users, u, mask, p):  # pragma: no cover - compiled
    """Fill ``out`` with the interests a session of a planted user works with.

    A periodic category in burst takes ``burst_share`` of the mass (split among those in
    burst), so it is the likely session focus and its items the most relevant; one between
    bursts keeps ``off_burst_weight`` of its own interest. ``theta`` itself (which drifts) is
    left alone, so the schedule never leaks into the drift.
    """
    lo, hi = users.lt_ptr[u], users.lt_ptr[u + 1]
    for c in range(theta.shape[0]):
        out[c] = theta[c]
    n_on = 0
    for j in range(lo, hi):
        c = users.lt_cat[j]
        if (mask >> (j - lo)) & 1:
            out[c] = 0.0
            n_on += 1
        else:
            out[c] = theta[c] * p.lt_off_weight
    if n_on == 0:
        return
    rest = 0.0
    for c in range(out.shape[0]):
        rest += out[c]
    share = p.lt_burst_ratio * rest / n_on
    for j in range(lo, hi):
        if (mask >> (j - lo)) & 1:
            out[users.lt_cat[j]] = share
