"""ItemCF's fit on dense data: every pair once, into a catalogue x catalogue matrix.

:func:`~funnelrec.recall.itemcf.kernel.itemcf_topk` walks, for every item ``i``, both
directions from each occurrence, so each co-occurring pair is visited twice (as implicit's
``all_pairs_knn`` does). The two visits carry the same weight up to the direction factor: a
pair at positions ``p < q`` of user ``u`` adds ``forward_weight * w`` to ``C[i_p, i_q]`` and
``backward_weight * w`` to ``C[i_q, i_p]``, with the same
``w = act(u) * position_decay ** (q - p - 1) * T(t_q - t_p) * recency(q)`` (the pair's later
position is ``q`` either way). So with ``F[i, j]`` the sum of ``w`` over pairs where ``j``
follows ``i``,

    ``C = forward_weight * F + backward_weight * F.T``

and only the forward half of each walk is needed: half the pair visits. The weights are not a
matrix product (time/position decays and the window depend on the pair's distance in the
sequence, and the direction weights are asymmetric), so ``F`` is still summed pair by pair,
but on dense data (MovieLens: most items co-occur with most others) a dense ``F`` costs no
more memory than the pairs are worth. It is chosen at fit time when the pairs outnumber
``n_items ** 2`` and ``F`` fits :data:`DENSE_MAX_BYTES` (:func:`use_dense_fit`).

The sums are the same as the sparse kernel's up to float64 association (~1e-15 relative); the
top-K selection is the same code (:func:`~funnelrec.recall.itemcf.kernel._select`).
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.itemcf.kernel import _BUCKETED_SORT, _N_BUCKETS, MIN_SIM, RUN_FLOOR, _select
from funnelrec.recall.itemcf.sequences import Sequences

FloatArray = NDArray[np.float64]

DENSE_MAX_BYTES = 512 * 2**20
"""Largest float64 ``F`` (``n_items ** 2 * 8`` bytes) the dense fit allocates: 8192 items."""


def ordered_pairs(user_len: NDArray[np.int64], window: int) -> int:
    """Ordered position pairs ``(p, q)``, ``0 < |p - q| <= window``, over all sequences: the
    sparse kernel's work."""
    n = user_len.astype(np.int64)
    w = np.minimum(window, np.maximum(n - 1, 0))
    return int((2 * (w * n - w * (w + 1) // 2)).sum())


def use_dense_fit(user_len: NDArray[np.int64], window: int, n_items: int) -> bool:
    """Dense when the pairs outnumber the ``n_items ** 2`` cells the dense fit scans, and
    ``F`` fits :data:`DENSE_MAX_BYTES`."""
    cells = n_items * n_items
    return cells * 8 <= DENSE_MAX_BYTES and ordered_pairs(user_len, window) >= cells


def fit_dense(
    seq: Sequences,
    step: FloatArray,
    recency: FloatArray,
    user_weight: FloatArray,
    config: ItemCFConfig,
    window: np.int64,
    norms: tuple[FloatArray, FloatArray],
    created_decay: tuple[FloatArray, float],
    n_chunks: np.int64,
    out: tuple[NDArray[np.int32], NDArray[np.float32]],
) -> None:
    """Fill ``out`` (``neighbor_idx`` pre-filled with -1, ``neighbor_sim`` with 0) as
    :func:`~funnelrec.recall.itemcf.kernel.itemcf_topk` does, from ``F`` (module docstring).

    The arrays are the ones ``ItemCF.fit`` builds for the sparse kernel; ``norms`` is
    ``(|N(i)| ** alpha, |N(j)| ** (1 - alpha))``, ``created_decay`` ``(created, rate)``.
    """
    n_items = seq.item_ptr.shape[0] - 1
    sums = np.zeros((n_items, n_items), dtype=np.float64)
    forward_sums(
        seq.user_ptr,
        seq.item,
        step,
        recency,
        user_weight,
        seq.item_ptr,
        seq.occ_pos,
        seq.occ_user,
        window,
        float(config.position_decay),
        n_chunks,
        sums,
    )
    add_directions(sums, float(config.forward_weight), float(config.backward_weight))
    dense_topk(sums, *norms, *created_decay, MIN_SIM, n_chunks, *out)


@numba.njit(cache=True, parallel=True, fastmath=True)
def forward_sums(
    user_ptr,
    seq_item,
    step,
    recency,
    user_weight,
    item_ptr,
    occ_pos,
    occ_user,
    window,
    position_decay,
    n_chunks,
    out,
):  # pragma: no cover - compiled
    """``out[i, j] += w`` over every pair where ``j`` follows ``i`` (``out`` zeros on entry).

    The arguments are :func:`~funnelrec.recall.itemcf.kernel.itemcf_topk`'s; rows are split
    over ``n_chunks`` interleaved chunks, so no two threads write one row. The running
    product advances four positions per multiplication: its latency bounded the one-step
    walk (the four partial products are built off that chain).
    """
    n_items = item_ptr.shape[0] - 1
    for c in numba.prange(n_chunks):
        for i in range(c, n_items, n_chunks):
            row = out[i]
            for e in range(item_ptr[i], item_ptr[i + 1]):
                u = occ_user[e]
                g = occ_pos[e]
                hi = min(user_ptr[u + 1], g + window + 1)
                run = user_weight[u] / position_decay
                h = g + 1
                while h + 3 < hi:
                    s1 = step[h]
                    s2 = s1 * step[h + 1]
                    s3 = s2 * step[h + 2]
                    s4 = s3 * step[h + 3]
                    if run * s1 < RUN_FLOOR:
                        h = hi
                        break
                    row[seq_item[h]] += run * s1 * recency[h]
                    row[seq_item[h + 1]] += run * s2 * recency[h + 1]
                    row[seq_item[h + 2]] += run * s3 * recency[h + 2]
                    row[seq_item[h + 3]] += run * s4 * recency[h + 3]
                    run *= s4
                    h += 4
                while h < hi:
                    run *= step[h]
                    if run < RUN_FLOOR:
                        break
                    row[seq_item[h]] += run * recency[h]
                    h += 1


@numba.njit(cache=True, parallel=True)
def add_directions(forward, forward_weight, backward_weight):  # pragma: no cover - compiled
    """``forward <- forward_weight * F + backward_weight * F.T`` in place (``C`` from ``F``).

    Row ``i`` handles the cells ``(i, j)`` and ``(j, i)`` for ``j > i``: each cell once.
    """
    n = forward.shape[0]
    for i in numba.prange(n):
        forward[i, i] *= forward_weight + backward_weight  # stays 0: sequences are deduped
        for j in range(i + 1, n):
            a = forward[i, j]
            b = forward[j, i]
            forward[i, j] = forward_weight * a + backward_weight * b
            forward[j, i] = forward_weight * b + backward_weight * a


@numba.njit(cache=True, parallel=True)
def dense_topk(
    sums, norm_i, norm_j, created, created_rate, min_sim, n_chunks, out_idx, out_sim
):  # pragma: no cover - compiled
    """The top-K of every row of ``sums`` (``C``; consumed: rows are zeroed), normalised and
    ordered exactly as :func:`~funnelrec.recall.itemcf.kernel.itemcf_topk` does."""
    n_items = sums.shape[0]
    for c in numba.prange(n_chunks):
        work = np.empty(n_items, dtype=np.uint64)
        scratch = np.empty(_BUCKETED_SORT, dtype=np.uint64)
        hist = np.empty(_N_BUCKETS, dtype=np.int64)
        f32 = np.empty(1, dtype=np.float32)
        bits = f32.view(np.uint32)
        for i in range(c, n_items, n_chunks):
            row = sums[i]
            m = np.int64(0)
            for j in range(n_items):  # the touched list: every non-zero sum
                work[m] = j
                m += np.int64(row[j] != 0.0)
            _select(
                i,
                m,
                row,
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
