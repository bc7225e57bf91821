"""An event log indexed once for many small feature requests (serving)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.arrays import unique_sorted
from funnelrec.features.pit.config import LOG_COLUMNS
from funnelrec.features.pit.log import EventRules, LogArrays, require_columns, rule_flags
from funnelrec.features.sequence import TIME_BITS, TIME_MASK, KeyedEvents, Query, RowIndex


@dataclass(frozen=True)
class MergedEvents:
    """Two :class:`KeyedEvents` of one kind read as one (a fixed log + events since)."""

    base: KeyedEvents
    extra: KeyedEvents

    def query(self, key: NDArray[np.int64], t: NDArray[np.int64]) -> tuple[Query, Query]:
        return self.base.query(key, t), self.extra.query(key, t)

    def count_before(self, q: tuple[Query, Query]) -> NDArray[np.int64]:
        return self.base.count_before(q[0]) + self.extra.count_before(q[1])

    def count_since(self, q: tuple[Query, Query], t_lo: NDArray[np.int64]) -> NDArray[np.int64]:
        return self.base.count_since(q[0], t_lo) + self.extra.count_since(q[1], t_lo)

    def last_time(self, q: tuple[Query, Query]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        t_base, has_base = self.base.last_time(q[0])
        t_extra, has_extra = self.extra.last_time(q[1])
        return np.maximum(t_base, t_extra), has_base | has_extra

    def first_time(self, q: tuple[Query, Query]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        t_base, has_base = self.base.first_time(q[0])
        t_extra, has_extra = self.extra.first_time(q[1])
        first = np.where(has_base & has_extra, np.minimum(t_base, t_extra), t_base + t_extra)
        return first, has_base | has_extra


@dataclass(frozen=True)
class ItemTotals:
    """Each item's events over the whole prepared log, for requests later than all of them
    (:mod:`funnelrec.features.pit.request`): what a point-in-time lookup would find, read by
    index. Row ``k`` is item ``k``; the last row stands for every item without events (unknown,
    negative, or newer than the log).

    Attributes:
        pos_ptr: ``[K + 2]`` where each item's positives start in ``item_events["pos"].codes``
            (``pos_ptr[k + 1]`` where they end; the last row's range is empty).
        table: ``[K + 1, 5]`` int64: positives, first and last positive time (relative to the
            log's t0; 0 without one), CTR events and impressions (0 without impressions).
    """

    pos_ptr: NDArray[np.int64]
    table: NDArray[np.int64]

    @property
    def none(self) -> int:
        """The row of items without events."""
        return int(self.table.shape[0]) - 1


@dataclass(frozen=True)
class UserOrdered:
    """The log's rows grouped by user (the order of :class:`RowIndex`, original order within
    a user): one user's events are the slice ``ptr[u]:ptr[u + 1]`` of every array, a view.

    Attributes:
        ptr: ``[n + 1]`` slice bounds per user index.
        item: ``[E]`` int64 item index.
        t: ``[E]`` int64 time relative to the log's t0.
    """

    ptr: NDArray[np.int64]
    item: NDArray[np.int64]
    t: NDArray[np.int64]

    def bounds(self, user: int) -> tuple[int, int]:
        """``(start, end)`` of ``user``'s rows (empty for an unknown or negative user)."""
        if 0 <= user < self.ptr.shape[0] - 1:
            return int(self.ptr[user]), int(self.ptr[user + 1])
        return 0, 0


class _LogCache:
    """The prepared log's columns as arrays, read by every request: the key and time columns
    (views of the frame's where polars allows, so they cost no memory) and the event flags per
    rule, computed over the whole log the first time a rule is asked for; and, built at the
    first request that reads them, the per-item totals and the rows in user order of the
    one-query path (:mod:`funnelrec.features.pit.request`). Shared by every
    :meth:`PreparedLog.with_extra` copy, which index the same log; a new log gets a new
    :class:`PreparedLog` and with it a new cache. Filled without a lock: requests racing to
    fill it compute the same arrays."""

    def __init__(self) -> None:
        self.columns: tuple[NDArray[np.integer], ...] | None = None
        self.flags: dict[EventRules, dict[str, NDArray[np.bool_]]] = {}
        self.item_totals: ItemTotals | None = None
        self.user_ordered: UserOrdered | None = None
        self.user_flags: dict[EventRules, dict[str, NDArray[np.bool_]]] = {}


@dataclass(frozen=True)
class PreparedLog:
    """An event log indexed once for many small :meth:`PointInTimeFeatures.transform` calls
    (serving): the item-side lookups over the whole log, sorted once, and the rows of each user.

    ``transform(samples, prepared.with_extra(events))`` computes exactly the features of
    ``transform(samples, pl.concat([log, events]))``: item-side features add the two logs'
    counts, and everything keyed by the user reads only the samples' users' rows of both. A
    request then costs lookups into the item index plus work on one user's rows, instead of
    sorting every event of every candidate item (tens of thousands of rows for popular ones).
    Made by :meth:`PointInTimeFeatures.prepare` (:func:`prepare_log`).
    """

    log: pl.DataFrame
    t0: int
    t_max: int
    item_events: dict[str, KeyedEvents]
    user_rows: RowIndex
    extra: pl.DataFrame | None = None
    cache: _LogCache = field(default_factory=_LogCache, repr=False, compare=False)

    def with_extra(self, events: pl.DataFrame | None) -> PreparedLog:
        """The same index plus ``events`` (rows after the log, e.g. posted since training)."""
        if events is None or events.height == 0:
            return dataclasses.replace(self, extra=None)
        require_columns(events, LOG_COLUMNS, "events")
        return dataclasses.replace(self, extra=events.select(LOG_COLUMNS))

    def combined(self) -> pl.DataFrame:
        """The whole log followed by the extra events (what the index stands for)."""
        return self._append_extra(self.log.select(LOG_COLUMNS))

    def _append_extra(self, base: pl.DataFrame) -> pl.DataFrame:
        if self.extra is None:
            return base
        return pl.concat([base, self.extra.cast(base.schema)])

    def rows_of_users(self, users: NDArray[np.int64]) -> pl.DataFrame:
        """The log rows of ``users`` then the extra events, each in their original order."""
        rows = np.sort(self.user_rows.rows(unique_sorted(users)))
        return self._append_extra(self.log[rows].select(LOG_COLUMNS))

    def user_arrays(self, users: NDArray[np.int64], rules: EventRules) -> LogArrays:
        """:meth:`rows_of_users` as :class:`LogArrays` under ``rules``, gathered from arrays
        of the whole log made once (a polars gather + select + flags cost ~0.5 ms a request)."""
        rows = np.sort(self.user_rows.rows(unique_sorted(users)))
        user, item, timestamp = self._columns()
        flags = self._flags(rules)
        out = LogArrays(
            user[rows].astype(np.int64),
            item[rows].astype(np.int64),
            timestamp[rows].astype(np.int64),
            {kind: flag[rows] for kind, flag in flags.items()},
        )
        if self.extra is None:
            return out
        # The extra events read as the log's dtypes, as in combined() (no call when equal).
        schema = pl.Schema({name: self.log.schema[name] for name in LOG_COLUMNS})
        extra = self.extra if self.extra.schema == schema else self.extra.cast(schema)
        return out.append(LogArrays.of(extra, rules))

    def _columns(self) -> tuple[NDArray[np.integer], ...]:
        """The log's ``user_idx, item_idx, timestamp`` as arrays (cached)."""
        cache = self.cache
        if cache.columns is None:
            cache.columns = tuple(
                self.log[c].to_numpy() for c in ("user_idx", "item_idx", "timestamp")
            )
        return cache.columns

    def _flags(self, rules: EventRules) -> dict[str, NDArray[np.bool_]]:
        """The log's event flags under ``rules`` (cached)."""
        flags = self.cache.flags.get(rules)
        if flags is None:
            flags = self.cache.flags[rules] = rule_flags(self.log, rules)
        return flags

    def item_totals(self) -> ItemTotals:
        """Each item's totals over the whole log (built once, at the first call)."""
        cache = self.cache
        if cache.item_totals is None:
            cache.item_totals = _item_totals(self.item_events)
        return cache.item_totals

    def user_ordered(self, rules: EventRules) -> tuple[UserOrdered, dict[str, NDArray[np.bool_]]]:
        """The log's rows in user order and their flags under ``rules`` (built once each)."""
        cache = self.cache
        if cache.user_ordered is None:
            _, item, timestamp = self._columns()
            order = self.user_rows.order
            cache.user_ordered = UserOrdered(
                self.user_rows.ptr,
                item[order].astype(np.int64),
                timestamp[order].astype(np.int64) - self.t0,
            )
        flags = cache.user_flags.get(rules)
        if flags is None:
            order = self.user_rows.order
            flags = {kind: flag[order] for kind, flag in self._flags(rules).items()}
            cache.user_flags[rules] = flags
        return cache.user_ordered, flags

    def covers(self, samples: pl.DataFrame) -> bool:
        """Whether every sample and extra-event time lies in the index's 32-bit window from its
        t0 (else the caller falls back to the plain path, which picks its own reference time)."""
        times = [samples["timestamp"].to_numpy()]
        if self.extra is not None:
            times.append(self.extra["timestamp"].to_numpy())
        lo = min((int(t.min()) for t in times if t.size), default=self.t0)
        hi = max([self.t_max, *(int(t.max()) for t in times if t.size)])
        return lo >= self.t0 and hi - self.t0 <= TIME_MASK


def prepare_log(log: pl.DataFrame, rules: EventRules, *, impressions: bool) -> PreparedLog:
    """Index ``log`` once: item-side positive (and with ``impressions``, CTR-event and
    impression) lookups, and its rows grouped by user.

    Args:
        log: ``[E]`` events (``user_idx, item_idx, timestamp, event``).
        rules: the fitted features' event rules (positive rule, CTR event, sequence rule).
        impressions: whether the fitted features include impression counts and CTR.

    Raises:
        ValueError: a missing column, or timestamps spanning more than 2**32 s.
    """
    require_columns(log, LOG_COLUMNS, "log")
    log = log.select(LOG_COLUMNS)
    ts = log["timestamp"].to_numpy().astype(np.int64)
    t0 = int(ts.min()) if ts.size else 0
    t_max = int(ts.max()) if ts.size else 0
    if t_max - t0 > TIME_MASK:
        raise ValueError(f"log timestamps span {t_max - t0} s, more than the 2**32 s supported")
    l_t = ts - t0
    item = log["item_idx"].to_numpy().astype(np.int64)
    flags = rule_flags(log, rules)
    events = {"pos": KeyedEvents.build(item, l_t, flags["pos"])}
    if impressions:
        events["ctr"] = KeyedEvents.build(item, l_t, flags["ctr"])
        events["imp"] = KeyedEvents.build(item, l_t, flags["imp"])
    user_rows = RowIndex(log["user_idx"].to_numpy())
    prepared = PreparedLog(log, t0, t_max, events, user_rows)
    prepared.cache.flags[rules] = flags  # the requests' user rows read the same flags
    return prepared


def _item_totals(item_events: dict[str, KeyedEvents]) -> ItemTotals:
    """:class:`ItemTotals` of the prepared item lookups (CTR columns 0 without impressions)."""
    pos = item_events["pos"]
    keys = [int(ev.codes[-1] >> TIME_BITS) + 1 for ev in item_events.values() if len(ev)]
    n_keys = max(keys, default=0)
    bounds = np.arange(n_keys + 1, dtype=np.int64) << TIME_BITS

    def ranges(ev: KeyedEvents) -> NDArray[np.int64]:
        ptr = np.searchsorted(ev.codes, bounds, side="left").astype(np.int64)
        return np.append(ptr, ptr[-1])  # the row of items without events: an empty range

    pos_ptr = ranges(pos)
    start, end = pos_ptr[:-1], pos_ptr[1:]
    table = np.zeros((n_keys + 1, 5), dtype=np.int64)
    table[:, 0] = end - start
    has = end > start
    times = pos.codes & TIME_MASK
    table[has, 1] = times[start[has]]
    table[has, 2] = times[end[has] - 1]
    for column, kind in ((3, "ctr"), (4, "imp")):
        if kind in item_events:
            table[:, column] = np.diff(ranges(item_events[kind]))
    return ItemTotals(pos_ptr, table)
