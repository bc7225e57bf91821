"""Top-K ranking metrics as pure functions over a recommendation matrix and the ground truth.

Conventions: ``recs`` is ``[B, k]`` int (item indices, best first, -1 = padding, no duplicates
within a row); the truth is CSR (``truth_ptr [B + 1]``, ``truth_idx [T]``) of relevant items
per row. Every metric returns the mean over rows; rows with an empty truth must be removed by
the caller (they have no defined recall).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def hit_matrix(
    recs: NDArray[np.integer], truth_ptr: NDArray[np.integer], truth_idx: NDArray[np.integer]
) -> NDArray[np.bool_]:
    """``[B, k]`` True where ``recs[b, r]`` is in row b's truth.

    Example:
        >>> hit_matrix(np.array([[3, 1, -1]]), np.array([0, 2]), np.array([1, 5])).tolist()
        [[False, True, False]]
    """
    recs = np.asarray(recs, dtype=np.int64)
    n_rows = recs.shape[0]
    lens = np.diff(np.asarray(truth_ptr, dtype=np.int64))
    if lens.shape[0] != n_rows:
        raise ValueError(f"truth has {lens.shape[0]} rows, recs has {n_rows}")
    width = int(max(recs.max(initial=0), np.max(truth_idx, initial=0))) + 2
    truth_keys = np.repeat(np.arange(n_rows, dtype=np.int64), lens) * width + np.asarray(
        truth_idx, dtype=np.int64
    )
    rec_keys = np.arange(n_rows, dtype=np.int64)[:, None] * width + recs
    return np.isin(rec_keys, truth_keys) & (recs >= 0)


def _truth_sizes(truth_ptr: NDArray[np.integer]) -> NDArray[np.float64]:
    sizes = np.diff(np.asarray(truth_ptr, dtype=np.int64)).astype(np.float64)
    if np.any(sizes == 0):
        raise ValueError("every row needs at least one relevant item; drop empty rows first")
    return sizes


def recall_at_k(hits: NDArray[np.bool_], truth_ptr: NDArray[np.integer], k: int) -> float:
    """Mean of |relevant in top k| / |relevant|.

    Example:
        >>> recall_at_k(np.array([[True, False, True]]), np.array([0, 4]), 2)
        0.25
    """
    return float(np.mean(hits[:, :k].sum(axis=1) / _truth_sizes(truth_ptr)))


def hit_rate_at_k(hits: NDArray[np.bool_], k: int) -> float:
    """Fraction of rows with at least one relevant item in the top k."""
    return float(np.mean(hits[:, :k].any(axis=1)))


def precision_at_k(hits: NDArray[np.bool_], k: int) -> float:
    """Mean of |relevant in top k| / k (padding counts as a miss)."""
    return float(np.mean(hits[:, :k].sum(axis=1) / k))


def ndcg_at_k(hits: NDArray[np.bool_], truth_ptr: NDArray[np.integer], k: int) -> float:
    """Binary-relevance NDCG: DCG over the top k divided by the ideal DCG of min(|rel|, k) hits.

    Example:
        >>> round(ndcg_at_k(np.array([[False, True]]), np.array([0, 1]), 2), 4)
        0.6309
    """
    top = hits[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    dcg = (top * discounts).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    ideal_n = np.minimum(_truth_sizes(truth_ptr), k).astype(np.int64)
    return float(np.mean(dcg / ideal_cum[ideal_n]))


def mrr_at_k(hits: NDArray[np.bool_], k: int) -> float:
    """Mean reciprocal rank of the first relevant item within the top k (0 when none)."""
    top = hits[:, :k]
    any_hit = top.any(axis=1)
    first = np.argmax(top, axis=1)
    return float(np.mean(np.where(any_hit, 1.0 / (first + 1), 0.0)))


def catalogue_coverage(recs: NDArray[np.integer], n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    top = np.asarray(recs)[:, :k]
    return float(np.unique(top[top >= 0]).shape[0] / n_items) if n_items else 0.0


def novelty(recs: NDArray[np.integer], item_popularity: NDArray[np.floating], k: int) -> float:
    """Mean self-information ``-log2 p(i)`` of recommended items.

    Args:
        recs: ``[B, k]`` recommendations.
        item_popularity: ``[n_items]`` share of training users who interacted with each item;
            zeros are floored at the smallest positive share so unseen items count as most novel.
        k: cut-off.
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    positive = pop[pop > 0]
    floor = positive.min() if positive.size else 1.0
    top = np.asarray(recs)[:, :k]
    items = top[top >= 0]
    if items.size == 0:
        return 0.0
    return float(np.mean(-np.log2(np.maximum(pop[items], floor))))


def ranking_metrics(
    recs: NDArray[np.integer],
    truth_ptr: NDArray[np.integer],
    truth_idx: NDArray[np.integer],
    ks: tuple[int, ...],
) -> dict[str, float]:
    """recall@K, hit@K, ndcg@K, mrr@K and precision@K for every K in ``ks``."""
    hits = hit_matrix(recs, truth_ptr, truth_idx)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(hits, truth_ptr, k)
        out[f"hit@{k}"] = hit_rate_at_k(hits, k)
        out[f"ndcg@{k}"] = ndcg_at_k(hits, truth_ptr, k)
        out[f"mrr@{k}"] = mrr_at_k(hits, k)
        out[f"precision@{k}"] = precision_at_k(hits, k)
    return out
