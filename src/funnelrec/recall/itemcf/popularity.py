"""Popularity-bias correction of ItemCF's neighbour lists (docs/debiasing.md).

Co-occurrence counts favour items that were shown (and so clicked) often: the exposure policy's
own bias, fed back. The opt-in correction divides each kept similarity by the candidate's
popularity ``|N(j)| ** beta`` (the ItemCF analogue of the two-tower's logQ correction) and
re-orders each neighbour list; the corrected lists are the fitted state, so serving, saving and
loading need nothing more.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def correct_popularity(
    idx: NDArray[np.int32], sim: NDArray[np.float32], users_of: NDArray[np.float64], beta: float
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """``[n_items, K]`` neighbour lists with ``sim / users_of[j] ** beta``, best first.

    Args:
        idx: ``[n_items, K]`` neighbour items (-1 = padding, kept last).
        sim: ``[n_items, K]`` their similarities.
        users_of: ``[n_items]`` distinct users of each item (its popularity).
        beta: strength (0 = unchanged).

    Example:
        >>> idx = np.array([[1, 2]], dtype=np.int32)
        >>> sim = np.array([[0.9, 0.5]], dtype=np.float32)
        >>> correct_popularity(idx, sim, np.array([1.0, 100.0, 1.0]), 0.5)[0].tolist()
        [[2, 1]]
    """
    if beta == 0:
        return idx, sim
    valid = idx >= 0
    pop = np.maximum(users_of, 1.0)[np.where(valid, idx, 0)]
    corrected = np.where(valid, sim / pop**beta, -np.inf)
    order = np.argsort(-corrected, axis=1, kind="stable")
    out_idx = np.take_along_axis(idx, order, axis=1)
    out_sim = np.take_along_axis(np.where(valid, corrected, 0.0), order, axis=1)
    return out_idx.astype(np.int32), out_sim.astype(np.float32)


__all__ = ["correct_popularity"]
