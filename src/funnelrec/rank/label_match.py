"""Matching later events to exposures of the same (user, item): the window rule every label
reads, vectorised (sort + ``searchsorted`` on a combined ``pair << 32 | time`` key).

:func:`index_exposures` indexes exposures and events once; :func:`window_ranges` then gives,
for a subset of the events and a window, each exposure's range of matching events. The binary
labeller (:mod:`funnelrec.rank.labels`) and the duration targets (:mod:`funnelrec.rank.duration`)
both read these ranges, so an event is credited by one rule (window and attribution).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.arrays import unique_sorted

logger = logging.getLogger(__name__)

TS_SPAN = (1 << 32) - 1  # times are stored relative to the earliest one in 32 bits


@dataclass(frozen=True, slots=True)
class IndexedExposures:
    """Exposures and events indexed for matching (``N`` exposures, ``E`` events).

    Attributes:
        valid: ``[N]`` exposures with a user and an item index >= 0.
        key: ``[N]`` int64 ``pair rank << 32`` of each exposure (meaningful where valid).
        rel: ``[N]`` int64 exposure time relative to ``t0``.
        bound: ``[N]`` int64 inclusive upper attribution bound (relative time).
        t0: the earliest valid exposure time.
        e_rank: ``[E]`` int64 pair rank of each event (meaningful where ``e_keep``).
        e_ts: ``[E]`` int64 event time.
        e_keep: ``[E]`` events that can label an exposure.
    """

    valid: NDArray[np.bool_]
    key: NDArray[np.int64]
    rel: NDArray[np.int64]
    bound: NDArray[np.int64]
    t0: int
    e_rank: NDArray[np.int64]
    e_ts: NDArray[np.int64]
    e_keep: NDArray[np.bool_]


def index_exposures(
    exposures: pl.DataFrame, events: pl.DataFrame, attribution: Literal["last", "all"]
) -> IndexedExposures | None:
    """Index ``exposures`` (``user_idx, item_idx, timestamp``) against ``events`` (the same
    plus ``event``); None when no event can match any exposure.

    Raises:
        ValueError: the timestamps span more than 2**32 s.
    """
    if exposures.height == 0 or events.height == 0:
        return None
    s_user, s_item, s_ts = key_columns(exposures)
    valid = (s_user >= 0) & (s_item >= 0)
    if not valid.all():
        logger.warning(
            "%d exposures have a negative user_idx/item_idx and get label 0 "
            "(index the log with index_log to keep new ids)",
            int((~valid).sum()),
        )
    if not valid.any():
        return None
    pairs = unique_sorted(pair_codes(s_user[valid], s_item[valid]))
    s_rank = np.full(exposures.height, -1, dtype=np.int64)
    s_rank[valid] = np.searchsorted(pairs, pair_codes(s_user[valid], s_item[valid]))
    t0 = int(s_ts[valid].min())
    e_rank, e_ts, e_keep = _match_events(events, pairs, t0)
    if not e_keep.any():
        return None
    span = max(int(s_ts[valid].max()), int(e_ts[e_keep].max())) - t0
    if span >= TS_SPAN:
        raise ValueError(f"timestamps span {span} s, more than the 2**32 s this labeller handles")
    rel = s_ts - t0
    bound = _attribution_bound(rel, s_rank, valid, attribution)
    return IndexedExposures(valid, s_rank << 32, rel, bound, t0, e_rank, e_ts, e_keep)


def window_ranges(
    ix: IndexedExposures, mask: NDArray[np.bool_], window_s: float | None
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The events of ``mask`` ``[E]`` that fall in each exposure's window.

    An event counts for an exposure of its pair when ``t_exposure <= t <= t_exposure +
    window_s`` (``None``: no end) and ``t`` is within the attribution bound.

    Returns:
        ``(events [M], lo [N], hi [N], hit [N])``: indices into the events (sorted by pair,
        then time); exposure ``n``'s matching events are ``events[lo[n]:hi[n]]``; ``hit``
        marks exposures with at least one.
    """
    chosen = np.flatnonzero(ix.e_keep & mask)
    codes = (ix.e_rank[chosen] << 32) | (ix.e_ts[chosen] - ix.t0)
    order = np.argsort(codes, kind="stable")
    codes, chosen = codes[order], chosen[order]
    hi = ix.bound if window_s is None else np.minimum(ix.bound, ix.rel + int(window_s))
    hi = np.minimum(hi, TS_SPAN)
    lo_i = np.searchsorted(codes, ix.key | ix.rel, side="left")
    hi_i = np.searchsorted(codes, ix.key | np.maximum(hi, 0), side="right")
    hit = ix.valid & (hi >= ix.rel) & (hi_i > lo_i)
    return chosen, lo_i, np.where(hit, hi_i, lo_i), hit


def pair_codes(user: NDArray[np.integer], item: NDArray[np.integer]) -> NDArray[np.int64]:
    return (user.astype(np.int64) << 32) | item.astype(np.int64)


def key_columns(
    df: pl.DataFrame,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """``(user_idx [R], item_idx [R], timestamp [R])`` of ``df`` as int64."""
    return (
        df["user_idx"].to_numpy().astype(np.int64),
        df["item_idx"].to_numpy().astype(np.int64),
        df["timestamp"].to_numpy().astype(np.int64),
    )


def _match_events(
    events: pl.DataFrame, pairs: NDArray[np.int64], t0: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Locate each event's (user, item) pair among the exposed ``pairs`` ``[P]`` (sorted).

    Returns:
        ``(rank [E], timestamp [E], keep [E])``: the pair's index in ``pairs`` (clipped, only
        meaningful where ``keep``), the event time, and whether the event can label anything
        (valid ids, an exposed pair, not before the earliest exposure ``t0``).
    """
    e_user, e_item, e_ts = key_columns(events)
    e_code = pair_codes(e_user, e_item)
    e_rank = np.minimum(np.searchsorted(pairs, e_code), pairs.shape[0] - 1)
    e_keep = (e_user >= 0) & (e_item >= 0) & (pairs[e_rank] == e_code) & (e_ts >= t0)
    return e_rank, e_ts, e_keep


def _attribution_bound(
    rel: NDArray[np.int64],
    s_rank: NDArray[np.int64],
    valid: NDArray[np.bool_],
    attribution: Literal["last", "all"],
) -> NDArray[np.int64]:
    """``[N]`` upper attribution bound per exposure (inclusive, relative time).

    ``"last"``: the next exposure of the same pair minus 1 (so an event credits only the
    latest exposure at or before it); ``"all"`` and a pair's last exposure: no bound.
    """
    bound = np.full(rel.shape[0], TS_SPAN, dtype=np.int64)
    if attribution == "last":
        idx = np.flatnonzero(valid)
        order = idx[np.lexsort((rel[idx], s_rank[idx]))]
        same = s_rank[order[1:]] == s_rank[order[:-1]]
        bound[order[:-1][same]] = rel[order[1:][same]] - 1
    return bound
