"""Per-query sparse rows as plain CSR arrays (``ptr [B + 1]``, ``cols``, ``vals``).

The request path builds these instead of ``scipy.sparse`` matrices: a scipy constructor runs
~0.1 ms of Python-level checks (index dtypes, shapes, canonical format), more than the
arithmetic for the one query of a served request. The kernels here reproduce scipy's
arithmetic exactly (same dtypes, same order of summation), so results are bit-identical.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["csr_dense_product", "row_ptr", "sorted_by_row"]


def row_ptr(rows: NDArray[np.integer], n_rows: int) -> NDArray[np.int64]:
    """``[n_rows + 1]`` CSR offsets of entries whose row ids ``rows`` are sorted ascending."""
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
    return ptr


def sorted_by_row(rows: NDArray[np.integer], cols: NDArray[np.integer]) -> NDArray[np.int64]:
    """The permutation sorting entries by ``(row, col)``; stable, so equal pairs keep their
    input order (scipy's canonical CSR order: columns ascending within a row)."""
    if rows.shape[0] < 2:
        return np.arange(rows.shape[0], dtype=np.int64)
    return np.lexsort((cols, rows)).astype(np.int64, copy=False)


@numba.njit(cache=True, parallel=True)
def _csr_dense(ptr, cols, vals, dense, out):  # pragma: no cover - compiled
    for r in numba.prange(ptr.shape[0] - 1):
        row = out[r]
        for jj in range(ptr[r], ptr[r + 1]):
            v = vals[jj]
            src = dense[cols[jj]]
            for t in range(row.shape[0]):
                row[t] += v * src[t]


def csr_dense_product(
    ptr: NDArray[np.int64], cols: NDArray[np.integer], vals: NDArray, dense: NDArray
) -> NDArray:
    """``A @ dense`` for CSR ``A [B, N]`` and ``dense [N, D]``, as scipy computes it.

    scipy (``csr_matvecs``) starts each output row at zero and adds ``a_ij * dense[j]`` for
    the row's entries in stored order, in the common dtype of both operands; so does this, so
    the result is bit-identical to ``csr_matrix((vals, cols, ptr)) @ dense``.

    Args:
        ptr: ``[B + 1]`` row offsets.
        cols: ``[nnz]`` column of each entry (in ``[0, N)``).
        vals: ``[nnz]`` entry values.
        dense: ``[N, D]``.

    Returns:
        ``[B, D]`` in the common dtype of ``vals`` and ``dense``.

    Example:
        >>> csr_dense_product(np.array([0, 2]), np.array([0, 1]), np.array([2.0, 1.0]),
        ...     np.array([[1.0, 0.0], [0.5, 3.0]])).tolist()
        [[2.5, 3.0]]
    """
    dtype = np.result_type(vals.dtype, dense.dtype)
    out = np.zeros((ptr.shape[0] - 1, dense.shape[1]), dtype=dtype)
    if cols.shape[0]:
        _csr_dense(
            np.asarray(ptr, dtype=np.int64),
            np.asarray(cols, dtype=np.int64),
            np.asarray(vals, dtype=dtype),
            np.ascontiguousarray(dense, dtype=dtype),
            out,
        )
    return out
