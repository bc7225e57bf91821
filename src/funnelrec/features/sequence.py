"""Point-in-time lookups over an event log: counts in windows, last event, last-L sequences.

Events of one kind are sorted once by ``(key, time)`` into int64 codes ``key << 32 | t`` (``t``
relative to a reference time, so it fits 32 bits); every query "events of key ``k`` strictly
before time ``t``" is then one ``np.searchsorted`` over those codes, vectorised over all
samples. Nothing at or after a query's time can be read: the upper bound of every lookup is the
position of ``k << 32 | t`` with ``side="left"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

TIME_BITS = 32
TIME_MASK = (1 << TIME_BITS) - 1
MAX_KEY = (1 << 31) - 1


def dense_keys(
    sample_codes: NDArray[np.int64],
    event_codes: NDArray[np.int64],
    sample_valid: NDArray[np.bool_],
    event_valid: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Rank arbitrary int64 keys (e.g. ``user << 32 | category``) densely by the samples' keys.

    Only keys some sample asks for matter, so events with any other key are dropped (-1).

    Args:
        sample_codes: ``[N]`` int64 keys of the samples.
        event_codes: ``[E]`` int64 keys of the events.
        sample_valid: ``[N]`` False where a sample has no key (unknown user, no category).
        event_valid: ``[E]`` False for events to ignore.

    Returns:
        ``(sample_rank [N], event_rank [E])`` int64 in ``[0, n_distinct)``, -1 where invalid
        or (events) not asked for.

    Example:
        >>> s, e = dense_keys(np.array([50, 7, 50]), np.array([7, 9, 50]),
        ...     np.ones(3, bool), np.ones(3, bool))
        >>> s.tolist(), e.tolist()
        ([1, 0, 1], [0, -1, 1])
    """
    sample_rank = np.full(sample_codes.shape[0], -1, dtype=np.int64)
    event_rank = np.full(event_codes.shape[0], -1, dtype=np.int64)
    if not sample_valid.any():
        return sample_rank, event_rank
    uniq, inverse = np.unique(sample_codes[sample_valid], return_inverse=True)
    sample_rank[sample_valid] = inverse
    pos = np.minimum(np.searchsorted(uniq, event_codes), uniq.shape[0] - 1)
    hit = event_valid & (uniq[pos] == event_codes)
    event_rank[hit] = pos[hit]
    return sample_rank, event_rank


