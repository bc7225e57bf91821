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
    df = (
        positives.lazy()
        .select(
            pl.col("user_idx").cast(pl.Int32),
            pl.col("item_idx").cast(pl.Int32),
            pl.col("timestamp").cast(pl.Int64),
        )
        .filter(
            (pl.col("user_idx") >= 0)
            & (pl.col("user_idx") < n_users)
            & (pl.col("item_idx") >= 0)
            & (pl.col("item_idx") < n_items)
        )
        .group_by("user_idx", "item_idx")
        .agg(pl.col("timestamp").max())
        .sort("user_idx", "timestamp", "item_idx")
        .collect()
    )
    user = df["user_idx"].to_numpy()
    item = np.ascontiguousarray(df["item_idx"].to_numpy(), dtype=np.int32)
    time = np.ascontiguousarray(df["timestamp"].to_numpy(), dtype=np.int64)
    user_ptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users), out=user_ptr[1:])
    occ_pos = np.argsort(item, kind="stable").astype(np.int64)
    item_ptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(item, minlength=n_items), out=item_ptr[1:])
    occ_user = np.ascontiguousarray(user[occ_pos], dtype=np.int32)
    return Sequences(user_ptr, item, time, item_ptr, occ_user, occ_pos)


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


@numba.njit(inline="always")
def _worse(v_a, j_a, v_b, j_b):  # pragma: no cover - compiled
    """Whether candidate a ranks below b: lower score, or equal score and larger index."""
    return v_a < v_b or (v_a == v_b and j_a > j_b)


@numba.njit(inline="always")
def _sift_down(hv, hj, size, pos):  # pragma: no cover - compiled
    """Restore the heap (worst candidate at the root) below ``pos``."""
    v, j = hv[pos], hj[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        right = child + 1
        if right < size and _worse(hv[right], hj[right], hv[child], hj[child]):
            child = right
        if not _worse(hv[child], hj[child], v, j):
            break
        hv[pos], hj[pos] = hv[child], hj[child]
        pos = child
    hv[pos], hj[pos] = v, j


@numba.njit(inline="always")
def _sift_up(hv, hj, pos):  # pragma: no cover - compiled
    v, j = hv[pos], hj[pos]
    while pos > 0:
        parent = (pos - 1) // 2
        if not _worse(v, j, hv[parent], hj[parent]):
            break
        hv[pos], hj[pos] = hv[parent], hj[parent]
        pos = parent
    hv[pos], hj[pos] = v, j


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
        hv = np.empty(k, dtype=np.float64)
        hj = np.empty(k, dtype=np.int32)
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
            ni = norm_i[i]
            ci = created[i]
            size = 0
            for t in range(m):
                j = touched[t]
                v = acc[j] / (ni * norm_j[j])
                if created_rate > 0.0:
                    v *= np.exp(-created_rate * abs(created[j] - ci))
                if not v >= min_sim:
                    continue
                if size < k:
                    hv[size] = v
                    hj[size] = j
                    _sift_up(hv, hj, size)
                    size += 1
                elif _worse(hv[0], hj[0], v, j):
                    hv[0] = v
                    hj[0] = j
                    _sift_down(hv, hj, size, 0)
            # Pop the worst first, filling from the back: rows end up best-first.
            for pos in range(size - 1, -1, -1):
                out_idx[i, pos] = hj[0]
                out_sim[i, pos] = hv[0]
                hv[0], hj[0] = hv[pos], hj[pos]
                _sift_down(hv, hj, pos, 0)
