"""Top-k selection per row of sparse scores, with per-row exclusions (seen items).

Every entry point applies one rule per row (``_row_order``): descending score, ties by the
smaller column, excluded columns skipped, ``-inf`` never returned. They take plain arrays
(CSR ``indptr/indices/data``, COO triples, pre-ranked lists): the channels build those
directly, since a ``scipy.sparse`` constructor costs ~0.1 ms of Python checks per call, more
than the selection itself for a served request. :func:`sparse_topk` keeps the scipy interface.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from funnelrec.recall.base import Queries
from funnelrec.recall.sparse import row_ptr, sorted_by_row

__all__ = [
    "binary_matmul_topk",
    "coo_topk",
    "csr_topk",
    "matmul_topk",
    "ranked_topk",
    "seen_exclusions",
    "sparse_topk",
]

Exclusions = tuple[NDArray[np.int64], NDArray[np.int32]]
"""``(ptr [B + 1], columns)``: CSR of the columns each row must skip (its seen items)."""


@numba.njit(cache=True)
def _exclude_columns(cols, vals, ex):  # pragma: no cover - compiled
    """Set ``vals[t] = -inf`` where ``cols[t]`` is one of the (unsorted) columns ``ex``."""
    if ex.shape[0] == 0:
        return
    ex_sorted = np.sort(ex)
    for t in range(cols.shape[0]):
        pos = np.searchsorted(ex_sorted, cols[t])
        if pos < ex_sorted.shape[0] and ex_sorted[pos] == cols[t]:
            vals[t] = -np.inf


@numba.njit(cache=True)
def _row_order(vals, k):  # pragma: no cover - compiled
    """Positions of the ``k`` largest values of ``vals`` (float64) above ``-inf``, best
    first, ties by the smaller position (callers order positions by column)."""
    n = vals.shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    # A long row (a popularity channel scores the whole catalogue) is cut to the entries
    # at or above its k-th largest value first: O(n) instead of an O(n log n) sort.
    keep = np.arange(n)
    if n > 4 * k:
        kth = -np.partition(-vals, k - 1)[k - 1]
        keep = np.flatnonzero(vals >= kth)
    # mergesort is stable: ties keep the ascending position order.
    order = keep[np.argsort(-vals[keep], kind="mergesort")]
    m = 0
    while m < min(order.shape[0], k) and vals[order[m]] != -np.inf:
        m += 1
    return order[:m]


@numba.njit(cache=True)
def _row_order_by_column(cols, vals, k):  # pragma: no cover - compiled
    """:func:`_row_order` for entries in any column order: positions of the ``k`` largest
    ``vals`` above ``-inf``, best first, ties by the smaller column (``cols`` distinct)."""
    n = vals.shape[0]
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.arange(n)
    if n > 4 * k:  # as _row_order: the entries at or above the k-th largest value
        kth = -np.partition(-vals, k - 1)[k - 1]
        keep = np.flatnonzero(vals >= kth)
    # Column order first, then a stable sort by value: ties keep the column order.
    keep = keep[np.argsort(cols[keep], kind="mergesort")]
    order = keep[np.argsort(-vals[keep], kind="mergesort")]
    m = 0
    while m < min(order.shape[0], k) and vals[order[m]] != -np.inf:
        m += 1
    return order[:m]


@numba.njit(cache=True, parallel=True)
def _csr_topk(indptr, indices, data, excl_ptr, excl_idx, k, out_idx, out_score):  # pragma: no cover
    for r in numba.prange(indptr.shape[0] - 1):
        start, end = indptr[r], indptr[r + 1]
        cols = indices[start:end]
        vals = data[start:end].astype(np.float64)
        _exclude_columns(cols, vals, excl_idx[excl_ptr[r] : excl_ptr[r + 1]])
        order = _row_order(vals, k)
        for m in range(order.shape[0]):
            out_idx[r, m] = cols[order[m]]
            out_score[r, m] = vals[order[m]]


@numba.njit(cache=True, parallel=True)
def _matmul_topk(
    a_ptr,
    a_idx,
    a_val,
    b_ptr,
    b_idx,
    b_val,
    n_cols,
    excl_ptr,
    excl_idx,
    k,
    n_chunks,
    out_idx,
    out_score,
):  # pragma: no cover - compiled
    n_rows = a_ptr.shape[0] - 1
    for chunk in numba.prange(n_chunks):
        # One accumulator per chunk of rows (reset through the touched list), as scipy's
        # csr_matmat keeps one per call: no O(n_cols) allocation per row.
        acc = np.zeros(n_cols, dtype=a_val.dtype)
        seen = np.zeros(n_cols, dtype=np.bool_)
        touched = np.empty(n_cols, dtype=np.int64)
        for r in range(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks):
            n = 0
            for jj in range(a_ptr[r], a_ptr[r + 1]):
                j, v = a_idx[jj], a_val[jj]
                for kk in range(b_ptr[j], b_ptr[j + 1]):
                    c = b_idx[kk]
                    acc[c] += v * b_val[kk]
                    if not seen[c]:
                        seen[c] = True
                        touched[n] = c
                        n += 1
            # Unsorted: only the columns that make the top k are put in column order, by
            # _row_order_by_column (sorting every touched column cost ~20 us per served row).
            cols = touched[:n].copy()
            vals = np.empty(n, dtype=np.float64)
            m = 0
            for t in range(n):
                c = cols[t]
                if acc[c] != 0:  # scipy drops exact zero sums: they are no candidates
                    cols[m] = c
                    vals[m] = acc[c]
                    m += 1
                acc[c] = 0
                seen[c] = False
            _exclude_columns(cols[:m], vals[:m], excl_idx[excl_ptr[r] : excl_ptr[r + 1]])
            order = _row_order_by_column(cols[:m], vals[:m], k)
            for t in range(order.shape[0]):
                out_idx[r, t] = cols[order[t]]
                out_score[r, t] = vals[order[t]]


@numba.njit(cache=True, parallel=True)
def _ranked_topk(
    start, stop, idx, score, excl_ptr, excl_idx, k, out_idx, out_score
):  # pragma: no cover
    for r in numba.prange(start.shape[0]):
        ex = np.sort(excl_idx[excl_ptr[r] : excl_ptr[r + 1]])
        m = 0
        for p in range(start[r], stop[r]):
            if m == k:
                break
            c = idx[p]
            if c < 0:
                continue
            pos = np.searchsorted(ex, c)
            if pos < ex.shape[0] and ex[pos] == c:
                continue
            out_idx[r, m] = c
            out_score[r, m] = score[p]
            m += 1


@numba.njit(cache=True, parallel=True)
def _binary_matmul_topk(
    ptr, cols, dense, columns, k, exclude_rows, out_idx, out_score
):  # pragma: no cover
    for r in numba.prange(ptr.shape[0] - 1):
        lo, hi = ptr[r], ptr[r + 1]
        if lo == hi:
            continue  # an empty row scores nothing: no candidates
        # x @ dense for a binary row x, summed in the row's column order from zero in the
        # dense dtype: what scipy's csr_matvecs computes for csr(x) @ dense (1.0 * w is exact).
        acc = np.zeros(dense.shape[1], dtype=dense.dtype)
        for jj in range(lo, hi):
            src = dense[cols[jj]]
            for t in range(acc.shape[0]):
                acc[t] += src[t]
        vals = acc.astype(np.float64)
        if exclude_rows:
            for jj in range(lo, hi):
                vals[cols[jj]] = -np.inf
        order = _row_order(vals, k)
        for m in range(order.shape[0]):
            out_idx[r, m] = columns[order[m]]
            out_score[r, m] = vals[order[m]]


def _index_array(arr: NDArray[np.integer]) -> NDArray[np.integer]:
    """``arr`` itself when it holds int32 or int64 (no copy), else as int64."""
    arr = np.asarray(arr)
    return arr if arr.dtype in (np.int32, np.int64) else arr.astype(np.int64)


def _outputs(n_rows: int, k: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    return np.full((n_rows, k), -1, dtype=np.int32), np.full((n_rows, k), -np.inf, np.float32)


def _exclusions(n_rows: int, exclude: Exclusions | None) -> Exclusions:
    if exclude is None:
        return np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    return np.asarray(exclude[0], dtype=np.int64), np.asarray(exclude[1], dtype=np.int32)


def seen_exclusions(queries: Queries, exclude_seen: bool) -> Exclusions | None:
    """Each query's history items as the exclusions of the top-k helpers (None: keep them)."""
    return (queries.history_ptr, queries.history_item) if exclude_seen else None


