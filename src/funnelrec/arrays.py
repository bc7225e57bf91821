"""Array primitives that every layer uses, where NumPy's own form is slow for our shapes.

NumPy 2.3 made ``np.unique`` (without ``return_*`` options) find the distinct values with a
hash table before sorting them. On the integer codes this library deduplicates (``(user,
item)`` pair codes, item and query ids) that is much slower than the sort it replaced:
``benchmarks/eval_metrics.py`` ("distinct pair codes") times both on the 10M scaling run's
ranked-candidate shape.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["unique_sorted"]


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
