"""Top-k selection per row of a sparse score matrix, with per-row exclusions (seen items)."""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


@numba.njit(cache=True, parallel=True)
def _csr_topk(indptr, indices, data, excl_ptr, excl_idx, k, out_idx, out_score):  # pragma: no cover
    n_rows = indptr.shape[0] - 1
    for r in numba.prange(n_rows):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        if n == 0:
            continue
        cols = indices[start:end]
        vals = data[start:end].astype(np.float64)
        ex = excl_idx[excl_ptr[r] : excl_ptr[r + 1]]
        if ex.shape[0] > 0:
            ex_sorted = np.sort(ex)
            for t in range(n):
                pos = np.searchsorted(ex_sorted, cols[t])
                if pos < ex_sorted.shape[0] and ex_sorted[pos] == cols[t]:
                    vals[t] = -np.inf
        # A long row (a popularity channel scores the whole catalogue) is cut to the entries
        # at or above its k-th largest value first: O(n) instead of an O(n log n) sort.
        keep = np.arange(n)
        if n > 4 * k:
            kth = -np.partition(-vals, k - 1)[k - 1]
            keep = np.flatnonzero(vals >= kth)
        # Ties broken by the smaller item index (columns are sorted and mergesort is stable),
        # so results are deterministic.
        order = keep[np.argsort(-vals[keep], kind="mergesort")]
        for m in range(min(order.shape[0], k)):
            j = order[m]
            if vals[j] == -np.inf:
                break
            out_idx[r, m] = cols[j]
            out_score[r, m] = vals[j]


def sparse_topk(
    scores: sp.csr_matrix,
    k: int,
    exclude_ptr: NDArray[np.int64] | None = None,
    exclude_idx: NDArray[np.int32] | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Top-k columns per row of ``scores`` ``[B, N]``, skipping excluded columns.

    Only stored entries are candidates (an absent entry is "not retrieved", not a zero score).

    Args:
        scores: CSR ``[B, N]``.
        k: how many to keep per row.
        exclude_ptr: ``[B + 1]`` CSR offsets of the columns to skip per row (optional).
        exclude_idx: the columns to skip.

    Returns:
        ``(item_idx [B, k] int32 with -1 padding, score [B, k] float32 with -inf padding)``,
        rows in descending score, ties by ascending column.

    Example:
        >>> import scipy.sparse as sp
        >>> m = sp.csr_matrix(np.array([[0.0, 2.0, 1.0]]))
        >>> sparse_topk(m, 2)[0].tolist()
        [[1, 2]]
    """
    scores = sp.csr_matrix(scores)
    scores.sort_indices()
    n_rows = scores.shape[0]
    if exclude_ptr is None:
        exclude_ptr = np.zeros(n_rows + 1, dtype=np.int64)
        exclude_idx = np.zeros(0, dtype=np.int32)
    out_idx = np.full((n_rows, k), -1, dtype=np.int32)
    out_score = np.full((n_rows, k), -np.inf, dtype=np.float32)
    _csr_topk(
        scores.indptr.astype(np.int64),
        scores.indices.astype(np.int32),
        scores.data,
        np.asarray(exclude_ptr, dtype=np.int64),
        np.asarray(exclude_idx, dtype=np.int32),
        k,
        out_idx,
        out_score,
    )
    return out_idx, out_score
