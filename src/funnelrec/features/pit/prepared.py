"""An event log indexed once for many small feature requests (serving)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit.config import LOG_COLUMNS
from funnelrec.features.pit.log import EventRules, LogArrays, require_columns, rule_flags
from funnelrec.features.sequence import TIME_MASK, KeyedEvents, Query, RowIndex


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


class _LogCache:
    """The prepared log's columns as arrays, read by every request: the key and time columns
    (views of the frame's where polars allows, so they cost no memory) and the event flags per
    rule, computed over the whole log the first time a rule is asked for. Shared by every
    :meth:`PreparedLog.with_extra` copy, which index the same log; a new log gets a new
    :class:`PreparedLog` and with it a new cache. Filled without a lock: requests racing to
    fill it compute the same arrays."""

    def __init__(self) -> None:
        self.columns: tuple[NDArray[np.integer], ...] | None = None
        self.flags: dict[EventRules, dict[str, NDArray[np.bool_]]] = {}


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
        rows = np.sort(self.user_rows.rows(np.unique(users)))
        return self._append_extra(self.log[rows].select(LOG_COLUMNS))

    def user_arrays(self, users: NDArray[np.int64], rules: EventRules) -> LogArrays:
        """:meth:`rows_of_users` as :class:`LogArrays` under ``rules``, gathered from arrays
        of the whole log made once (a polars gather + select + flags cost ~0.5 ms a request)."""
        rows = np.sort(self.user_rows.rows(np.unique(users)))
        cache = self.cache
        if cache.columns is None:
            cache.columns = tuple(
                self.log[c].to_numpy() for c in ("user_idx", "item_idx", "timestamp")
            )
        user, item, timestamp = cache.columns
        flags = cache.flags.get(rules)
        if flags is None:
            flags = cache.flags[rules] = rule_flags(self.log, rules)
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