@dataclass(frozen=True)
class KeyedEvents:
    """Events of one kind sorted by ``(key, time)``.

    Attributes:
        codes: ``[E]`` sorted int64 ``key << 32 | t``.
        rows: ``[E]`` int64, the source row (index into the arrays given to :meth:`build`) of
            each sorted event; ties in time keep source order, so a later row is more recent.

    Example:
        >>> ev = KeyedEvents.build(np.array([0, 1, 0]), np.array([5, 3, 9]))
        >>> q = ev.query(np.array([0, 0, 1]), np.array([9, 10, 3]))
        >>> ev.count_before(q).tolist(), ev.count_since(q, np.array([0, 6, 0])).tolist()
        ([1, 2, 0], [1, 1, 0])
        >>> sample, slot, pos = ev.last_positions(q, 5)
        >>> sample.tolist(), slot.tolist(), ev.rows[pos].tolist()
        ([0, 1, 1], [0, 0, 1], [0, 2, 0])
    """

    codes: NDArray[np.int64]
    rows: NDArray[np.int64]

    @classmethod
    def build(
        cls,
        key: NDArray[np.integer],
        t: NDArray[np.integer],
        keep: NDArray[np.bool_] | None = None,
    ) -> KeyedEvents:
        """Index events ``[E]`` by non-negative ``key`` (< 2**31) and relative time ``t``.

        Rows with ``keep`` False or a negative key are left out.
        """
        key = np.asarray(key, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        ok = key >= 0 if keep is None else keep & (key >= 0)
        rows = np.flatnonzero(ok)
        if rows.shape[0] and (key[rows].max() > MAX_KEY or t[rows].max() > TIME_MASK):
            raise ValueError("key or relative time out of range (key < 2**31, time < 2**32 s)")
        codes = (key[rows] << TIME_BITS) | t[rows]
        order = np.argsort(codes, kind="stable")
        return cls(codes[order], rows[order])

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def query(self, key: NDArray[np.integer], t: NDArray[np.integer]) -> Query:
        """Positions of each sample's events strictly before ``t`` (negative key: none)."""
        key = np.asarray(key, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        safe = np.maximum(key, 0) << TIME_BITS
        start = np.searchsorted(self.codes, safe, side="left")
        end = np.searchsorted(self.codes, safe | t, side="left")
        end = np.where(key >= 0, end, start)
        return Query(safe, start, end)

    def count_before(self, q: Query) -> NDArray[np.int64]:
        """``[N]`` events of the key strictly before the query time (all time)."""
        return q.end - q.start

    def count_since(self, q: Query, t_lo: NDArray[np.integer]) -> NDArray[np.int64]:
        """``[N]`` events of the key with ``t_lo <= time < t`` (the query time)."""
        lo = np.searchsorted(self.codes, q.key | np.clip(t_lo, 0, TIME_MASK), side="left")
        return np.maximum(q.end - np.maximum(lo, q.start), 0)

    def last_time(self, q: Query) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """``([N] relative time of the last event before t, [N] whether there is one)``."""
        has = q.end > q.start
        idx = np.maximum(q.end - 1, 0)
        t = self.codes[idx] & TIME_MASK if len(self) else np.zeros_like(idx)
        return np.where(has, t, 0), has

    def first_time(self, q: Query) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """``([N] relative time of the first event of the key, [N] whether there is one)``."""
        has = q.end > q.start
        idx = np.minimum(q.start, max(len(self) - 1, 0))
        t = self.codes[idx] & TIME_MASK if len(self) else np.zeros_like(idx)
        return np.where(has, t, 0), has

    def last_positions(
        self, q: Query, length: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """The last ``length`` events before each query's time, most recent first, as a flat
        list of ``M`` entries: ``(sample [M], slot [M], position [M])``.

        ``slot`` 0 is the most recent event; ``position`` indexes the sorted order, so gather a
        source column ``v`` with ``v[self.rows][position]`` (or pre-gather ``v[self.rows]`` once).
        Only real events are listed: padding is whatever the caller fills in.
        """
        lengths = np.minimum(q.end - q.start, length)
        sample = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
        first = np.cumsum(lengths) - lengths
        slot = np.arange(sample.shape[0], dtype=np.int64) - np.repeat(first, lengths)
        return sample, slot, q.end[sample] - 1 - slot


@dataclass(frozen=True, slots=True)
class Query:
    """Per-sample search results: ``key << 32`` ``[N]``, first and end positions ``[N]``."""

    key: NDArray[np.int64]
    start: NDArray[np.int64]
    end: NDArray[np.int64]


class RowIndex:
    """Row numbers of a table grouped by a non-negative integer key (CSR), original order kept
    within a key.

    Example:
        >>> idx = RowIndex(np.array([2, 0, 2, -1, 0]))
        >>> idx.rows(np.array([0, 2])).tolist(), idx.rows(np.array([7])).tolist()
        ([1, 4, 0, 2], [])
    """

    def __init__(self, keys: NDArray[np.integer]) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        valid = keys >= 0
        size = int(keys.max(initial=-1)) + 1
        self.order = np.flatnonzero(valid)[np.argsort(keys[valid], kind="stable")]
        counts = np.bincount(keys[valid], minlength=size)
        self.ptr = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(counts, out=self.ptr[1:])

    def rows(self, wanted: NDArray[np.integer]) -> NDArray[np.int64]:
        """Rows of the ``wanted`` keys (unknown and negative keys give none), key by key."""
        wanted = np.asarray(wanted, dtype=np.int64)
        wanted = wanted[(wanted >= 0) & (wanted < self.ptr.shape[0] - 1)]
        starts = self.ptr[wanted]
        lens = self.ptr[wanted + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        offsets = np.zeros(wanted.shape[0], dtype=np.int64)
        np.cumsum(lens[:-1], out=offsets[1:])
        gather = np.repeat(starts - offsets, lens) + np.arange(total)
        return self.order[gather]
