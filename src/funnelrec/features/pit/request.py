"""The features of one served request: one user's candidates at one time, later than every
event of a prepared log (the serving case), in NumPy over arrays prepared once per log.

The general path (:mod:`funnelrec.features.pit.dense`) sorts each statistic's events and
searches them per sample; on a request of ~100 candidates that is ~400 small NumPy and polars
calls, ~2.7 ms, nearly all per-call overhead. Here every base event lies before the request
time, so point-in-time lookups reduce to totals: an item's counts are read from
:class:`~funnelrec.features.pit.prepared.ItemTotals` by index (only its windows search its
positives), and the user's statistics are computed once, from the user's rows (one slice of
:class:`~funnelrec.features.pit.prepared.UserOrdered`), then broadcast to every candidate. The
dense columns are written into one preallocated matrix. The numbers are the general path's,
bit for bit (``tests/unit/features/pit/test_request.py``); requests with events posted since
the log, several users or times, or times inside the log take the general path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit.config import DAY_S, PointInTimeConfig
from funnelrec.features.pit.evidence import read_evidence
from funnelrec.features.pit.log import EventRules
from funnelrec.features.pit.prepared import ItemTotals, PreparedLog
from funnelrec.features.pit.state import FittedState
from funnelrec.features.sequence import TIME_BITS, TIME_MASK


@dataclass(frozen=True)
class OneQuery:
    """A request's samples as arrays: ``N`` candidate items of one user at one time.

    Attributes:
        user: the user index (may be unknown: < 0 or beyond the log).
        item: ``[N]`` int64 item indices.
        category: ``[N]`` their fitted categories (-1: none or unknown item).
        timestamp: the request's unix seconds.
        t: the time relative to the prepared log's t0.
        window_starts: ``[W]`` the count windows' first second ``t - w``, clipped as the
            lookups clip it.
    """

    user: int
    item: NDArray[np.int64]
    category: NDArray[np.int64]
    timestamp: int
    t: int
    window_starts: NDArray[np.int64]

    @classmethod
    def of(
        cls,
        samples: pl.DataFrame,
        prepared: PreparedLog,
        config: PointInTimeConfig,
        state: FittedState,
    ) -> OneQuery | None:
        """The request, or None when the general path must compute it: no rows, several
        users or times, a time not after every event of the log (or beyond its 32-bit
        window), events posted since the log, or keys that are not plain integers."""
        if samples.height == 0 or prepared.extra is not None:
            return None
        ts = samples.get_column("timestamp").to_numpy()
        user = samples.get_column("user_idx").to_numpy()
        if ts.dtype.kind not in "iu" or user.dtype.kind not in "iu":  # nulls read as floats
            return None
        first_t, first_user = int(ts[0]), int(user[0])
        if first_t <= prepared.t_max or first_t - prepared.t0 > TIME_MASK:
            return None
        if not ((ts == first_t).all() and (user == first_user).all()):
            return None
        item = samples.get_column("item_idx").to_numpy().astype(np.int64)
        t = first_t - prepared.t0
        starts = [min(max(t - w, 0), TIME_MASK) for w in config.windows_s]
        return cls(
            user=first_user,
            item=item,
            category=state.category_of(item),
            timestamp=first_t,
            t=t,
            window_starts=np.array(starts, dtype=np.int64),
        )


def one_query_dense(
    config: PointInTimeConfig,
    state: FittedState,
    samples: pl.DataFrame,
    query: OneQuery,
    prepared: PreparedLog,
    rules: EventRules,
) -> NDArray[np.float64]:
    """``[N, D]`` unstandardised dense features of ``query`` (those of
    :func:`~funnelrec.features.pit.dense.assemble_dense`, same column order)."""
    rows, flags = prepared.user_ordered(rules)
    start, end = rows.bounds(query.user)
    user = _UserRows(
        rows.item[start:end], rows.t[start:end], {k: f[start:end] for k, f in flags.items()}
    )
    out = np.empty((query.item.shape[0], _width(config, state)), dtype=np.float64)
    user_values, user_positives = _user_values(config, state, query, user)
    out[:, : user_values.shape[0]] = user_values
    blocks = _item_columns(config, state, query, prepared.item_totals(), prepared)
    if state.item_created_at is not None:
        blocks.append(_item_age(state, query))
    blocks += _user_category_columns(config, state, query, user, user_positives)
    blocks += _user_item_columns(state, query, user)
    at = user_values.shape[0]
    for block in blocks:
        if block.ndim == 1:
            out[:, at] = block
            at += 1
        else:  # [k, N] rows of columns
            out[:, at : at + block.shape[0]] = block.T
            at += block.shape[0]
    out[:, at:] = read_evidence(samples, state.evidence).T
    return out


@dataclass(frozen=True)
class _UserRows:
    """The request user's rows of the log (views): items, relative times, flags by kind."""

    item: NDArray[np.int64]
    t: NDArray[np.int64]
    flags: dict[str, NDArray[np.bool_]]


