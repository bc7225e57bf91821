"""Pointwise and per-query metrics of a ranking model's probabilities, as pure functions.

Conventions: ``labels`` ``[N]`` are binary (0/1, any numeric dtype), ``scores``/``probs`` ``[N]``
are floats (``probs`` in ``[0, 1]``), ``group`` ``[N]`` is the query id of each sample (any
integers, in any order). Everything is vectorised: per-group statistics come from one sort by
``(group, score)`` and ``np.bincount`` over group codes, never from a Python loop over groups.

Undefined cases are decided as follows:

* :func:`auc` of a single-class sample raises ``ValueError`` (asking for it is a caller bug).
* :func:`gauc` skips single-class groups and counts them; with no usable group its value is
  ``nan``.
* :func:`grouped_ndcg` skips groups whose ideal DCG is 0; with no usable group it is ``nan``.
* :func:`calibration` is ``nan`` when there are no positives.
* :func:`rank_report` reports ``auc = nan`` for a single-class task instead of raising.

Sample weights. :func:`auc`, :func:`logloss`, :func:`calibration`, :func:`ece` and
:func:`rank_report` take optional per-sample ``weights`` (a sample of weight ``w`` counts as
``w`` samples). Samples whose negatives were subsampled carry ``neg_weight = 1 / keep-rate``
(:func:`funnelrec.rank.samples.negative_weights`); weighted by it, every metric describes the
population before subsampling, so subsampled test samples cannot make inflated probabilities
look calibrated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

from funnelrec.arrays import group_blocks, group_order, grouped_lexsort

__all__ = [
    "GAUCResult",
    "auc",
    "auc_interval",
    "calibration",
    "ece",
    "gauc",
    "grouped_ndcg",
    "logloss",
    "query_positions",
    "rank_report",
]


@dataclass(frozen=True, slots=True)
class GAUCResult:
    """Group AUC and how many groups it averaged over.

    Attributes:
        value: weighted mean of per-group AUC over groups with both classes (``nan`` if none).
        n_groups_used: groups with at least one positive and one negative.
        n_groups_skipped: single-class groups (all positive or all negative), left out.
    """

    value: float
    n_groups_used: int
    n_groups_skipped: int


def _binary(labels: ArrayLike, name: str = "labels") -> NDArray[np.bool_]:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name} must be binary (0/1)")
    return y.astype(bool)


def _scores(scores: ArrayLike, n: int, name: str = "scores") -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"{name} has shape {s.shape}, expected ({n},)")
    if np.isnan(s).any():
        raise ValueError(f"{name} contain NaN")
    return s


def _probs(probs: ArrayLike, n: int) -> NDArray[np.float64]:
    p = _scores(probs, n, "probs")
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("probs must lie in [0, 1]")
    return p


def _weights(weights: ArrayLike | None, n: int) -> NDArray[np.float64]:
    """``[N]`` float64 sample weights (all 1 for None), finite and non-negative."""
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights has shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    return w


def _group_codes(group: ArrayLike, n: int) -> NDArray[np.int64]:
    g = np.asarray(group)
    if g.shape != (n,):
        raise ValueError(f"group has shape {g.shape}, expected ({n},)")
    if not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"group must be integer query ids, got dtype {g.dtype}")
    return g.astype(np.int64, copy=False)


def sorted_runs(keys_sorted: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Group code ``[N]`` (0..G-1) and group start offsets ``[G]`` of data sorted by key."""
    n = keys_sorted.shape[0]
    new_group = np.empty(n, dtype=bool)
    new_group[:1] = True
    np.not_equal(keys_sorted[1:], keys_sorted[:-1], out=new_group[1:])
    codes = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    return codes, starts


def query_positions(group: ArrayLike, score: ArrayLike) -> NDArray[np.int64]:
    """``[N]`` 0-based position of each row in its query by descending ``score`` (ties: the
    earlier row first).

    Example:
        >>> query_positions(np.array([7, 7, 7, 2]), np.array([0.1, 0.9, 0.5, 0.3])).tolist()
        [2, 0, 1, 0]
    """
    g = np.asarray(group)
    n = g.shape[0]
    order = grouped_lexsort((np.arange(n), -np.asarray(score, dtype=np.float64)), g)
    codes, starts = sorted_runs(g[order])
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n) - starts[codes]
    return position


