"""The ItemCF fit kernel: per-user sequences in, top-K similar items per item out.

Two steps:

1. :func:`build_sequences` (linear-time numba passes) turns positives into per-user sequences
   (deduplicated, sorted by ``(timestamp, item_idx)``) in CSR layout, plus the inverted index
   item -> occurrences.
2. :func:`itemcf_topk` (numba, parallel over interleaved chunks of items) walks, for every item
   ``i``, each occurrence of ``i`` and the positions within ``window`` of it, accumulating pair
   weights into a dense per-chunk accumulator with a touched list (the scheme of implicit's
   ``all_pairs_knn``); then it normalises, selects the top ``K`` (quickselect) and sorts them
   (bucketed insertion sort), writing straight into preallocated ``[n_items, K]`` arrays. No
   pair list is ever materialised: memory is ``O(N + n_items * K)`` plus ``O(n_items)``
   scratch per running thread (``8 x threads`` chunks, scheduled dynamically).

Pair weights are computed on the fly without ``pow``/``exp`` in the inner loop: walking away from
position ``p`` one step at a time, the weight is a running product ``run *= step[q]`` with
``step[q] = position_decay * time_decay(t[q] - t[q - 1])`` (the time decay over a gap is the
product of the decays over the adjacent gaps it spans, since sequences are time-sorted). The
creation-time decay depends on ``(i, j)`` only, so it is applied once per pair after summing
over users; ``act(u)``, the direction weight and the normalisation once per occurrence / pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import polars as pl
from numpy.typing import NDArray

MIN_SIM = float(np.finfo(np.float32).tiny)
"""Similarities below the smallest normal float32 (underflowed decays) are not neighbours."""

RUN_FLOOR = 1e-300
"""Pair weights below this are skipped (they cannot move any similarity >= MIN_SIM)."""


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


_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


@numba.njit(inline="always", cache=True)
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


@numba.njit(inline="always", cache=True)
def _keep_largest(keys, cnt, k):  # pragma: no cover - compiled
    """Move the ``k`` largest of the distinct ``keys[:cnt]`` into ``keys[:k]`` (quickselect)."""
    lo, hi = 0, cnt - 1
    target = k - 1
    while lo < hi:
        mid = (lo + hi) // 2
        a, b, c = keys[lo], keys[mid], keys[hi]
        pivot = max(min(a, b), min(max(a, b), c))  # median of three
        i, j = lo, hi
        while i <= j:
            while keys[i] > pivot:
                i += 1
            while keys[j] < pivot:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break


_SMALL_SORT = 24
_BUCKETED_SORT = 128
_LOG2_BUCKETS = 6
_N_BUCKETS = 1 << _LOG2_BUCKETS


@numba.njit(inline="always", cache=True)
def _insertion_sort_descending(keys, cnt):  # pragma: no cover - compiled
    for a in range(1, cnt):
        key = keys[a]
        b = a
        while b > 0 and keys[b - 1] < key:
            keys[b] = keys[b - 1]
            b -= 1
        keys[b] = key


@numba.njit(inline="always", cache=True)
def _sort_descending(keys, cnt, scratch, hist):  # pragma: no cover - compiled
    """Sort ``keys[:cnt]`` in place, largest first, without allocating.

    Short rows: insertion sort. Up to ``_BUCKETED_SORT``: one counting-sort pass into
    ``_N_BUCKETS`` equal-width key ranges (``scratch`` ``[>= _BUCKETED_SORT]``, ``hist``
    ``[_N_BUCKETS]``), then insertion sort of the nearly sorted result. Longer: heapsort.
    """
    if cnt <= _SMALL_SORT:
        _insertion_sort_descending(keys, cnt)
        return
    if cnt <= _BUCKETED_SORT:
        top = keys[0]
        bottom = keys[0]
        for t in range(1, cnt):
            top = max(top, keys[t])
            bottom = min(bottom, keys[t])
        # Smallest shift with (span >> shift) < _N_BUCKETS; frexp's exponent is >= the bit
        # length of span (float rounding can only round up across a power of two).
        exponent = math.frexp(float(top - bottom))[1]
        shift = np.uint64(max(0, exponent - _LOG2_BUCKETS))
        for b in range(_N_BUCKETS):
            hist[b] = 0
        for t in range(cnt):
            hist[np.int64((top - keys[t]) >> shift)] += 1
        start = 0
        for b in range(_N_BUCKETS):
            size = hist[b]
            hist[b] = start
            start += size
        for t in range(cnt):
            b = np.int64((top - keys[t]) >> shift)
            scratch[hist[b]] = keys[t]
            hist[b] += 1
        for t in range(cnt):
            keys[t] = scratch[t]
        _insertion_sort_descending(keys, cnt)
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
    step,
    recency,
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
        step: ``[N]`` float64 ``position_decay`` times the time decay over the gap to
            the previous position (see :func:`step_decay`).
        recency: ``[N]`` float64 pair-age weight of a pair whose later position is this one
            (all ones when ``pair_half_life_s`` is off).
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
        n_chunks: parallel work units (call under ``numba.parallel_chunksize(1)`` for
            dynamic scheduling, robust to busy cores); item ``i`` goes to chunk
            ``i % n_chunks`` (interleaving spreads popular items evenly).
        out_idx: ``[n_items, K]`` int32, pre-filled with -1; receives the neighbours by
            descending similarity (only the valid prefix of each row is written).
        out_sim: ``[n_items, K]`` float32, pre-filled with 0; receives their similarities.
    """
    n_items = item_ptr.shape[0] - 1
    for c in numba.prange(n_chunks):
        # Chunk scratch: acc (all zeros between items); work holds the touched list, then
        # (in place) the rank keys.
        acc = np.zeros(n_items, dtype=np.float64)
        work = np.empty(n_items, dtype=np.uint64)
        scratch = np.empty(_BUCKETED_SORT, dtype=np.uint64)
        hist = np.empty(_N_BUCKETS, dtype=np.int64)
        f32 = np.empty(1, dtype=np.float32)
        bits = f32.view(np.uint32)
        for i in range(c, n_items, n_chunks):
            m = _accumulate(
                i,
                user_ptr,
                seq_item,
                step,
                recency,
                user_weight,
                item_ptr,
                occ_user,
                occ_pos,
                window,
                forward_weight,
                backward_weight,
                position_decay,
                acc,
                work,
            )
            _select(
                i,
                m,
                acc,
                work,
                scratch,
                hist,
                f32,
                bits,
                norm_i,
                norm_j,
                created,
                created_rate,
                min_sim,
                out_idx,
                out_sim,
            )


