"""Shared machinery of the dense point-in-time statistics: what every statistic reads
(:class:`StatInputs`) and the column families they share (window counts, recency, CTR).

Every column is ``[N]`` float64, one value per sample, computed from events strictly before
the sample's time (the lookups of :mod:`funnelrec.features.sequence` stop there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit.config import PointInTimeConfig
from funnelrec.features.pit.log import LogArrays, relative_times
from funnelrec.features.pit.prepared import PreparedLog
from funnelrec.features.pit.state import FittedState

Q = TypeVar("Q")
Column = NDArray[np.float64]


class EventCounter(Protocol[Q]):
    """Point-in-time lookups over events of one kind (``KeyedEvents``, ``MergedEvents``)."""

    def query(self, key: NDArray[np.int64], t: NDArray[np.int64]) -> Q: ...

    def count_before(self, q: Q) -> NDArray[np.int64]: ...

    def count_since(self, q: Q, t_lo: NDArray[np.int64]) -> NDArray[np.int64]: ...

    def last_time(self, q: Q) -> tuple[NDArray[np.int64], NDArray[np.bool_]]: ...

    def first_time(self, q: Q) -> tuple[NDArray[np.int64], NDArray[np.bool_]]: ...


@dataclass(frozen=True)
class StatInputs:
    """The samples and the log, as arrays, for one dense-feature computation.

    Attributes:
        config: the feature settings.
        state: the fitted state (positive rule, categories, global CTR).
        user / item: ``[N]`` int64 sample keys (may be unknown: < 0 or >= the fitted sizes).
        s_abs: ``[N]`` int64 sample unix seconds.
        s_t: ``[N]`` int64 sample times relative to the reference time.
        l_user / l_item: ``[E]`` int64 event keys.
        l_t: ``[E]`` int64 event times relative to the reference time.
        flags: ``{"pos", "imp", "ctr"}`` -> ``[E]`` bool event flags.
        prepared: with a :class:`PreparedLog`, the log holds only the samples' users' rows
            then the extra events, and item-side lookups read the prepared index.
    """

    config: PointInTimeConfig
    state: FittedState
    user: NDArray[np.int64]
    item: NDArray[np.int64]
    s_abs: NDArray[np.int64]
    s_t: NDArray[np.int64]
    l_user: NDArray[np.int64]
    l_item: NDArray[np.int64]
    l_t: NDArray[np.int64]
    flags: dict[str, NDArray[np.bool_]]
    prepared: PreparedLog | None

    @classmethod
    def build(
        cls,
        config: PointInTimeConfig,
        state: FittedState,
        samples: pl.DataFrame,
        log: LogArrays,
        prepared: PreparedLog | None,
    ) -> StatInputs:
        """Arrays of ``samples`` (N > 0) and ``log`` (flags under the features' rules), times
        relative to the prepared index's t0 when there is one (so its stored lookups apply),
        else to the earliest time."""
        s_abs = samples["timestamp"].to_numpy().astype(np.int64)
        _, s_t, l_t = relative_times(s_abs, log, None if prepared is None else prepared.t0)
        return cls(
            config=config,
            state=state,
            user=samples["user_idx"].to_numpy().astype(np.int64),
            item=samples["item_idx"].to_numpy().astype(np.int64),
            s_abs=s_abs,
            s_t=s_t,
            l_user=log.user,
            l_item=log.item,
            l_t=l_t,
            flags=log.flags,
            prepared=prepared,
        )


def window_counts(x: StatInputs, ev: EventCounter[Q], q: Q) -> dict[int, NDArray[np.int64]]:
    """``[N]`` events per window ``[t - w, t)``, keyed by ``w`` (each window searched once)."""
    return {w: ev.count_since(q, x.s_t - w) for w in x.config.windows_s}


def window_columns(
    x: StatInputs,
    ev: EventCounter[Q],
    q: Q,
    *,
    recency: bool,
    counts: dict[int, NDArray[np.int64]] | None = None,
) -> list[Column]:
    """``log1p`` counts per window and all time, then (``recency``) ``log1p`` seconds since
    the last event, capped at ``recency_cap_s`` (also the value with no event). ``counts``:
    :func:`window_counts`, when the caller has them."""
    cfg = x.config
    counts = window_counts(x, ev, q) if counts is None else counts
    cols = [np.log1p(counts[w]) for w in cfg.windows_s]
    cols.append(np.log1p(ev.count_before(q)))
    if recency:
        cap = float(cfg.recency_cap_s)
        last, has = ev.last_time(q)
        cols.append(np.log1p(np.where(has, np.minimum(x.s_t - last, cap), cap)))
    return cols


def ctr_columns(
    x: StatInputs, clicks: EventCounter[Any], imps: EventCounter[Any], key: NDArray[np.int64]
) -> list[Column]:
    """``log1p`` impressions of ``key`` and its CTR, smoothed toward the global CTR with
    ``ctr_prior`` pseudo-impressions and capped at 1."""
    n_imp = imps.count_before(imps.query(key, x.s_t))
    n_click = clicks.count_before(clicks.query(key, x.s_t))
    prior = x.config.ctr_prior
    ctr = (n_click + prior * x.state.global_ctr) / np.maximum(n_imp + prior, 1e-9)
    return [np.log1p(n_imp), np.minimum(ctr, 1.0)]


def lifetime_columns(
    x: StatInputs, ev: EventCounter[Q], q: Q, counts: dict[int, NDArray[np.int64]]
) -> list[Column]:
    """``log1p`` seconds since the key's first event (capped like recency: how long the item
    has been around when no ``created_at`` says so) and its trend: events in the shortest
    window over events in the longest (rising items near 1, fading ones near 0). ``counts``:
    the key's :func:`window_counts`."""
    cfg = x.config
    cap = float(cfg.recency_cap_s)
    first, has = ev.first_time(q)
    age = np.log1p(np.where(has, np.minimum(x.s_t - first, cap), cap))
    short, long = counts[min(cfg.windows_s)], counts[max(cfg.windows_s)]
    return [age, short / np.maximum(long, 1)]


def side_columns(
    x: StatInputs,
    key: NDArray[np.int64],
    events: Callable[[str], EventCounter[Any]],
    *,
    lifetime: bool = False,
) -> tuple[list[Column], NDArray[np.int64]]:
    """One side's (user's or item's) columns: positives per window and all time, recency,
    (``lifetime``) first-event age and trend, and with impressions, impressions and CTR.

    Args:
        x: the inputs.
        key: ``[N]`` the samples' keys on this side.
        events: flag kind (``"pos"``, ``"ctr"``, ``"imp"``) -> lookups of that side's events.
        lifetime: add :func:`lifetime_columns`.

    Returns:
        The columns and ``[N]`` all-time positives of each sample's key.
    """
    pos = events("pos")
    q = pos.query(key, x.s_t)
    counts = window_counts(x, pos, q)  # the lifetime trend reads two of them again
    cols = window_columns(x, pos, q, recency=True, counts=counts)
    if lifetime:
        cols += lifetime_columns(x, pos, q, counts)
    if x.state.has_impressions:
        cols += ctr_columns(x, events("ctr"), events("imp"), key)
    return cols, pos.count_before(q)