def _within_group_ranks(
    group: NDArray[np.int64], scores: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Tie-averaged 1-based ranks of ``scores`` within each group.

    Returns:
        ``(order [N], ranks [N], codes [N])``: ``order`` sorts by ``(group, score)``; ``ranks``
        and ``codes`` (0-based dense group code) are aligned with the sorted order.
    """
    order = np.lexsort((scores, group))
    g = group[order]
    s = scores[order]
    codes, starts = sorted_runs(g)
    n = g.shape[0]
    # A tie run starts where the group or the score changes.
    new_run = np.empty(n, dtype=bool)
    new_run[:1] = True
    np.logical_or(g[1:] != g[:-1], s[1:] != s[:-1], out=new_run[1:])
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], n)  # exclusive
    # Average 0-based position of the run, shifted to the group's first position, 1-based.
    mean_pos = (run_start + run_end - 1) / 2.0
    ranks = mean_pos[run_id] - starts[codes] + 1.0
    return order, ranks, codes


def auc(labels: ArrayLike, scores: ArrayLike, weights: ArrayLike | None = None) -> float:
    """ROC AUC by the Mann–Whitney statistic; tied scores count one half.

    Args:
        labels: ``[N]`` binary labels.
        scores: ``[N]`` real scores (higher = more likely positive), no NaN.
        weights: optional ``[N]`` non-negative sample weights (each pair weighs the product of
            its two samples' weights).

    Returns:
        P(score of a random positive > score of a random negative) + 0.5 P(tie).

    Raises:
        ValueError: when the labels hold a single class (or one class has zero weight: AUC is
            undefined), or on bad input.

    Example:
        >>> auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.4, 0.8]))
        0.875
        >>> auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.4, 0.8]), np.array([3, 1, 1, 1]))
        0.9375
    """
    y = _binary(labels)
    n = y.shape[0]
    s = _scores(scores, n)
    w = _weights(weights, n)
    w_pos = float(w[y].sum())
    w_neg = float(w[~y].sum())
    if w_pos == 0 or w_neg == 0:
        n_pos = int(y.sum())
        raise ValueError(f"AUC needs both classes, got {n_pos} positives and {n - n_pos} negatives")
    if w.shape[0] and (w == w[0]).all():
        return _unweighted_auc(y, s)
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    new_run = np.empty(n, dtype=bool)
    new_run[:1] = True
    np.not_equal(s_sorted[1:], s_sorted[:-1], out=new_run[1:])
    run = np.cumsum(new_run) - 1  # tie run of each sorted sample
    pos_w = np.bincount(run, weights=np.where(y[order], w[order], 0.0))
    neg_w = np.bincount(run, weights=np.where(y[order], 0.0, w[order]))
    below = np.cumsum(neg_w) - neg_w  # negative weight strictly below each run
    return float(np.dot(pos_w, below + 0.5 * neg_w) / (w_pos * w_neg))


def _unweighted_auc(y: NDArray[np.bool_], s: NDArray[np.float64]) -> float:
    """:func:`auc` with equal weights, by counting, for each positive, the negatives below
    and tied with it in the sorted negative scores.

    A sort of the values (vectorised) and a binary search per positive: much cheaper than the
    indirect sort the weighted form needs on 20M candidate rows, where positives are few.
    """
    negatives = np.sort(s[~y])
    positives = s[y]
    below = np.searchsorted(negatives, positives, side="left")
    tied = np.searchsorted(negatives, positives, side="right") - below
    total = float(below.sum()) + 0.5 * float(tied.sum())
    return total / (float(positives.shape[0]) * float(negatives.shape[0]))


def gauc(
    labels: ArrayLike,
    scores: ArrayLike,
    group: ArrayLike,
    weights: ArrayLike | None = None,
) -> GAUCResult:
    """Group AUC: per-query AUC averaged with impression weights over two-class queries.

    Each group's AUC is the Mann–Whitney statistic with tie-averaged ranks within the group
    (ties count one half). A group's weight is the sum of its samples' ``weights`` (default 1
    each, i.e. its number of impressions); pass ``weights=labels`` to weight by clicks. Groups
    with a single class are skipped and counted.

    Args:
        labels: ``[N]`` binary labels.
        scores: ``[N]`` real scores, no NaN.
        group: ``[N]`` integer query ids (any order).
        weights: optional ``[N]`` non-negative per-sample weights.

    Returns:
        :class:`GAUCResult`; ``value`` is ``nan`` when no group has both classes.

    Example:
        >>> r = gauc(np.array([0, 1, 1, 0, 1, 1]), np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.3]),
        ...          np.array([1, 1, 1, 2, 2, 3]))
        >>> round(r.value, 4), r.n_groups_used, r.n_groups_skipped
        (0.6, 2, 1)
    """
    y = _binary(labels)
    n = y.shape[0]
    s = _scores(scores, n)
    g = _group_codes(group, n)
    w = _weights(weights, n)
    if n == 0:
        return GAUCResult(float("nan"), 0, 0)
    y, s, w, g = _in_group_order(y, s, w, g)
    parts = [_group_aucs(y[a:b], s[a:b], g[a:b], w[a:b]) for a, b in group_blocks(g)]
    group_auc = np.concatenate([auc_of for auc_of, _, _ in parts])
    wu = np.concatenate([weight for _, weight, _ in parts])
    n_used = group_auc.shape[0]
    n_skipped = sum(skipped for _, _, skipped in parts)
    if n_used == 0:
        return GAUCResult(float("nan"), 0, n_skipped)
    total = wu.sum()
    value = float(np.dot(group_auc, wu) / total) if total > 0 else float("nan")
    return GAUCResult(value, n_used, n_skipped)


def _group_aucs(
    y: NDArray[np.bool_], s: NDArray[np.float64], g: NDArray[np.int64], w: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """``(AUC [U], weight [U], skipped)`` of the two-class groups of rows whose groups are
    whole, and the number of single-class groups."""
    order, ranks, codes = _within_group_ranks(g, s)
    y_sorted = y[order]
    n_groups = int(codes[-1]) + 1
    n_pos = np.bincount(codes, weights=y_sorted, minlength=n_groups)
    size = np.bincount(codes, minlength=n_groups).astype(np.float64)
    n_neg = size - n_pos
    rank_sum = np.bincount(codes, weights=np.where(y_sorted, ranks, 0.0), minlength=n_groups)
    group_w = np.bincount(codes, weights=w[order], minlength=n_groups)
    usable = (n_pos > 0) & (n_neg > 0)
    p, q = n_pos[usable], n_neg[usable]
    group_auc = (rank_sum[usable] - p * (p + 1) / 2.0) / (p * q)
    weight = group_w[usable].astype(np.float64, copy=False)
    return group_auc, weight, n_groups - int(usable.sum())


def logloss(
    labels: ArrayLike, probs: ArrayLike, eps: float = 1e-7, weights: ArrayLike | None = None
) -> float:
    """(Weighted) mean binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``.

    Example:
        >>> round(logloss(np.array([1, 0]), np.array([0.5, 0.5])), 6)
        0.693147
    """
    y = _binary(labels).astype(np.float64)
    p = np.clip(_probs(probs, y.shape[0]), eps, 1.0 - eps)
    w = _weights(weights, y.shape[0])
    if y.size == 0 or w.sum() == 0:
        raise ValueError("logloss of an empty sample")
    return float(-np.average(y * np.log(p) + (1.0 - y) * np.log1p(-p), weights=w))


def calibration(labels: ArrayLike, probs: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Mean predicted probability over the observed positive rate (1 = calibrated on average).

    With ``weights``: ``sum(w p) / sum(w y)``. Returns ``nan`` when there are no positives (the
    ratio is undefined).

    Example:
        >>> calibration(np.array([1, 0, 0, 0]), np.array([0.5, 0.5, 0.0, 0.0]))
        1.0
        >>> calibration(np.array([1, 0]), np.array([0.5, 0.5]), weights=np.array([1.0, 3.0]))
        2.0
    """
    y = _binary(labels)
    p = _probs(probs, y.shape[0])
    w = _weights(weights, y.shape[0])
    observed = float(np.dot(w, y))
    if observed == 0.0:
        return float("nan")
    return float(np.dot(w, p)) / observed


