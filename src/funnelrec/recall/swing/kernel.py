"""The Swing fit kernel: capped item -> users lists in, top-K similar items per item out.

:func:`swing_topk` (numba, parallel over interleaved chunks of items, as ItemCF's
:func:`~funnelrec.recall.itemcf.kernel.itemcf_topk`) takes, for every item ``i``, each pair
``u < v`` of its (capped) users: it stamps ``I_u`` into a per-chunk mark array, walks ``I_v``
collecting the common items (``c_uv`` of them), then adds ``w_u * w_v / (alpha + c_uv)`` to
every common ``j != i``. The top ``K`` are selected with ItemCF's ``_select`` (float32 rank
keys, ties by smaller ``j``). Cost per item: ``sum_u |I_u| + sum_{u<v} |I_v|`` over its capped
users; memory ``O(N + n_items * K)`` plus ``O(n_items)`` scratch per chunk.
"""

from __future__ import annotations

import numba
import numpy as np

from funnelrec.recall.itemcf.kernel import _BUCKETED_SORT, _N_BUCKETS, _select


@numba.njit(cache=True, parallel=True)
def swing_topk(
    user_ptr,
    seq_item,
    user_weight,
    item_ptr,
    item_user,
    alpha,
    min_sim,
    n_chunks,
    out_idx,
    out_sim,
):  # pragma: no cover - compiled
    """Top-K Swing neighbours of every item.

    Args:
        user_ptr: ``[n_users + 1]`` int64 offsets of each user's distinct items.
        seq_item: ``[N]`` int32 the users' distinct items.
        user_weight: ``[n_users]`` float64 ``w_u``.
        item_ptr: ``[n_items + 1]`` int64 offsets into ``item_user``.
        item_user: ``[M]`` int32 the (capped) users of each item.
        alpha: the pair smoothing in ``1 / (alpha + c_uv)``.
        min_sim: similarities below this are not kept.
        n_chunks: number of interleaved item chunks (parallel tasks).
        out_idx: ``[n_items, K]`` int32, pre-filled with -1.
        out_sim: ``[n_items, K]`` float32, pre-filled with 0.
    """
    n_items = item_ptr.shape[0] - 1
    for c in numba.prange(n_chunks):
        acc = np.zeros(n_items, dtype=np.float64)
        work = np.empty(n_items, dtype=np.uint64)
        common = np.empty(n_items, dtype=np.int32)
        mark = np.full(n_items, -1, dtype=np.int64)
        scratch = np.empty(_BUCKETED_SORT, dtype=np.uint64)
        hist = np.empty(_N_BUCKETS, dtype=np.int64)
        f32 = np.empty(1, dtype=np.float32)
        bits = f32.view(np.uint32)
        ones = np.ones(n_items, dtype=np.float64)
        zeros = np.zeros(n_items, dtype=np.float64)
        stamp = np.int64(0)
        for i in range(c, n_items, n_chunks):
            m = np.int64(0)
            for a in range(item_ptr[i], item_ptr[i + 1]):
                u = item_user[a]
                stamp += 1  # a fresh mark per (item, u): mark never needs clearing
                for x in range(user_ptr[u], user_ptr[u + 1]):
                    mark[seq_item[x]] = stamp
                for b in range(a + 1, item_ptr[i + 1]):
                    v = item_user[b]
                    n_common = 0
                    for x in range(user_ptr[v], user_ptr[v + 1]):
                        j = seq_item[x]
                        if mark[j] == stamp:
                            common[n_common] = j
                            n_common += 1
                    w = user_weight[u] * user_weight[v] / (alpha + n_common)
                    for t in range(n_common):
                        j = common[t]
                        if j == i:
                            continue
                        aj = acc[j]
                        work[m] = j  # kept only when j is new (every weight is positive)
                        m += np.int64(aj == 0.0)
                        acc[j] = aj + w
            _select(
                i,
                m,
                acc,
                work,
                scratch,
                hist,
                f32,
                bits,
                ones,
                ones,
                zeros,
                0.0,
                min_sim,
                out_idx,
                out_sim,
            )
