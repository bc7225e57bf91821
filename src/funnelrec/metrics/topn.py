"""Top-K ranking metrics as pure functions over a recommendation matrix and the ground truth.

Conventions: ``recs`` is ``[B, k]`` int (item indices, best first, -1 = padding, no duplicates
within a row); the truth is CSR (``truth_ptr [B + 1]``, ``truth_idx [T]``) of relevant items
per row. Every metric returns the mean over rows; rows with an empty truth must be removed by
the caller (they have no defined recall). The ``*_rows`` functions and
:func:`per_query_metrics` give the per-row values those means are taken over (what a bootstrap
over queries resamples).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from funnelrec.arrays import unique_sorted

PerQueryValues = dict[str, NDArray[np.float64]]
"""``{metric@k: [B] per-row values}`` (what :func:`per_query_metrics` returns)."""


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
    ptr = np.asarray(truth_ptr, dtype=np.int64)
    lens = ptr[1:] - ptr[:-1]  # not np.diff: its stubs type an int64 diff as timedelta64
    if lens.shape[0] != n_rows:
        raise ValueError(f"truth has {lens.shape[0]} rows, recs has {n_rows}")
    width = int(max(recs.max(initial=0), np.max(truth_idx, initial=0))) + 2
    truth_keys = np.repeat(np.arange(n_rows, dtype=np.int64), lens) * width + np.asarray(
        truth_idx, dtype=np.int64
    )
    if truth_keys.shape[0] == 0:
        return np.zeros(recs.shape, dtype=bool)
    truth_keys.sort()
    rec_keys = np.arange(n_rows, dtype=np.int64)[:, None] * width + recs
    # Each recommendation looked up among the sorted truth: O(B k log T). np.isin sorted the
    # B k recommendations together with the truth instead, which on a 41k-query evaluation
    # of 200-wide lists was most of the list metrics' time (docs/scaling.md).
    at = np.minimum(np.searchsorted(truth_keys, rec_keys), truth_keys.shape[0] - 1)
    return (truth_keys[at] == rec_keys) & (recs >= 0)


def _truth_sizes(truth_ptr: NDArray[np.integer]) -> NDArray[np.float64]:
    sizes = np.diff(np.asarray(truth_ptr, dtype=np.int64)).astype(np.float64)
    if np.any(sizes == 0):
        raise ValueError("every row needs at least one relevant item; drop empty rows first")
    return sizes


def recall_rows(
    hits: NDArray[np.bool_], truth_ptr: NDArray[np.integer], k: int
) -> NDArray[np.float64]:
    """Per row ``[B]``: |relevant in top k| / |relevant|."""
    return np.asarray(hits[:, :k].sum(axis=1) / _truth_sizes(truth_ptr), dtype=np.float64)


def recall_at_k(hits: NDArray[np.bool_], truth_ptr: NDArray[np.integer], k: int) -> float:
    """Mean of |relevant in top k| / |relevant|.

    Example:
        >>> recall_at_k(np.array([[True, False, True]]), np.array([0, 4]), 2)
        0.25
    """
    return float(np.mean(recall_rows(hits, truth_ptr, k)))


def hit_rows(hits: NDArray[np.bool_], k: int) -> NDArray[np.float64]:
    """Per row ``[B]``: 1.0 when at least one relevant item is in the top k, else 0.0."""
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


def hit_rate_at_k(hits: NDArray[np.bool_], k: int) -> float:
    """Fraction of rows with at least one relevant item in the top k."""
    return float(np.mean(hit_rows(hits, k)))


def precision_rows(hits: NDArray[np.bool_], k: int) -> NDArray[np.float64]:
    """Per row ``[B]``: |relevant in top k| / k (padding counts as a miss)."""
    return np.asarray(hits[:, :k].sum(axis=1) / k, dtype=np.float64)


def precision_at_k(hits: NDArray[np.bool_], k: int) -> float:
    """Mean of |relevant in top k| / k (padding counts as a miss)."""
    return float(np.mean(precision_rows(hits, k)))


def ndcg_rows(
    hits: NDArray[np.bool_], truth_ptr: NDArray[np.integer], k: int
) -> NDArray[np.float64]:
    """Per row ``[B]``: binary-relevance NDCG@k (see :func:`ndcg_at_k`)."""
    top = hits[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    dcg = (top * discounts).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    ideal_n = np.minimum(_truth_sizes(truth_ptr), k).astype(np.int64)
    return np.asarray(dcg / ideal_cum[ideal_n], dtype=np.float64)


def ndcg_at_k(hits: NDArray[np.bool_], truth_ptr: NDArray[np.integer], k: int) -> float:
    """Binary-relevance NDCG: DCG over the top k divided by the ideal DCG of min(|rel|, k) hits.

    Example:
        >>> round(ndcg_at_k(np.array([[False, True]]), np.array([0, 1]), 2), 4)
        0.6309
    """
    return float(np.mean(ndcg_rows(hits, truth_ptr, k)))


def mrr_rows(hits: NDArray[np.bool_], k: int) -> NDArray[np.float64]:
    """Per row ``[B]``: reciprocal rank of the first relevant item in the top k (0 when none)."""
    top = hits[:, :k]
    first = np.argmax(top, axis=1)
    return np.asarray(np.where(top.any(axis=1), 1.0 / (first + 1), 0.0), dtype=np.float64)


def mrr_at_k(hits: NDArray[np.bool_], k: int) -> float:
    """Mean reciprocal rank of the first relevant item within the top k (0 when none)."""
    return float(np.mean(mrr_rows(hits, k)))


def catalogue_coverage(recs: NDArray[np.integer], n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-k list."""
    if not n_items:
        return 0.0
    top = np.asarray(recs)[:, :k]
    # Counted, not np.unique'd: linear in the lists (a sort of every entry was not).
    return float(np.count_nonzero(np.bincount(top[top >= 0], minlength=n_items)) / n_items)


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
    """recall@K, hit@K, ndcg@K, mrr@K and precision@K for every K in ``ks``: the means over
    rows of :func:`per_query_metrics`."""
    return metric_means(per_query_metrics(recs, truth_ptr, truth_idx, ks))