def csr_topk(
    indptr: NDArray[np.integer],
    indices: NDArray[np.integer],
    data: NDArray[np.floating],
    k: int,
    exclude: Exclusions | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Top-k columns per row of CSR scores given as arrays (see :func:`sparse_topk`).

    Args:
        indptr: ``[B + 1]`` row offsets.
        indices: ``[nnz]`` columns, ascending within each row (ties go to the earlier entry).
        data: ``[nnz]`` scores; every stored entry is a candidate.
        k: how many to keep per row.
        exclude: ``(ptr [B + 1], columns)`` CSR of the columns to skip per row (optional).

    Returns:
        ``(item_idx [B, k] int32 with -1 padding, score [B, k] float32 with -inf padding)``.
    """
    n_rows = indptr.shape[0] - 1
    out_idx, out_score = _outputs(n_rows, k)
    ex_ptr, ex_idx = _exclusions(n_rows, exclude)
    _csr_topk(
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int32),
        np.asarray(data),
        ex_ptr,
        ex_idx,
        k,
        out_idx,
        out_score,
    )
    return out_idx, out_score


def sparse_topk(
    scores: sp.csr_matrix | sp.spmatrix | sp.sparray,
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
        >>> m = sp.csr_matrix(np.array([[0.0, 2.0, 1.0]]))
        >>> sparse_topk(m, 2)[0].tolist()
        [[1, 2]]
    """
    scores = sp.csr_matrix(scores)
    scores.sort_indices()
    exclude = None if exclude_ptr is None or exclude_idx is None else (exclude_ptr, exclude_idx)
    return csr_topk(scores.indptr, scores.indices, scores.data, k, exclude)


def coo_topk(
    rows: NDArray[np.integer],
    cols: NDArray[np.integer],
    vals: NDArray[np.floating],
    n_rows: int,
    k: int,
    exclude: Exclusions | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Top-k per row of scores given as ``(row, col, value)`` triples in any order; repeated
    ``(row, col)`` pairs are summed, as ``csr_matrix((vals, (rows, cols)))`` does (in input
    order; scipy's order is that of an unstable sort, so sums of three or more floats may
    differ from scipy's in the last bit).

    Returns:
        As :func:`sparse_topk`.
    """
    order = sorted_by_row(rows, cols)
    rows, cols, vals = rows[order], cols[order], vals[order]
    if rows.shape[0] > 1:
        first = np.ones(rows.shape[0], dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        if not first.all():
            starts = np.flatnonzero(first)
            rows, cols = rows[starts], cols[starts]
            vals = np.add.reduceat(vals, starts)
    ptr = row_ptr(rows, n_rows)
    return csr_topk(ptr, cols, vals, k, exclude)


def matmul_topk(
    a_ptr: NDArray[np.integer],
    a_idx: NDArray[np.integer],
    a_val: NDArray[np.floating],
    b: sp.csr_matrix | sp.csr_array,
    k: int,
    exclude: Exclusions | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Top-k per row of ``A @ b`` with ``A`` given as CSR arrays, without building ``A`` or
    the product.

    The product follows scipy's ``csr_matmat`` exactly: each output entry starts at zero and
    adds ``a_ij * b_jc`` over ``A``'s row entries in stored order, in the common dtype, and
    entries summing to exactly zero are dropped (no candidates); so the result equals
    ``sparse_topk(csr_matrix((a_val, a_idx, a_ptr)) @ b, ...)`` bit for bit.

    Args:
        a_ptr, a_idx, a_val: ``A`` ``[B, M]`` as CSR arrays.
        b: CSR ``[M, N]``.
        k, exclude: as :func:`csr_topk`.

    Returns:
        As :func:`sparse_topk`.
    """
    n_rows = a_ptr.shape[0] - 1
    out_idx, out_score = _outputs(n_rows, k)
    ex_ptr, ex_idx = _exclusions(n_rows, exclude)
    dtype = np.result_type(a_val.dtype, b.dtype)
    n_chunks = max(1, min(n_rows, 4 * numba.get_num_threads()))
    _matmul_topk(
        np.asarray(a_ptr, dtype=np.int64),
        np.asarray(a_idx, dtype=np.int64),
        np.asarray(a_val, dtype=dtype),
        # b's index arrays as they are (the kernel compiles for int32 or int64): converting
        # them copied the whole matrix (~40 us for ItemCF's) on every served request.
        _index_array(b.indptr),
        _index_array(b.indices),
        np.asarray(b.data, dtype=dtype),
        np.int64(b.shape[1]),
        ex_ptr,
        ex_idx,
        k,
        np.int64(n_chunks),
        out_idx,
        out_score,
    )
    return out_idx, out_score


def ranked_topk(
    start: NDArray[np.integer],
    stop: NDArray[np.integer],
    idx: NDArray[np.integer],
    score: NDArray[np.floating],
    k: int,
    exclude: Exclusions | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """The first ``k`` items of already ranked lists, skipping ``-1`` and excluded items.

    Row ``r`` reads ``idx[start[r]:stop[r]]`` (best first) and their ``score``; rows may
    share one list (a global popularity ranking) or slice one flat array each.

    Returns:
        As :func:`sparse_topk`.

    Example:
        >>> idx, _ = ranked_topk(np.array([0, 0]), np.array([3, 3]), np.array([7, 2, 5]),
        ...     np.array([3.0, 2.0, 1.0]), 2, (np.array([0, 1, 1]), np.array([2], np.int32)))
        >>> idx.tolist()
        [[7, 5], [7, 2]]
    """
    n_rows = start.shape[0]
    out_idx, out_score = _outputs(n_rows, k)
    ex_ptr, ex_idx = _exclusions(n_rows, exclude)
    _ranked_topk(
        np.asarray(start, dtype=np.int64),
        np.asarray(stop, dtype=np.int64),
        np.asarray(idx, dtype=np.int64),
        np.asarray(score),
        ex_ptr,
        ex_idx,
        k,
        out_idx,
        out_score,
    )
    return out_idx, out_score


def binary_matmul_topk(
    ptr: NDArray[np.integer],
    cols: NDArray[np.integer],
    dense: NDArray[np.floating],
    columns: NDArray[np.integer],
    k: int,
    *,
    exclude_rows: bool,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Top-k per row of ``x @ dense`` for binary CSR rows ``x`` (an item-item model scoring
    histories), without materialising the ``[B, N]`` scores: one row at a time.

    Sums are scipy's (``csr_matrix((ones, cols, ptr)) @ dense``) bit for bit when each row's
    ``cols`` are ascending. Ties go to the smaller column, so to the smaller item when
    ``columns`` is ascending.

    Args:
        ptr, cols: ``x`` ``[B, M]`` as CSR arrays (distinct columns per row).
        dense: ``[M, N]`` scores of each column's item for every candidate.
        columns: ``[N]`` the item id of each candidate column.
        k: items per row.
        exclude_rows: skip the candidates ``cols`` of the row itself (a history's own items,
            when ``dense`` is item x item).

    Returns:
        As :func:`sparse_topk` (item ids from ``columns``); empty rows are all padding.
    """
    n_rows = ptr.shape[0] - 1
    out_idx, out_score = _outputs(n_rows, k)
    if dense.shape[1]:
        _binary_matmul_topk(
            np.asarray(ptr, dtype=np.int64),
            np.asarray(cols, dtype=np.int64),
            dense,
            np.asarray(columns),
            k,
            exclude_rows,
            out_idx,
            out_score,
        )
    return out_idx, out_score
