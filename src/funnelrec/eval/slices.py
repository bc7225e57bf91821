"""Metrics of user and item slices: warm/cold users, warm/cold items."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from funnelrec.eval.queries import EvalQueries
from funnelrec.metrics.topn import ranking_metrics

SLICE_METRICS = ("recall", "ndcg", "hit", "mrr")


def slice_metrics(
    recs: dict[str, NDArray[np.int32]],
    eval_queries: EvalQueries,
    n_train_items: int,
    ks: tuple[int, ...],
) -> dict[str, dict]:
    """Metrics for warm/cold users and warm/cold items.

    Cold users have no history at query time. Cold items are held-out items the training data
    never saw (first seen in the test period); their slice keeps, per query, only the cold part
    of the truth, so it answers "how much of the new-item demand does this channel recall".
    """
    queries = eval_queries.queries
    ptr, idx = eval_queries.truth_ptr, eval_queries.truth_idx
    out: dict[str, dict] = {}
    cold_user = queries.history_len == 0
    for label, rows in (("warm_users", ~cold_user), ("cold_users", cold_user)):
        out[label] = _subset_metrics(recs, np.flatnonzero(rows), ptr, idx, None, ks)
    for label, keep in (("warm_items", idx < n_train_items), ("cold_items", idx >= n_train_items)):
        out[label] = _subset_metrics(recs, None, ptr, idx, keep, ks)
    return out


def _subset_metrics(
    recs: dict[str, NDArray[np.int32]],
    rows: NDArray[np.int64] | None,
    ptr: NDArray[np.int64],
    idx: NDArray[np.int64],
    keep_truth: NDArray[np.bool_] | None,
    ks: tuple[int, ...],
) -> dict:
    row_of = np.repeat(np.arange(ptr.shape[0] - 1), np.diff(ptr))
    keep = np.ones(idx.shape[0], dtype=bool) if keep_truth is None else keep_truth
    if rows is not None:
        keep &= np.isin(row_of, rows)
    counts = np.bincount(row_of[keep], minlength=ptr.shape[0] - 1)
    sel = np.flatnonzero(counts > 0)
    result: dict = {"n_queries": int(sel.shape[0]), "n_truth": int(keep.sum())}
    if sel.shape[0] == 0:
        return result
    sub_ptr = np.zeros(sel.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts[sel], out=sub_ptr[1:])
    sub_idx = idx[keep]  # truth is grouped by row, so the kept entries stay in row order
    for name, matrix in recs.items():
        values = ranking_metrics(matrix[sel], sub_ptr, sub_idx, ks)
        result[name] = {m: v for m, v in values.items() if m.split("@")[0] in SLICE_METRICS}
    return result