@numba.njit(inline="always", cache=True)
def _accumulate(
    i,
    user_ptr,
    seq_item,
    step,
    recency,
    user_weight,
    item_ptr,
    occ_user,
    occ_pos,
    window,
    forward_weight,
    backward_weight,
    position_decay,
    acc,
    touched,
):  # pragma: no cover - compiled
    """Sum the pair weights ``C[i, j]`` into ``acc[j]``; returns how many ``j`` were touched.

    ``acc`` is all zeros on entry; every added weight is positive, so ``acc[j] == 0`` means
    "not touched yet". :func:`_select` zeroes the touched entries again.
    """
    m = 0
    for e in range(item_ptr[i], item_ptr[i + 1]):
        u = occ_user[e]
        g = occ_pos[e]
        lo = max(user_ptr[u], g - window)
        hi = min(user_ptr[u + 1], g + window + 1)
        a = user_weight[u]
        # Walking away from g, the weight only shrinks: stop once it is negligible
        # (< RUN_FLOOR, far below anything a float32 similarity can hold).
        # step[h] = position_decay * time decay over (h - 1, h); starting from
        # a * weight / position_decay, d steps give a * weight * position_decay^(d-1) * T.
        # The later position of a forward pair is h (recency[h]), of a backward pair g.
        run = a * forward_weight / position_decay
        for h in range(g + 1, hi):
            run *= step[h]
            if run < RUN_FLOOR:
                break
            j = seq_item[h]
            aj = acc[j]
            touched[m] = j  # branch-free: kept only when j is new (m < n_items, j != i)
            m += np.int64(aj == 0.0)
            acc[j] = aj + run * recency[h]
        run = a * backward_weight * recency[g] / position_decay
        for h in range(g - 1, lo - 1, -1):
            run *= step[h + 1]
            if run < RUN_FLOOR:
                break
            j = seq_item[h]
            aj = acc[j]
            touched[m] = j  # branch-free: kept only when j is new (m < n_items, j != i)
            m += np.int64(aj == 0.0)
            acc[j] = aj + run
    return m


@numba.njit(inline="always", cache=True)
def _select(
    i,
    m,
    acc,
    work,
    scratch,
    hist,
    f32,
    bits,
    norm_i,
    norm_j,
    created,
    created_rate,
    min_sim,
    out_idx,
    out_sim,
):  # pragma: no cover - compiled
    """Normalise the ``m`` touched sums and write the top ``k`` of item ``i``, best first.

    Each candidate becomes one uint64 rank key: the float32 bits of its similarity (positive
    floats order like their bit patterns) above the complement of ``j``, so a single unsigned
    compare orders by (stored similarity desc, ``j`` asc).
    """
    k = out_idx.shape[1]
    ni = norm_i[i]
    ci = created[i]
    cnt = 0
    for t in range(m):
        j = np.int64(work[t])
        v = acc[j] / (ni * norm_j[j])
        acc[j] = 0.0
        if created_rate > 0.0:
            v *= np.exp(-created_rate * abs(created[j] - ci))
        if not v >= min_sim:
            continue
        f32[0] = v
        work[cnt] = (np.uint64(bits[0]) << _SHIFT) | (_LOW32 - np.uint64(j))
        cnt += 1
    if cnt > k:
        _keep_largest(work, cnt, k)
        cnt = k
    _sort_descending(work, cnt, scratch, hist)
    for r in range(cnt):
        key = work[r]
        out_idx[i, r] = np.int32(_LOW32 - (key & _LOW32))
        bits[0] = np.uint32(key >> _SHIFT)
        out_sim[i, r] = f32[0]
