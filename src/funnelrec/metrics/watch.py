"""Watch-time metrics of ranked lists: watch-time-weighted NDCG and completion rate at K.

Short-video feeds are judged by time watched, not clicks: a list that puts the video the
user watched for three minutes first beats one that puts a three-second skip first, though a
click metric scores both the same. Both metrics group rows into queries (``group``) and order
each query by descending ``score``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from funnelrec.metrics.rank import grouped_ndcg, query_positions

__all__ = ["completion_rate_at_k", "watch_time_ndcg"]


def watch_time_ndcg(play_s: ArrayLike, scores: ArrayLike, group: ArrayLike, k: int) -> float:
    """Mean NDCG@k over queries with linear gains = seconds played (0 for items not played).

    The graded NDCG of :func:`~funnelrec.metrics.rank.grouped_ndcg` (pessimistic ties,
    queries without any play left out, ``nan`` when none is left) with watch time as the gain.

    Args:
        play_s: ``[N]`` seconds each item was played after this exposure (>= 0).
        scores: ``[N]`` ranking scores.
        group: ``[N]`` integer query ids.
        k: cut-off, >= 1.

    Example:
        >>> # a 3 s skip ranked above a 60 s watch: (3 + 60/log2 3) / (60 + 3/log2 3)
        >>> round(watch_time_ndcg([3.0, 60.0], [0.9, 0.1], [0, 0], k=2), 4)
        0.6601
    """
    return grouped_ndcg(play_s, scores, group, k)


def completion_rate_at_k(
    completed: ArrayLike, scores: ArrayLike, group: ArrayLike, k: int
) -> float:
    """Mean over queries of the share of the top ``min(k, n_q)`` items that were completed.

    Ties are ordered by row (:func:`~funnelrec.metrics.rank.query_positions`). Queries with
    no completed item at all are left out, as NDCG leaves out queries without value: they
    say nothing about the order. ``nan`` when none is left.

    Args:
        completed: ``[N]`` 1 where the exposure ended in a completed play, else 0.
        scores: ``[N]`` ranking scores.
        group: ``[N]`` integer query ids.
        k: cut-off, >= 1.

    Example:
        >>> completion_rate_at_k([1, 0, 0, 1], [0.9, 0.8, 0.1, 0.2], [0, 0, 0, 0], k=2)
        0.5
        >>> completion_rate_at_k([1, 0, 0, 1], [0.9, 0.1, 0.8, 0.85], [0, 0, 0, 0], k=2)
        1.0
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    done = np.asarray(completed, dtype=np.float64)
    g = np.asarray(group)
    if done.ndim != 1 or g.shape != done.shape or np.shape(scores) != done.shape:
        raise ValueError("completed, scores and group must be 1-D arrays of one length")
    if done.size == 0:
        return float("nan")
    _, code = np.unique(g, return_inverse=True)
    top = query_positions(g, scores) < k
    n_top = np.bincount(code, weights=top.astype(np.float64))
    hits = np.bincount(code, weights=done * top)
    usable = np.bincount(code, weights=done) > 0
    if not usable.any():
        return float("nan")
    return float(np.mean(hits[usable] / n_top[usable]))
