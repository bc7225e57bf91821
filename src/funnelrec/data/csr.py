"""Compressed sparse rows (``ptr [R + 1]`` offsets into a flat array): the layout of every
per-query list (histories, onboarding tags, held-out truth, masks)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def take_rows(
    ptr: NDArray[np.int64], rows: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Offsets and gather positions of the CSR rows ``rows``, in that order.

    Example:
        >>> ptr = np.array([0, 2, 2, 5])
        >>> new_ptr, gather = take_rows(ptr, np.array([2, 0]))
        >>> new_ptr.tolist(), gather.tolist()
        ([0, 3, 5], [2, 3, 4, 0, 1])
    """
    starts = ptr[rows]
    return gather_ranges(starts, ptr[rows + 1] - starts)


def gather_ranges(
    starts: NDArray[np.int64], lens: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Offsets and gather positions of the ranges ``[starts[r], starts[r] + lens[r])``.

    Example:
        >>> new_ptr, gather = gather_ranges(np.array([4, 0]), np.array([2, 1]))
        >>> new_ptr.tolist(), gather.tolist()
        ([0, 2, 3], [4, 5, 0])
    """
    new_ptr = np.zeros(starts.shape[0] + 1, dtype=np.int64)
    np.cumsum(lens, out=new_ptr[1:])
    return new_ptr, np.repeat(starts - new_ptr[:-1], lens) + np.arange(new_ptr[-1])


def csr_rows(
    ptr: NDArray[np.int64], idx: NDArray[np.int64], rows: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The CSR (``ptr``, ``idx``) restricted to ``rows``, in that order."""
    new_ptr, gather = take_rows(ptr, rows)
    return new_ptr, idx[gather]
