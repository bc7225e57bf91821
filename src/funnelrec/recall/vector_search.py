"""Top-k items from a vector index, each query's history items left out.

The embedding channels (two-tower, SASRec) score a query by its user vector's inner product
with the item vectors: the index returns ``k`` plus the longest history of the batch, so that
``k`` remain once every query's seen items (``exclude_seen``) are dropped.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray

from funnelrec.index import BaseIndex
from funnelrec.recall.base import Queries
from funnelrec.recall.topk import ranked_topk, seen_exclusions


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