def one_query_sparse(state: FittedState, query: OneQuery) -> NDArray[np.int64]:
    """``[N, F]`` sparse ids (those of ``PointInTimeFeatures._sparse``): the user's fields
    once, the items' gathered."""
    item = query.item
    n_attrs = len(state.attr_names)
    out = np.empty((item.shape[0], 3 + n_attrs + 2), dtype=np.int64)
    known_user = 0 <= query.user < state.n_users
    out[:, 0] = query.user + 1 if known_user else 0
    known = (item >= 0) & (item < state.n_items)
    out[:, 1] = np.where(known, item + 1, 0)
    out[:, 2] = query.category + 1
    if n_attrs:
        out[:, 3 : 3 + n_attrs] = state.user_attr[query.user] if known_user else 0
    out[:, -2] = (query.timestamp // 3600) % 24 + 1
    out[:, -1] = (query.timestamp // DAY_S + 3) % 7 + 1  # 1970-01-01 was a Thursday
    return out


def _width(config: PointInTimeConfig, state: FittedState) -> int:
    """D: the dense features' count (as :attr:`PointInTimeFeatures.dense_names`)."""
    n_windows = len(config.windows_s)
    imp = 2 if state.has_impressions else 0
    width = (n_windows + 2 + imp) + (n_windows + 4 + imp) + (n_windows + 3) + 1 + imp // 2
    return width + (state.item_created_at is not None) + len(state.evidence)


def _recency(t: int, last: NDArray[np.int64], has: NDArray[np.bool_], cap: float) -> NDArray:
    """``log1p`` seconds since ``last``, capped (the cap also where there is no event)."""
    return np.log1p(np.where(has, np.minimum(t - last, cap), cap))


def _ctr(config: PointInTimeConfig, state: FittedState, clicks: NDArray, imps: NDArray) -> NDArray:
    """CTR smoothed toward the global CTR (as :func:`~funnelrec.features.pit.stats.ctr_columns`)."""
    prior = config.ctr_prior
    return np.minimum((clicks + prior * state.global_ctr) / np.maximum(imps + prior, 1e-9), 1.0)


def _user_values(
    config: PointInTimeConfig, state: FittedState, query: OneQuery, user: _UserRows
) -> tuple[NDArray[np.float64], int]:
    """``[user_width]`` user-side values (``u_pos_<w>``, ``u_pos_all``, ``u_recency``, +
    ``u_imp_all``, ``u_ctr``) and the user's positives: every row of the user is before t."""
    times = user.t[user.flags["pos"]]
    in_window = times[None, :] >= query.window_starts[:, None]
    counts = np.append(in_window.sum(axis=1), times.shape[0])
    has = times.shape[0] > 0
    last = np.array([times.max() if has else 0])
    cap = float(config.recency_cap_s)
    values = [np.log1p(counts), _recency(query.t, last, np.array([has]), cap)]
    if state.has_impressions:
        imps = np.array([np.count_nonzero(user.flags["imp"])])
        clicks = np.array([np.count_nonzero(user.flags["ctr"])])
        values += [np.log1p(imps), _ctr(config, state, clicks, imps)]
    return np.concatenate(values), int(times.shape[0])


def _item_columns(
    config: PointInTimeConfig,
    state: FittedState,
    query: OneQuery,
    totals: ItemTotals,
    prepared: PreparedLog,
) -> list[NDArray[np.float64]]:
    """``i_pos_<w>`` (one ``[W, N]`` block), ``i_pos_all``, ``i_recency``, ``i_first_age``,
    ``i_trend`` (+ ``i_imp_all``, ``i_ctr``) from the item totals; the windows search the
    item's positives."""
    item = query.item
    row = np.where((item >= 0) & (item < totals.none), item, totals.none)
    table = totals.table[row]
    start, end = totals.pos_ptr[row], totals.pos_ptr[row + 1]
    codes = prepared.item_events["pos"].codes
    keys = (row << TIME_BITS)[None, :] | query.window_starts[:, None]
    counts = np.maximum(end - np.maximum(np.searchsorted(codes, keys), start), 0)  # [W, N]
    positives, has = table[:, 0], table[:, 0] > 0
    cap = float(config.recency_cap_s)
    windows = config.windows_s
    trend = counts[windows.index(min(windows))] / np.maximum(counts[windows.index(max(windows))], 1)
    columns = [
        np.log1p(counts),
        np.log1p(positives),
        _recency(query.t, table[:, 2], has, cap),
        _recency(query.t, table[:, 1], has, cap),
        trend,
    ]
    if state.has_impressions:
        imps = table[:, 4]
        columns += [np.log1p(imps), _ctr(config, state, table[:, 3], imps)]
    return columns


def _item_age(state: FittedState, query: OneQuery) -> NDArray[np.float64]:
    """``i_age`` (as :func:`~funnelrec.features.pit.item_stats.item_age_column`)."""
    assert state.item_created_at is not None
    item = query.item
    created = np.zeros(item.shape[0], dtype=np.int64)
    known = (item >= 0) & (item < state.n_items)
    created[known] = state.item_created_at[item[known]]
    age = np.where(created > 0, np.maximum(query.timestamp - created, 0), 0)
    return np.log1p(age.astype(np.float64))


def _user_category_columns(
    config: PointInTimeConfig,
    state: FittedState,
    query: OneQuery,
    user: _UserRows,
    user_positives: int,
) -> list[NDArray[np.float64]]:
    """``uc_pos_<w>`` (one ``[W + 1, N]`` block with ``uc_pos_all``), ``uc_recency``,
    ``uc_share``: counted per category of the user's positives (row 0: no category), then
    gathered by each candidate's category."""
    positive = user.flags["pos"]
    category = state.category_of(user.item[positive]) + 1
    known = category > 0
    category, times = category[known], user.t[positive][known]
    n_rows = state.n_categories + 1
    in_window = times[None, :] >= query.window_starts[:, None]
    per_category = np.zeros((in_window.shape[0] + 2, n_rows), dtype=np.int64)
    for w, inside in enumerate(in_window):
        per_category[w] = np.bincount(category[inside], minlength=n_rows)
    per_category[-2] = np.bincount(category, minlength=n_rows)
    np.maximum.at(per_category[-1], category, times)
    counts = per_category[:, query.category + 1]  # [W + 2, N]
    n_uc = counts[-2]
    recency = _recency(query.t, counts[-1], n_uc > 0, float(config.recency_cap_s))
    share = n_uc / user_positives if user_positives > 0 else np.zeros(n_uc.shape[0])
    return [np.log1p(counts[:-1]), recency, share]


def _user_item_columns(
    state: FittedState, query: OneQuery, user: _UserRows
) -> list[NDArray[np.float64]]:
    """``ui_pos_all`` (+ ``ui_imp_all``): the user's positives (impressions) of each
    candidate."""
    valid = query.item >= 0
    columns = []
    for kind in ("pos", "imp") if state.has_impressions else ("pos",):
        seen = np.sort(user.item[user.flags[kind] & (user.item >= 0)])
        count = np.searchsorted(seen, query.item, "right") - np.searchsorted(seen, query.item)
        columns.append(np.log1p(np.where(valid, count, 0)))
    return columns
