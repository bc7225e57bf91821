"""Array primitives that every layer uses, where NumPy's own form is slow for our shapes.

NumPy 2.3 made ``np.unique`` (without ``return_*`` options) find the distinct values with a
hash table before sorting them. On the integer codes this library deduplicates (``(user,
item)`` pair codes, item and query ids) that is much slower than the sort it replaced:
``benchmarks/eval_metrics.py`` ("distinct pair codes") times both on the 10M scaling run's
ranked-candidate shape.

An indirect sort (``np.lexsort``, ``np.argsort``) of tens of millions of rows reads its keys
in random order, so past the CPU caches its cost per row grows with the array: on this
project's 2-core box a 20M-row ``lexsort`` took 4x the time of a 6M-row one for 3.3x the rows
(``benchmarks/eval_metrics.py``, "sort within queries", with ``--ndcg-queries`` 12000 and
40000). Evaluation works on candidate rows within their query, so it goes through blocks of whole
queries (:func:`group_blocks`), each small enough to stay in cache: its cost then grows with
the rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["group_blocks", "group_order", "grouped_lexsort", "positions_of", "unique_sorted"]

BLOCK_ROWS = 1 << 17
"""Rows one block of :func:`grouped_lexsort` aims at: a few MB of keys, cache-sized."""


def unique_sorted(values: ArrayLike) -> NDArray:
    """The distinct values of ``values`` (flattened), ascending: ``np.unique(values)``.

    Integer and boolean arrays are sorted and compared with their neighbour; other dtypes
    (floats, whose NaNs ``np.unique`` folds into one, strings, objects) go to ``np.unique``.

    Example:
        >>> unique_sorted(np.array([5, 1, 5, 3, 1])).tolist()
        [1, 3, 5]
        >>> unique_sorted(np.array([], dtype=np.int64)).shape
        (0,)
    """
    array = np.asarray(values).ravel()
    if array.dtype.kind not in "iub":
        return np.unique(array)
    ordered = np.sort(array)
    if ordered.shape[0] < 2:
        return ordered
    keep = np.empty(ordered.shape[0], dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def positions_of(keys: ArrayLike, wanted: ArrayLike) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """``(position [W], found [W])``: where each of ``wanted`` is in ``keys`` (distinct values,
    any order), by binary search, and whether it is there (``position`` is meaningful only
    where ``found``).

    Example:
        >>> at, found = positions_of(np.array([7, 3]), np.array([3, 5, 7]))
        >>> at[found].tolist(), found.tolist()
        ([1, 0], [True, False, True])
    """
    k, w = np.asarray(keys), np.asarray(wanted)
    if k.shape[0] == 0:
        return np.zeros(w.shape[0], dtype=np.intp), np.zeros(w.shape[0], dtype=np.bool_)
    sorter = np.argsort(k, kind="stable")
    at = sorter[np.minimum(np.searchsorted(k, w, sorter=sorter), k.shape[0] - 1)]
    return at, k[at] == w


def group_order(group: ArrayLike) -> NDArray[np.intp] | None:
    """None when ``group`` is non-decreasing (each group's rows contiguous, groups ascending),
    else the stable sort of ``group`` that makes it so.

    Example:
        >>> group_order(np.array([1, 1, 4])) is None, group_order(np.array([4, 1, 4])).tolist()
        (True, [1, 0, 2])
    """
    g = np.asarray(group)
    return np.argsort(g, kind="stable") if (g[1:] < g[:-1]).any() else None


def group_blocks(group: NDArray, block_rows: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of whole groups covering a non-decreasing
    ``group``, each of about ``block_rows`` (default :data:`BLOCK_ROWS`) rows, more when one
    group is larger.

    Work done block by block keeps its arrays cache-sized, so its cost grows with the rows.

    Example:
        >>> group_blocks(np.array([0, 0, 0, 1, 2, 2]), block_rows=2)
        [(0, 4), (4, 6)]
    """
    n = group.shape[0]
    block_rows = BLOCK_ROWS if block_rows is None else block_rows
    # A cut at every block_rows rows, moved back to the start of the group it falls in.
    cuts = np.searchsorted(group, group[np.arange(block_rows, n, block_rows)], side="left")
    bounds = unique_sorted(np.concatenate(([0], cuts, [n]))).tolist()
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def grouped_lexsort(
    keys: Sequence[ArrayLike], group: ArrayLike, block_rows: int | None = None
) -> NDArray[np.intp]:
    """``np.lexsort((*keys, group))``: the rows ordered by ``group``, then by the last of
    ``keys``, ..., then the first (ties keep the input order), sorted block by block
    (:func:`group_blocks`) after one stable sort of ``group`` where its groups are not in
    order.

    Example:
        >>> grouped_lexsort([np.array([0.3, 0.1, 0.2])], np.array([1, 0, 1])).tolist()
        [1, 2, 0]
        >>> grouped_lexsort([np.array([3, 1, 2, 0])], np.array([0, 0, 1, 1]), 2).tolist()
        [1, 0, 3, 2]
    """
    g = np.asarray(group)
    columns = [np.asarray(key) for key in keys]
    block_rows = BLOCK_ROWS if block_rows is None else block_rows
    if g.shape[0] <= block_rows:
        return np.lexsort((*columns, g))
    in_order = group_order(g)
    if in_order is not None:
        inner = grouped_lexsort([c[in_order] for c in columns], g[in_order], block_rows)
        return in_order[inner]
    order = np.empty(g.shape[0], dtype=np.intp)
    for start, stop in group_blocks(g, block_rows):
        block = np.lexsort((*(c[start:stop] for c in columns), g[start:stop]))
        order[start:stop] = block + start
    return order