def ece(
    labels: ArrayLike, probs: ArrayLike, n_bins: int = 10, weights: ArrayLike | None = None
) -> float:
    """Expected calibration error over ``n_bins`` equal-width probability bins.

    ``sum_b (n_b / N) * |mean p in b - positive rate in b|``; bin ``b`` holds
    ``p in [b / n_bins, (b + 1) / n_bins)``, the last bin also holding ``p = 1``. With
    ``weights``, counts and means are weighted.

    Example:
        >>> # bin [0, .5): p .2, .2 vs rate 0 -> .2; bin [.5, 1]: p .6, 1 vs rate 1 -> .2
        >>> round(ece(np.array([0, 0, 1, 1]), np.array([0.2, 0.2, 0.6, 1.0]), n_bins=2), 6)
        0.2
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y = _binary(labels).astype(np.float64)
    p = _probs(probs, y.shape[0])
    w = _weights(weights, y.shape[0])
    total = float(w.sum())
    if y.size == 0 or total == 0:
        raise ValueError("ece of an empty sample")
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    gap = np.abs(
        np.bincount(b, weights=w * p, minlength=n_bins)
        - np.bincount(b, weights=w * y, minlength=n_bins)
    )
    # |sum w p - sum w y| / W == (W_b / W) * |mean p - mean y| per bin.
    return float(gap.sum() / total)


def ndcg_per_group(
    value: ArrayLike, scores: ArrayLike, group: ArrayLike, k: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """NDCG@k of every query that has any value: ``(group ids [G], ndcg [G])``, groups in
    ascending id order (see :func:`grouped_ndcg` for the definition and tie rule).

    Example:
        >>> ids, nd = ndcg_per_group(np.array([1.0, 0, 0, 1]), np.array([2, 1, 2, 1]),
        ...                          np.array([5, 5, 9, 9]), k=1)
        >>> ids.tolist(), nd.tolist()
        ([5, 9], [1.0, 0.0])
    """
    ids, ndcg = ndcg_per_group_at(value, scores, group, (k,))
    return ids, ndcg[0]


def ndcg_per_group_at(
    value: ArrayLike, scores: ArrayLike, group: ArrayLike, ks: Sequence[int]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """NDCG at every ``k`` of ``ks`` of every query that has any value: ``(group ids [G],
    ndcg [len(ks), G])``, the values of :func:`ndcg_per_group` for each ``k``.

    One sort of the rows per order (ranked and ideal) serves every ``k``: evaluating 5 cut-offs
    of two orders over 20M candidate rows sorted them 20 times before.

    Example:
        >>> ids, nd = ndcg_per_group_at(np.array([1.0, 0, 0, 1]), np.array([2, 1, 2, 1]),
        ...                             np.array([5, 5, 9, 9]), ks=(1, 2))
        >>> ids.tolist(), [[round(x, 4) for x in row] for row in nd.tolist()]
        ([5, 9], [[1.0, 0.0], [1.0, 0.6309]])
    """
    ks = tuple(ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"every k must be >= 1, got {ks}")
    v = np.asarray(value, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"value must be 1-D, got shape {v.shape}")
    n = v.shape[0]
    if not np.all(np.isfinite(v)) or (v < 0).any():
        raise ValueError("value must be finite and non-negative")
    s = _scores(scores, n)
    g = _group_codes(group, n)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((len(ks), 0), dtype=np.float64)
    v, s, g = _in_group_order(v, s, g)
    parts = [_ndcg_block(v[a:b], s[a:b], g[a:b], ks) for a, b in group_blocks(g)]
    return (
        np.concatenate([ids for ids, _ in parts]),
        np.concatenate([ndcg for _, ndcg in parts], axis=1),
    )


def _ndcg_block(
    v: NDArray[np.float64], s: NDArray[np.float64], g: NDArray[np.int64], ks: tuple[int, ...]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """:func:`ndcg_per_group_at` of rows whose groups are whole and in order."""
    n = v.shape[0]
    deepest = max(ks)

    def _dcg(order: NDArray[np.intp]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """``[len(ks), G]`` DCG of each group in ``order`` (sorted by group first), and the
        groups' ids."""
        gs = g[order]
        codes, starts = sorted_runs(gs)
        pos = np.arange(n) - starts[codes]
        inside = pos < deepest
        pos, codes = pos[inside], codes[inside]
        gain = v[order][inside] / np.log2(pos + 2.0)
        n_groups = starts.shape[0]
        sums = np.empty((len(ks), n_groups), dtype=np.float64)
        for j, k in enumerate(ks):
            top = pos < k  # rows past k add 0.0 to a sum, which changes no float
            sums[j] = np.bincount(codes[top], weights=gain[top], minlength=n_groups)
        return sums, gs[starts]

    # Ranked: group, score desc, value asc (pessimistic ties).
    dcg, _ = _dcg(np.lexsort((v, -s, g)))
    ideal, ids = _dcg(np.lexsort((-v, g)))
    usable = ideal[0] > 0  # the best item's value: > 0 at every k alike
    return ids[usable], dcg[:, usable] / ideal[:, usable]