def metric_means(rows: PerQueryValues) -> dict[str, float]:
    """The mean over rows of each per-row metric (what :func:`ranking_metrics` reports)."""
    return {name: float(np.mean(values)) for name, values in rows.items()}


def per_query_metrics(
    recs: NDArray[np.integer],
    truth_ptr: NDArray[np.integer],
    truth_idx: NDArray[np.integer],
    ks: tuple[int, ...],
) -> dict[str, NDArray[np.float64]]:
    """``{metric@K: [B] per-row values}`` for recall, hit, ndcg, mrr and precision at every K.

    Example:
        >>> rows = per_query_metrics(np.array([[3, 1], [4, 2]]), np.array([0, 1, 2]),
        ...                          np.array([1, 7]), (2,))
        >>> rows["recall@2"].tolist(), rows["ndcg@2"].round(4).tolist()
        ([1.0, 0.0], [0.6309, 0.0])
    """
    hits = hit_matrix(recs, truth_ptr, truth_idx)
    out: PerQueryValues = {}
    for k in ks:
        out[f"recall@{k}"] = recall_rows(hits, truth_ptr, k)
        out[f"hit@{k}"] = hit_rows(hits, k)
        out[f"ndcg@{k}"] = ndcg_rows(hits, truth_ptr, k)
        out[f"mrr@{k}"] = mrr_rows(hits, k)
        out[f"precision@{k}"] = precision_rows(hits, k)
    return out


