"""The ItemCF fit kernel: per-user sequences in, top-K similar items per item out.

Two steps:

1. :func:`build_sequences` (vectorised polars/NumPy) turns positives into per-user sequences
   (deduplicated, sorted by ``(timestamp, item_idx)``) in CSR layout, plus the inverted index
   item -> occurrences.
2. :func:`itemcf_topk` (numba, parallel) walks, for every item ``i``, each occurrence of ``i``
   and the positions within ``window`` of it, accumulating pair weights into a per-thread dense
   accumulator with a touched list (the scheme of implicit's ``all_pairs_knn``); then it
   normalises and keeps the top ``K`` with a bounded heap, writing straight into preallocated
   ``[n_items, K]`` arrays. No pair list is ever materialised: memory is ``O(N + n_items * K)``
   plus ``O(n_items)`` per thread.

Pair weights are computed on the fly without ``pow``/``exp`` in the inner loop: walking away from
position ``p`` one step at a time, the weight is a running product
``run *= adjacent_time_decay[q]`` (time decay over a gap is the product of the decays over the
adjacent gaps it spans, since sequences are time-sorted) and ``run *= position_decay``. The
creation-time decay depends on ``(i, j)`` only, so it is applied once per pair after summing
over users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import polars as pl
from numpy.typing import NDArray

MIN_SIM = float(np.finfo(np.float32).tiny)
"""Similarities below the smallest normal float32 (underflowed decays) are not neighbours."""


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

    Linear-time: a stable counting sort by user of the time-ordered rows, a parallel per-user
    backward pass that keeps each item's last occurrence, and a counting sort by item for the
    inverted index. Rows not already in time order are first sorted (stable) by timestamp.

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
    raw_ptr, by_user = _counting_sort(user, n_users)
    keep, kept_len = _mark_last_occurrences(raw_ptr, by_user, item, n_items, _n_chunks(n_users))
    user_ptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(kept_len, out=user_ptr[1:])
    seq_item, seq_time = _gather_sequences(raw_ptr, by_user, keep, item, time, user_ptr)
    item_ptr, occ_user, occ_pos = _invert(user_ptr, seq_item, n_items)
    return Sequences(user_ptr, seq_item, seq_time, item_ptr, occ_user, occ_pos)


def _n_chunks(n: int) -> int:
    """Parallel work units for ``n`` rows: a few per thread so uneven rows even out."""
    return max(1, min(n, 4 * numba.get_num_threads()))


@numba.njit(cache=True)
def _counting_sort(keys, n_keys):  # pragma: no cover - compiled
    """Stable grouping of ``[N]`` keys in ``[0, n_keys)``: (``ptr [n_keys + 1]``, ``order [N]``)."""
    n = keys.shape[0]
    ptr = np.zeros(n_keys + 1, dtype=np.int64)
    for e in range(n):
        ptr[keys[e] + 1] += 1
    for k in range(n_keys):
        ptr[k + 1] += ptr[k]
    fill = ptr[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for e in range(n):
        k = keys[e]
        order[fill[k]] = e
        fill[k] += 1
    return ptr, order


@numba.njit(cache=True, parallel=True)
def _mark_last_occurrences(raw_ptr, by_user, item, n_items, n_chunks):  # pragma: no cover
    """``keep [N]`` (by grouped position): whether a row is its (user, item)'s last; counts."""
    n_users = raw_ptr.shape[0] - 1
    keep = np.zeros(by_user.shape[0], dtype=np.bool_)
    kept_len = np.zeros(n_users, dtype=np.int64)
    per_chunk = (n_users + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        stamp = np.full(n_items, -1, dtype=np.int32)
        for u in range(c * per_chunk, min(n_users, (c + 1) * per_chunk)):
            m = 0
            for x in range(raw_ptr[u + 1] - 1, raw_ptr[u] - 1, -1):
                i = item[by_user[x]]
                if stamp[i] != u:
                    stamp[i] = u
                    keep[x] = True
                    m += 1
            kept_len[u] = m
    return keep, kept_len


@numba.njit(cache=True, parallel=True)
def _gather_sequences(raw_ptr, by_user, keep, item, time, user_ptr):  # pragma: no cover
    """Kept rows per user in ``(time, item)`` order: ``(item [N'], time [N'])``."""
    n_users = raw_ptr.shape[0] - 1
    n = user_ptr[n_users]
    out_item = np.empty(n, dtype=np.int32)
    out_time = np.empty(n, dtype=np.int64)
    for u in numba.prange(n_users):
        w = user_ptr[u]
        for x in range(raw_ptr[u], raw_ptr[u + 1]):
            if keep[x]:
                r = by_user[x]
                # Rows arrive time-sorted; insertion puts equal times in item order.
                it, t = item[r], time[r]
                y = w
                while y > user_ptr[u] and out_time[y - 1] == t and out_item[y - 1] > it:
                    out_item[y] = out_item[y - 1]
                    out_time[y] = out_time[y - 1]
                    y -= 1
                out_item[y] = it
                out_time[y] = t
                w += 1
    return out_item, out_time


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


def adjacent_time_decay(seq: Sequences, half_life_s: float | None) -> NDArray[np.float64]:
    """``[N]`` decay over the gap between each position and the previous one of the same user.

    ``out[q] = 0.5 ** ((time[q] - time[q - 1]) / half_life_s)``; 1 at each user's first position
    (never read) and everywhere when ``half_life_s`` is None.
    """
    n = seq.item.shape[0]
    if half_life_s is None or n == 0:
        return np.ones(n, dtype=np.float64)
    gap = np.empty(n, dtype=np.float64)
    gap[0] = 0.0
    np.subtract(seq.time[1:], seq.time[:-1], out=gap[1:], casting="unsafe")
    starts = seq.user_ptr[:-1][seq.user_len > 0]
    gap[starts] = 0.0
    return np.exp2(-gap / half_life_s)


_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


@numba.njit(inline="always")
def _sift_down(keys, size, pos):  # pragma: no cover - compiled
    """Restore the min-heap ``keys[:size]`` below ``pos``."""
    key = keys[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= key:
            break
        keys[pos] = keys[child]
        pos = child
    keys[pos] = key


@numba.njit(inline="always")
def _keep_largest(keys, cnt, k):  # pragma: no cover - compiled
    """Move the ``k`` largest of ``keys[:cnt]`` into ``keys[:k]`` (a min-heap, O(cnt log k))."""
    for pos in range(k // 2 - 1, -1, -1):
        _sift_down(keys, k, pos)
    for t in range(k, cnt):
        if keys[t] > keys[0]:
            keys[0] = keys[t]
            _sift_down(keys, k, 0)


@numba.njit(inline="always")
def _sort_descending(keys, cnt):  # pragma: no cover - compiled
    """Sort ``keys[:cnt]`` in place, largest first, without allocating.

    Insertion sort for short rows (the common case), heapsort otherwise.
    """
    if cnt <= 24:
        for a in range(1, cnt):
            key = keys[a]
            b = a
            while b > 0 and keys[b - 1] < key:
                keys[b] = keys[b - 1]
                b -= 1
            keys[b] = key
        return
    for pos in range(cnt // 2 - 1, -1, -1):
        _sift_down(keys, cnt, pos)
    for end in range(cnt - 1, 0, -1):
        smallest = keys[0]
        keys[0] = keys[end]
        keys[end] = smallest
        _sift_down(keys, end, 0)


@numba.njit(cache=True, parallel=True, fastmath=True)
def itemcf_topk(
    user_ptr,
    seq_item,
    adj_decay,
    user_weight,
    item_ptr,
    occ_user,
    occ_pos,
    window,
    forward_weight,
    backward_weight,
    position_decay,
    norm_i,
    norm_j,
    created,
    created_rate,
    min_sim,
    n_chunks,
    out_idx,
    out_sim,
):  # pragma: no cover - compiled
    """Top-K neighbours of every item under the time-decayed ItemCF weight.

    Args:
        user_ptr: ``[n_users + 1]`` int64 sequence offsets.
        seq_item: ``[N]`` int32 items, per user time-sorted.
        adj_decay: ``[N]`` float64 time decay over the gap to the previous position.
        user_weight: ``[n_users]`` float64 ``act(u)``.
        item_ptr: ``[n_items + 1]`` int64 occurrence offsets.
        occ_user: ``[N]`` int32 user of each occurrence (grouped by item).
        occ_pos: ``[N]`` int64 global position of each occurrence.
        window: max ``|p - q|`` (>= longest sequence for "all pairs").
        forward_weight: weight when ``q > p``; backward_weight when ``q < p``.
        position_decay: factor per extra step, ``position_decay ** (|p - q| - 1)``.
        norm_i: ``[n_items]`` float64 ``|N(i)| ** alpha``.
        norm_j: ``[n_items]`` float64 ``|N(j)| ** (1 - alpha)``.
        created: ``[n_items]`` float64 creation times (ignored when ``created_rate`` is 0).
        created_rate: ``ln 2 / created_half_life_s`` or 0 for no creation-time decay.
        min_sim: similarities below this are dropped (:data:`MIN_SIM`).
        n_chunks: parallel work units; item ``i`` goes to chunk ``i % n_chunks``.
        out_idx: ``[n_items, K]`` int32, pre-filled with -1; neighbours by descending score.
        out_sim: ``[n_items, K]`` float32, pre-filled with 0; their similarities.
    """
    n_items = item_ptr.shape[0] - 1
    k = out_idx.shape[1]
    for c in numba.prange(n_chunks):
        acc = np.zeros(n_items, dtype=np.float64)
        stamp = np.full(n_items, -1, dtype=np.int32)
        touched = np.empty(n_items, dtype=np.int32)
        keys = np.empty(n_items, dtype=np.uint64)
        f32 = np.empty(1, dtype=np.float32)
        bits = f32.view(np.uint32)
        for i in range(c, n_items, n_chunks):
            m = 0
            for e in range(item_ptr[i], item_ptr[i + 1]):
                u = occ_user[e]
                g = occ_pos[e]
                lo = max(user_ptr[u], g - window)
                hi = min(user_ptr[u + 1], g + window + 1)
                a = user_weight[u]
                run = a * forward_weight
                for h in range(g + 1, hi):
                    run *= adj_decay[h]
                    j = seq_item[h]
                    if stamp[j] != i:
                        stamp[j] = i
                        acc[j] = run
                        touched[m] = j
                        m += 1
                    else:
                        acc[j] += run
                    run *= position_decay
                if backward_weight > 0.0:
                    run = a * backward_weight
                    for h in range(g - 1, lo - 1, -1):
                        run *= adj_decay[h + 1]
                        j = seq_item[h]
                        if stamp[j] != i:
                            stamp[j] = i
                            acc[j] = run
                            touched[m] = j
                            m += 1
                        else:
                            acc[j] += run
                        run *= position_decay
            if m == 0:
                continue
            # Rank key: float32 bits of sim (positive floats order like their bits), then
            # the complement of j, so one unsigned compare orders by (sim desc, j asc).
            ni = norm_i[i]
            ci = created[i]
            cnt = 0
            for t in range(m):
                j = touched[t]
                v = acc[j] / (ni * norm_j[j])
                if created_rate > 0.0:
                    v *= np.exp(-created_rate * abs(created[j] - ci))
                if not v >= min_sim:
                    continue
                f32[0] = v
                keys[cnt] = (np.uint64(bits[0]) << _SHIFT) | (_LOW32 - np.uint64(j))
                cnt += 1
            if cnt > k:
                _keep_largest(keys, cnt, k)
                cnt = k
            _sort_descending(keys, cnt)
            for r in range(cnt):
                key = keys[r]
                out_idx[i, r] = np.int32(_LOW32 - (key & _LOW32))
                bits[0] = np.uint32(key >> _SHIFT)
                out_sim[i, r] = f32[0]