def _in_group_order(*columns: NDArray) -> tuple[NDArray, ...]:
    """``columns`` (the group column last) with their rows in group order
    (:func:`~funnelrec.arrays.group_order`), for work done in blocks of whole groups."""
    order = group_order(columns[-1])
    return columns if order is None else tuple(c[order] for c in columns)


def grouped_ndcg_at(
    value: ArrayLike, scores: ArrayLike, group: ArrayLike, ks: Sequence[int]
) -> dict[int, float]:
    """:func:`grouped_ndcg` at every ``k`` of ``ks`` (one sort per order for all of them).

    Example:
        >>> grouped_ndcg_at(np.array([0.0, 1.0]), np.array([0.9, 0.5]), np.array([7, 7]), (1, 2))
        {1: 0.0, 2: 0.6309297535714575}
    """
    _, per_group = ndcg_per_group_at(value, scores, group, ks)
    return {
        k: float(np.mean(row)) if row.size else float("nan")
        for k, row in zip(ks, per_group, strict=True)
    }


def grouped_ndcg(value: ArrayLike, scores: ArrayLike, group: ArrayLike, k: int) -> float:
    """Mean NDCG@k over queries, with graded linear gains ``value``.

    Within each group, items are ranked by descending ``scores``; DCG@k is
    ``sum_{r < k} value_r / log2(r + 2)`` and it is divided by the DCG@k of the best order.
    Tied scores are ordered pessimistically (lower value first), so a constant score never
    earns credit from the input order. Groups whose ideal DCG is 0 (no value) are left out;
    the mean is unweighted over the remaining groups, ``nan`` if none.

    Args:
        value: ``[N]`` non-negative gains (e.g. click 1, cart 3, order 10).
        scores: ``[N]`` real scores, no NaN.
        group: ``[N]`` integer query ids.
        k: cut-off, >= 1.

    Example:
        >>> # one query; the value-2 item is ranked 2nd: (1 + 2/log2 3) / (2 + 1/log2 3)
        >>> round(grouped_ndcg(np.array([1.0, 2.0, 0.0]), np.array([0.9, 0.5, 0.1]),
        ...                    np.array([7, 7, 7]), k=2), 4)
        0.8597
    """
    _, per_group = ndcg_per_group(value, scores, group, k)
    return float(np.mean(per_group)) if per_group.size else float("nan")


