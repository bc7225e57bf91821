"""ItemCF's input: per-user deduplicated, time-sorted sequences and the step decays.

:func:`build_sequences` turns positives into per-user sequences in CSR layout plus the inverted
index item -> occurrences; :func:`step_decay` gives the per-step weight factor the pair kernel
(:func:`funnelrec.recall.itemcf.kernel.itemcf_topk`) multiplies while walking a sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import polars as pl
from numpy.typing import NDArray

__all__ = ["Sequences", "build_sequences", "step_decay"]


@dataclass(frozen=True, slots=True)
class Sequences:
    """Per-user deduplicated, time-sorted positives and the item -> occurrence index.

    Attributes:
        user_ptr: ``[n_users + 1]`` int64 CSR offsets into ``item``/``time``.
        item: ``[N]`` int32 item_idx, per user sorted by ``(time, item)``.
        time: ``[N]`` int64 timestamp of each (user, item)'s last occurrence.
        item_ptr: ``[n_items + 1]`` int64 CSR offsets into ``occ_user``/``occ_pos``.
        occ_user: ``[N]`` int32 user of each occurrence, grouped by item.
        occ_pos: ``[N]`` int64 global position (index into ``item``) of each occurrence.
    """

    user_ptr: NDArray[np.int64]
    item: NDArray[np.int32]
    time: NDArray[np.int64]
    item_ptr: NDArray[np.int64]
    occ_user: NDArray[np.int32]
    occ_pos: NDArray[np.int64]

    @property
    def user_len(self) -> NDArray[np.int64]:
        """``[n_users]`` number of distinct items per user, ``|I_u|``."""
        return np.diff(self.user_ptr)

    @property
    def item_users(self) -> NDArray[np.int64]:
        """``[n_items]`` number of distinct users per item, ``|N(i)|``."""
        return np.diff(self.item_ptr)


def build_sequences(positives: pl.DataFrame, n_users: int, n_items: int) -> Sequences:
    """Deduplicate (user, item) keeping the last occurrence and sort each user's items by time.

    Linear-time: a stable counting sort by user of the time-ordered rows, a per-user backward
    pass that keeps each item's last occurrence, and a counting sort by item for the inverted
    index (all single-threaded numba: a few ms per million rows, far below the pair kernel).
    Rows not already in time order are first sorted (stable) by timestamp.

    Args:
        positives: ``user_idx``, ``item_idx``, ``timestamp`` rows (negative indices dropped).
        n_users: size of the user index space.
        n_items: size of the item index space.

    Returns:
        The :class:`Sequences` of ``N`` distinct (user, item) pairs.

    Example:
        >>> df = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [1, 0, 1],
        ...                    "timestamp": [5, 7, 9]})
        >>> build_sequences(df, 1, 2).item.tolist()
        [0, 1]
    """
    user = positives["user_idx"].to_numpy()
    item = positives["item_idx"].to_numpy()
    time = positives["timestamp"].to_numpy()
    valid = (user >= 0) & (user < n_users) & (item >= 0) & (item < n_items)
    if not valid.all():
        user, item, time = user[valid], item[valid], time[valid]
    user = np.ascontiguousarray(user, dtype=np.int32)
    item = np.ascontiguousarray(item, dtype=np.int32)
    time = np.ascontiguousarray(time, dtype=np.int64)
    if time.shape[0] > 1 and not (time[1:] >= time[:-1]).all():
        by_time = np.argsort(time, kind="stable")
        user, item, time = user[by_time], item[by_time], time[by_time]
    raw_ptr, raw_item, raw_time = _group_by_user(user, item, time, n_users)
    user_ptr, seq_item, seq_time = _dedupe_sequences(raw_ptr, raw_item, raw_time, n_items)
    item_ptr, occ_user, occ_pos = _invert(user_ptr, seq_item, n_items)
    return Sequences(user_ptr, seq_item, seq_time, item_ptr, occ_user, occ_pos)


@numba.njit(cache=True)
def _group_by_user(user, item, time, n_users):  # pragma: no cover - compiled
    """Stable counting sort of rows by user: ``(ptr [n_users + 1], item [R], time [R])``."""
    n = user.shape[0]
    ptr = np.zeros(n_users + 1, dtype=np.int64)
    for e in range(n):
        ptr[user[e] + 1] += 1
    for u in range(n_users):
        ptr[u + 1] += ptr[u]
    fill = ptr[:-1].copy()
    out_item = np.empty(n, dtype=np.int32)
    out_time = np.empty(n, dtype=np.int64)
    for e in range(n):
        u = user[e]
        out_item[fill[u]] = item[e]
        out_time[fill[u]] = time[e]
        fill[u] += 1
    return ptr, out_item, out_time


@numba.njit(cache=True)
def _dedupe_sequences(raw_ptr, item, time, n_items):  # pragma: no cover - compiled
    """Each user's last occurrence per item, in ``(time, item)`` order.

    Args:
        raw_ptr: ``[n_users + 1]`` offsets of each user's rows.
        item, time: ``[R]`` the rows grouped by user, time-ordered within a user.
        n_items: size of the item index space.

    Returns:
        ``(user_ptr [n_users + 1], item [N], time [N])`` with ``N`` distinct (user, item) pairs.
    """
    n_users = raw_ptr.shape[0] - 1
    n_rows = item.shape[0]
    keep = np.empty(n_rows, dtype=np.bool_)
    stamp = np.full(n_items, -1, dtype=np.int32)
    user_ptr = np.zeros(n_users + 1, dtype=np.int64)
    out_item = np.empty(n_rows, dtype=np.int32)
    out_time = np.empty(n_rows, dtype=np.int64)
    w = 0
    for u in range(n_users):
        start, end = raw_ptr[u], raw_ptr[u + 1]
        for x in range(end - 1, start - 1, -1):  # newest first: the first sighting is the last
            i = item[x]
            keep[x] = stamp[i] != u
            stamp[i] = u
        first = w
        for x in range(start, end):
            if keep[x]:
                # Rows arrive time-sorted; insertion puts equal times in item order.
                it, t = item[x], time[x]
                y = w
                while y > first and out_time[y - 1] == t and out_item[y - 1] > it:
                    out_item[y] = out_item[y - 1]
                    out_time[y] = out_time[y - 1]
                    y -= 1
                out_item[y] = it
                out_time[y] = t
                w += 1
        user_ptr[u + 1] = w
    return user_ptr, out_item[:w], out_time[:w]


@numba.njit(cache=True)
def _invert(user_ptr, seq_item, n_items):  # pragma: no cover - compiled
    """Item -> occurrences (stable): ``(item_ptr [n_items + 1], occ_user [N], occ_pos [N])``."""
    n_users = user_ptr.shape[0] - 1
    n = seq_item.shape[0]
    item_ptr = np.zeros(n_items + 1, dtype=np.int64)
    for e in range(n):
        item_ptr[seq_item[e] + 1] += 1
    for k in range(n_items):
        item_ptr[k + 1] += item_ptr[k]
    fill = item_ptr[:-1].copy()
    occ_user = np.empty(n, dtype=np.int32)
    occ_pos = np.empty(n, dtype=np.int64)
    for u in range(n_users):
        for x in range(user_ptr[u], user_ptr[u + 1]):
            i = seq_item[x]
            occ_user[fill[i]] = u
            occ_pos[fill[i]] = x
            fill[i] += 1
    return item_ptr, occ_user, occ_pos


def step_decay(
    seq: Sequences, half_life_s: float | None, position_decay: float
) -> NDArray[np.float64]:
    """``[N]`` weight factor for one step from the previous position of the same user.

    ``out[q] = position_decay * 0.5 ** ((time[q] - time[q - 1]) / half_life_s)`` (no time
    factor when ``half_life_s`` is None). Walking ``d`` steps multiplies ``d`` of these: the
    time decay over a gap is the product of the decays over the adjacent gaps it spans. The
    value at a user's first position is never read.
    """
    n = seq.item.shape[0]
    if half_life_s is None or n == 0:
        return np.full(n, position_decay, dtype=np.float64)
    gap = np.empty(n, dtype=np.float64)
    gap[0] = 0.0
    np.subtract(seq.time[1:], seq.time[:-1], out=gap[1:], casting="unsafe")
    starts = seq.user_ptr[:-1][seq.user_len > 0]
    gap[starts] = 0.0
    return position_decay * np.exp2(-gap / half_life_s)
