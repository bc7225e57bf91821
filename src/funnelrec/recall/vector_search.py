"""Top-k items from a vector index, each query's history items left out; and the calibration
of an index on the users it will serve.

The embedding channels (two-tower, SASRec) score a query by its user vector's inner product
with the item vectors: the index returns ``k`` plus the longest history of the batch, so that
``k`` remain once every query's seen items (``exclude_seen``) are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.index import BaseIndex, calibrate_recall, needs_calibration
from funnelrec.recall.base import Queries
from funnelrec.recall.topk import ranked_topk, seen_exclusions

CALIBRATION_USERS = 1000
"""Training users whose vectors calibrate an index: recall@200 over 1,000 queries has a
standard error under 0.005 at the 0.99 target."""


def calibrate_on_users(
    index: BaseIndex,
    vectors: NDArray[np.float32],
    data: Dataset,
    user_vectors: Callable[[Queries], NDArray[np.float32]],
    k: int,
    seed: int,
) -> dict[str, float]:
    """Calibrate a built ``index`` over ``vectors`` (ids ``0..N-1``) when its config asks for
    it (:func:`~funnelrec.index.needs_calibration`), with the vectors of up to
    :data:`CALIBRATION_USERS` training users (a ``seed``-ed sample of those with positives, as
    of the end of ``data``) as queries: the users the channel will serve.

    Returns:
        ``{"index_nprobe", "index_recall_vs_exact", "index_calibration_s"}`` for the channel's
        stats; ``{}`` when the index needs no calibration or no user has a vector.
    """
    if not needs_calibration(index):
        return {}
    start = time.perf_counter()
    positives = data.positives
    users = np.flatnonzero(np.bincount(positives["user_idx"].to_numpy(), minlength=1))
    if users.size > CALIBRATION_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, CALIBRATION_USERS, False))
    queries = Queries.from_history(
        np.arange(users.size), users, np.full(users.size, data.as_of), positives
    )
    sample = user_vectors(queries) if users.size else vectors[:0]
    if sample.shape[0] == 0:
        return {}
    ids = np.arange(vectors.shape[0], dtype=np.int64)
    report = calibrate_recall(index, vectors, ids, sample, k)
    return {
        "index_nprobe": report["nprobe"],
        "index_recall_vs_exact": report["recall"],
        "index_calibration_s": time.perf_counter() - start,
    }


def search_unseen(
    index: BaseIndex,
    vectors: NDArray[np.float32],
    queries: Queries,
    k: int,
    exclude_seen: bool,
    rows: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32], float]:
    """``(item_idx [B, k], score [B, k], search seconds)``, -1 / -inf padded, best first.

    Args:
        index: the items' vector index (ids = item_idx).
        vectors: ``[B', D]`` the user vectors of ``rows`` (all ``B`` queries when None).
        queries: the batch ``[B]``.
        k: items per query.
        exclude_seen: drop each query's history items.
        rows: which queries ``vectors`` are for; the others get an all-padding row.
    """
    b = len(queries)
    extra = int(queries.history_len.max(initial=0)) if exclude_seen else 0
    fetch = max(1, min(k + extra, len(index)))
    start = time.perf_counter()
    if rows is None:
        scores, ids = index.search(vectors, fetch)
    else:
        ids = np.full((b, fetch), -1, dtype=np.int64)
        scores = np.full((b, fetch), -np.inf, dtype=np.float32)
        if rows.shape[0]:
            found_scores, found = index.search(vectors, fetch)
            ids[rows], scores[rows] = found, found_scores
    search_s = time.perf_counter() - start
    # Each row's hits are ranked already: keep the first k that are no padding (-1) and not
    # seen.
    ids = np.asarray(ids, dtype=np.int64)
    starts = np.arange(b, dtype=np.int64) * ids.shape[1]
    seen = seen_exclusions(queries, exclude_seen)
    out_idx, out_score = ranked_topk(
        starts, starts + ids.shape[1], ids.ravel(), scores.ravel(), k, seen
    )
    return out_idx, out_score, search_s