def auc_interval(
    value: float, n_positives: float, n_negatives: float, level: float = 0.95
) -> tuple[float, float]:
    """Normal-approximation confidence interval of an AUC (Hanley & McNeil 1982), clipped to
    [0, 1]: how far an AUC measured on ``n_positives`` positives can be from the truth.

    Its variance grows as positives shrink: with 7 positives an AUC of 0.4 is compatible with
    a useful model, with 3000 it is not. Weighted counts (sample weights as repeats) are fine.

    Example:
        >>> [round(v, 3) for v in auc_interval(0.8, 10, 1000)]
        [0.634, 0.966]
        >>> [round(v, 3) for v in auc_interval(0.8, 1000, 1000)]
        [0.781, 0.819]
    """
    if n_positives <= 0 or n_negatives <= 0 or not np.isfinite(value):
        return float("nan"), float("nan")
    q1 = value / (2.0 - value)
    q2 = 2.0 * value * value / (1.0 + value)
    variance = (
        value * (1.0 - value)
        + (n_positives - 1) * (q1 - value * value)
        + (n_negatives - 1) * (q2 - value * value)
    ) / (n_positives * n_negatives)
    half = NormalDist().inv_cdf(0.5 + level / 2.0) * float(np.sqrt(max(variance, 0.0)))
    return max(0.0, value - half), min(1.0, value + half)


