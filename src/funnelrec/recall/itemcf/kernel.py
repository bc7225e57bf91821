"""The ItemCF fit kernel: per-user sequences in, top-K similar items per item out.

Two steps:

1. :func:`~funnelrec.recall.itemcf.sequences.build_sequences` (linear-time numba passes, in
   :mod:`funnelrec.recall.itemcf.sequences`) turns positives into per-user sequences
   (deduplicated, sorted by ``(timestamp, item_idx)``) in CSR layout, plus the inverted index
   item -> occurrences.
2. :func:`itemcf_topk` (this module; numba, parallel over interleaved chunks of items) walks,
   for every item ``i``, each occurrence of ``i`` and the positions within ``window`` of it,
   accumulating pair weights into a dense per-chunk accumulator with a touched list (the
   scheme of implicit's ``all_pairs_knn``); then it normalises, selects the top ``K``
   (quickselect) and sorts them (bucketed insertion sort), writing straight into preallocated
   ``[n_items, K]`` arrays. No pair list is ever materialised: memory is
   ``O(N + n_items * K)`` plus ``O(n_items)`` scratch per running thread (``8 x threads``
   chunks, scheduled dynamically).

Pair weights are computed on the fly without ``pow``/``exp`` in the inner loop: walking away from
position ``p`` one step at a time, the weight is a running product ``run *= step[q]`` with
``step[q] = position_decay * time_decay(t[q] - t[q - 1])`` (the time decay over a gap is the
product of the decays over the adjacent gaps it spans, since sequences are time-sorted). The
creation-time decay depends on ``(i, j)`` only, so it is applied once per pair after summing
over users; ``act(u)``, the direction weight and the normalisation once per occurrence / pair.
"""

from __future__ import annotations

import math

import numba
import numpy as np

MIN_SIM = float(np.finfo(np.float32).tiny)
"""Similarities below the smallest normal float32 (underflowed decays) are not neighbours."""

RUN_FLOOR = 1e-300
"""Pair weights below this are skipped (they cannot move any similarity >= MIN_SIM)."""


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
            bucket = np.int64((top - keys[t]) >> shift)
            scratch[hist[bucket]] = keys[t]
            hist[bucket] += 1
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
            the previous position (see :func:`~funnelrec.recall.itemcf.sequences.step_decay`).
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
    m = np.int64(0)
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
