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

from funnelrec.arrays import positions_of, unique_sorted

logger = logging.getLogger(__name__)

TS_SPAN = (1 << 32) - 1  # times are stored relative to the earliest one in 32 bits


@dataclass(frozen=True, slots=True)
class IndexedExposures:
    """Exposures and events indexed for matching (``N`` exposures, ``E`` events, ``M``
    exposures whose (user, item) pair has an event: the only ones a label can reach).

    Attributes:
        rows: ``[M]`` the exposures whose pair has an event (ascending).
        key: ``[M]`` int64 ``pair rank << 32`` of each of ``rows``.
        rel: ``[N]`` int64 exposure time relative to ``t0``.
        bound: ``[M]`` int64 inclusive upper attribution bound of each of ``rows`` (relative
            time).
        t0: the earliest valid exposure time.
        e_rank: ``[E]`` int64 pair rank of each event (meaningful where ``e_keep``).
        e_ts: ``[E]`` int64 event time.
        e_keep: ``[E]`` events that can label an exposure.
    """

    rows: NDArray[np.intp]
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

    Only the exposures whose pair has an event are indexed: a few percent of an evaluation's
    candidates, so the sorts and searches that follow are that much smaller (on 20M candidate
    rows they were a search of every row in a sorted array of every row, with a cache miss
    per step).

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
    e_user, e_item, e_ts = key_columns(events)
    e_code = pair_codes(e_user, e_item)
    e_valid = (e_user >= 0) & (e_item >= 0)
    s_code = pair_codes(s_user, s_item)
    rows = np.flatnonzero(valid & positions_of(unique_sorted(e_code[e_valid]), s_code)[1])
    t0 = int(s_ts[valid].min())
    if rows.shape[0] == 0:
        return None
    pairs = unique_sorted(s_code[rows])
    s_rank = np.searchsorted(pairs, s_code[rows])
    e_rank = np.minimum(np.searchsorted(pairs, e_code), pairs.shape[0] - 1)
    e_keep = e_valid & (pairs[e_rank] == e_code) & (e_ts >= t0)
    if not e_keep.any():
        return None
    span = max(int(s_ts[valid].max()), int(e_ts[e_keep].max())) - t0
    if span >= TS_SPAN:
        raise ValueError(f"timestamps span {span} s, more than the 2**32 s this labeller handles")
    rel = s_ts - t0
    bound = _attribution_bound(rel[rows], s_rank, attribution)
    return IndexedExposures(rows, s_rank << 32, rel, bound, t0, e_rank, e_ts, e_keep)


def window_ranges(
    ix: IndexedExposures, mask: NDArray[np.bool_], window_s: float | None
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The events of ``mask`` ``[E]`` that fall in each exposure's window.

    An event counts for an exposure of its pair when ``t_exposure <= t <= t_exposure +
    window_s`` (``None``: no end) and ``t`` is within the attribution bound.

    Returns:
        ``(events [K], lo [N], hi [N], hit [N])``: indices into the events (sorted by pair,
        then time); exposure ``n``'s matching events are ``events[lo[n]:hi[n]]`` (empty where
        not ``hit``); ``hit`` marks exposures with at least one.
    """
    chosen = np.flatnonzero(ix.e_keep & mask)
    codes = (ix.e_rank[chosen] << 32) | (ix.e_ts[chosen] - ix.t0)
    order = np.argsort(codes, kind="stable")
    codes, chosen = codes[order], chosen[order]
    rel = ix.rel[ix.rows]
    hi = ix.bound if window_s is None else np.minimum(ix.bound, rel + int(window_s))
    hi = np.minimum(hi, TS_SPAN)
    lo_i = np.searchsorted(codes, ix.key | rel, side="left")
    hi_i = np.searchsorted(codes, ix.key | np.maximum(hi, 0), side="right")
    hit_m = (hi >= rel) & (hi_i > lo_i)
    n = ix.rel.shape[0]
    lo, stop, hit = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.bool_)
    lo[ix.rows] = lo_i
    stop[ix.rows] = np.where(hit_m, hi_i, lo_i)
    hit[ix.rows] = hit_m
    return chosen, lo, stop, hit


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


def _attribution_bound(
    rel: NDArray[np.int64], s_rank: NDArray[np.int64], attribution: Literal["last", "all"]
) -> NDArray[np.int64]:
    """``[M]`` upper attribution bound per indexed exposure (inclusive, relative time).

    ``"last"``: the next exposure of the same pair minus 1 (so an event credits only the
    latest exposure at or before it); ``"all"`` and a pair's last exposure: no bound.
    """
    bound = np.full(rel.shape[0], TS_SPAN, dtype=np.int64)
    if attribution == "last":
        order = np.lexsort((rel, s_rank))
        same = s_rank[order[1:]] == s_rank[order[:-1]]
        bound[order[:-1][same]] = rel[order[1:][same]] - 1
    return bound