def rank_report(
    labels: Mapping[str, ArrayLike],
    probs: Mapping[str, ArrayLike],
    group: ArrayLike,
    weights: ArrayLike | None = None,
) -> dict[str, dict[str, float]]:
    """Every pointwise and per-query metric, per task.

    Args:
        labels: task -> ``[N]`` binary labels; the report covers these tasks.
        probs: task -> ``[N]`` predicted probabilities; must contain every task of ``labels``.
        group: ``[N]`` query ids.
        weights: optional ``[N]`` sample weights for every metric, e.g. the ``neg_weight`` of
            subsampled samples (module docstring). GAUC weighs each query by its weight sum
            and keeps each query's AUC unweighted, which is exact for ``neg_weight``: a query's
            AUC does not change when all its negatives weigh the same.

    Returns:
        task -> ``{auc, auc_low, auc_high, n_positives, gauc, gauc_groups, gauc_skipped,
        logloss, calibration, ece, positive_rate}``; ``auc`` is ``nan`` when the task has a
        single class; ``auc_low`` / ``auc_high`` its 95% interval (:func:`auc_interval`).

    Example:
        >>> r = rank_report({"click": np.array([0, 1, 1, 0])},
        ...                 {"click": np.array([0.2, 0.7, 0.6, 0.4])}, np.array([0, 0, 1, 1]))
        >>> r["click"]["auc"], r["click"]["gauc"], r["click"]["positive_rate"]
        (1.0, 1.0, 0.5)
    """
    missing = sorted(set(labels) - set(probs))
    if missing:
        raise ValueError(f"probs lack tasks {missing}; probs has {sorted(probs)}")
    out: dict[str, dict[str, float]] = {}
    for task, y_raw in labels.items():
        y = _binary(y_raw, f"labels[{task!r}]")
        w = _weights(weights, y.shape[0])
        p = probs[task]
        w_pos, total = float(w[y].sum()), float(w.sum())
        single_class = w_pos == 0 or w_pos == total
        g = gauc(y, p, group, w)
        value = float("nan") if single_class else auc(y, p, w)
        low, high = auc_interval(value, w_pos, total - w_pos)
        out[task] = {
            "auc": value,
            "auc_low": low,
            "auc_high": high,
            "n_positives": w_pos,
            "gauc": g.value,
            "gauc_groups": float(g.n_groups_used),
            "gauc_skipped": float(g.n_groups_skipped),
            "logloss": logloss(y, p, weights=w),
            "calibration": calibration(y, p, w),
            "ece": ece(y, p, weights=w),
            "positive_rate": w_pos / total if total > 0 else float("nan"),
        }
    return out