def intra_list_diversity(
    recs: NDArray[np.integer], embeddings: NDArray[np.floating], k: int
) -> float:
    """Mean pairwise cosine distance ``1 - cos(i, j)`` within each top-k list (ILD).

    Args:
        recs: ``[B, k]`` recommendations (-1 padding is skipped).
        embeddings: ``[n_items, d]`` item vectors; rows of items beyond it, and zero rows,
            count as orthogonal to everything (distance 1), as an item we know nothing about.
        k: cut-off.

    Lists with fewer than two items are left out of the mean.

    Example:
        >>> emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(intra_list_diversity(np.array([[0, 1, 2]]), emb, 3), 4)  # pairs: 0, 1, 1
        0.6667
    """
    top = np.asarray(recs, dtype=np.int64)[:, :k]
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = np.vstack([emb / np.where(norms > 0, norms, 1.0), np.zeros((1, emb.shape[1]))])
    unit = unit.astype(np.float32)
    squared_norm = (unit**2).sum(-1)  # 1, or 0 for zero rows and the trailing zero row
    # Padding and unknown items both read the trailing zero row, so they add nothing below.
    rows_of = np.where((top >= 0) & (top < emb.shape[0]), top, emb.shape[0])
    n = (top >= 0).sum(axis=1).astype(np.float64)
    cos_pairs = np.empty(top.shape[0], dtype=np.float64)
    for lo in range(0, top.shape[0], _ILD_CHUNK):  # bounds the [rows, k, d] gather
        part = rows_of[lo : lo + _ILD_CHUNK]
        summed = unit[part].sum(axis=1, dtype=np.float64)
        # sum over ordered pairs i != j of cos = |sum v|^2 - sum |v|^2
        cos_pairs[lo : lo + part.shape[0]] = (summed**2).sum(1) - squared_norm[part].sum(
            1, dtype=np.float64
        )
    pairs = n * (n - 1)
    rows = pairs > 0
    return float(np.mean(1.0 - cos_pairs[rows] / pairs[rows])) if rows.any() else 0.0


_ILD_CHUNK = 4096


def category_diversity(
    recs: NDArray[np.integer], categories: NDArray[np.integer], k: int
) -> tuple[float, float]:
    """Category ILD and category coverage of the top-k lists.

    Returns ``(ild, coverage)``: the mean share of item pairs in a list whose categories
    differ, and the mean number of distinct categories per list divided by
    ``min(list length, n categories)`` (1 = as many categories as the list can hold). Items
    with an unknown category (-1 or beyond ``categories``) count as a category of their own.

    Example:
        >>> category_diversity(np.array([[0, 1, 2, -1]]), np.array([5, 5, 7, 8]), 4)
        (0.6666666666666666, 0.6666666666666666)
    """
    top = np.asarray(recs, dtype=np.int64)[:, :k]
    cats = np.asarray(categories, dtype=np.int64)
    known = (top >= 0) & (top < cats.shape[0])
    cat = np.where(known, cats[np.where(known, top, 0)], -1)
    # Unknown categories are made distinct per item so they never look alike.
    cat = np.where(cat >= 0, cat, -2 - top)
    valid = top >= 0
    n = valid.sum(axis=1)
    # Sorted per row, equal categories form runs; a run of length L holds L (L - 1) ordered
    # same-category pairs. O(B k log k), where comparing every pair was a [B, k, k] tensor.
    pad = np.iinfo(np.int64).max
    sorted_cat = np.sort(np.where(valid, cat, pad), axis=1)
    run_start = np.ones(sorted_cat.shape, dtype=bool)
    run_start[:, 1:] = sorted_cat[:, 1:] != sorted_cat[:, :-1]
    run_id = np.cumsum(run_start.ravel()) - 1
    in_list = (sorted_cat != pad).ravel()
    run_length = np.bincount(run_id[in_list], minlength=int(run_id[-1]) + 1 if run_id.size else 0)
    run_row = np.repeat(np.arange(top.shape[0]), top.shape[1])[run_start.ravel()]
    same = np.bincount(
        run_row, weights=run_length * (run_length - 1.0), minlength=top.shape[0]
    ).astype(np.int64)
    pairs = n * (n - 1)
    differ = pairs - same
    rows = pairs > 0
    ild = float(np.mean(differ[rows] / pairs[rows])) if rows.any() else 0.0
    distinct = (run_start & (sorted_cat != pad)).sum(axis=1)
    n_categories = max(int(unique_sorted(cats[cats >= 0]).shape[0]), 1)
    has = n > 0
    cover = distinct[has] / np.minimum(n[has], n_categories)
    return ild, float(np.mean(cover)) if has.any() else 0.0


def drop_masked(
    recs: NDArray[np.int32], mask_ptr: NDArray[np.int64], mask_idx: NDArray[np.int64]
) -> NDArray[np.int32]:
    """Remove each row's masked items from ``recs`` ``[B, k]``, shifting the rest left."""
    hidden = hit_matrix(recs, mask_ptr, mask_idx)
    order = np.argsort(hidden, axis=1, kind="stable")
    out = np.take_along_axis(np.where(hidden, -1, recs), order, axis=1)
    return out.astype(np.int32)
