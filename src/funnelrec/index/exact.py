"""Exact (brute-force) search: the oracle every approximate index is measured against.

Scores are one float32 matrix product per block of queries, followed by a top-k (NumPy's
partition for each row's k-th score, then a compiled sort of the columns above it); ties are
broken by the smaller id so results are deterministic. A score may differ in its last float32
bit between batches of different sizes (BLAS picks kernels by shape); a given batch always gives
the same answer.

No torch, on purpose: ``torch.topk`` selects ~2x faster, but it runs on torch's OpenMP pool,
whose spinning threads then slow the next Faiss call (a different OpenMP runtime) by ~0.2 s on
a busy machine.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from funnelrec.index.base import BaseIndex, Metric
from funnelrec.index.config import ExactIndexConfig


def block_scores(
    queries: NDArray[np.float32],
    vectors: NDArray[np.float32],
    sq_norms: NDArray[np.float32] | None,
) -> NDArray[np.float32]:
    """Similarity of every query to every vector, higher is better.

    Args:
        queries: ``[B, D]`` prepared queries.
        vectors: ``[N, D]`` prepared vectors.
        sq_norms: ``[N]`` squared norms of ``vectors`` for ``l2`` (None = inner product).

    Returns:
        ``[B, N]`` float32: inner products, or negative squared L2 distances.
    """
    scores = queries @ vectors.T
    if sq_norms is None:
        return scores
    # -|q - x|^2 = 2 q.x - |x|^2 - |q|^2, clipped at 0 against float32 cancellation.
    scores *= 2.0
    scores -= sq_norms[None, :]
    scores -= np.einsum("bd,bd->b", queries, queries)[:, None]
    np.minimum(scores, 0.0, out=scores)
    return scores


@numba.njit(cache=True, parallel=True)
def _topk_rows(scores, cut, ids, k, out_score, out_pos):  # pragma: no cover - compiled
    """Fill ``out_*[r, :k]`` with the columns of row ``r`` scoring at least ``cut[r]`` (its
    k-th largest score: ties at the cut included), best first, ties by ascending ``ids``."""
    for r in numba.prange(scores.shape[0]):
        row = scores[r]
        cand = np.flatnonzero(row >= cut[r])
        # Stable sorts: by id (skipped when the candidates' ids ascend already, as in an index
        # built from ascending ids), then by descending score.
        cand_ids = ids[cand]
        if np.any(cand_ids[1:] < cand_ids[:-1]):
            cand = cand[np.argsort(cand_ids, kind="mergesort")]
        cand = cand[np.argsort(-row[cand], kind="mergesort")]
        for t in range(k):
            out_pos[r, t] = cand[t]
            out_score[r, t] = row[cand[t]]


def topk_rows(
    scores: NDArray[np.float32], ids: NDArray[np.int64], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Top-``k`` columns per row, descending score, ties by ascending ``ids``.

    NumPy finds each row's k-th largest score (its partition is several times faster than
    numba's); one compiled pass then sorts the columns at or above it. For a served request's
    single row the all-NumPy version (argpartition, tie check, lexsort, gathers) spent ~80 us
    in calls on 7,500 items, this ~30 us.

    Args:
        scores: ``[B, N]`` with ``N >= 1``, no NaN.
        ids: ``[N]`` the id of each column (unique).
        k: ``1 <= k``; at most ``N`` columns are returned.

    Returns:
        ``(scores [B, min(k, N)], positions [B, min(k, N)])``.

    Example:
        >>> s, p = topk_rows(np.array([[1.0, 3.0, 3.0]], np.float32), np.array([5, 9, 2]), 2)
        >>> p.tolist()
        [[2, 1]]
    """
    n = scores.shape[1]
    width = min(k, n)
    if width < n:
        cut = np.partition(scores, n - width, axis=1)[:, n - width]
    else:
        cut = np.full(scores.shape[0], -np.inf, dtype=scores.dtype)
    out_score = np.empty((scores.shape[0], width), dtype=scores.dtype)
    out_pos = np.empty((scores.shape[0], width), dtype=np.int64)
    _topk_rows(scores, cut, np.asarray(ids, dtype=np.int64), width, out_score, out_pos)
    return out_score, out_pos


class ExactIndex(BaseIndex):
    """Brute-force top-k by matrix product (see :class:`ExactIndexConfig`).

    Example:
        >>> index = ExactIndex(ExactIndexConfig(), "ip")
        >>> index.build(np.eye(3, dtype=np.float32), np.array([10, 11, 12]))
        >>> index.search(np.array([[0.0, 1.0, 0.0]], np.float32), 2)[1].tolist()
        [[11, 10]]
    """

    config: ExactIndexConfig

    def __init__(self, config: ExactIndexConfig, metric: Metric) -> None:
        super().__init__(config, metric)
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._sq_norms: NDArray[np.float32] | None = None

    def _refresh_norms(self) -> None:
        self._sq_norms = (
            np.einsum("nd,nd->n", self._vectors, self._vectors) if self.metric == "l2" else None
        )

    def _reset(self, vectors: NDArray[np.float32]) -> None:
        self._vectors = vectors.copy()
        self._refresh_norms()

    def _append(self, vectors: NDArray[np.float32]) -> None:
        self._vectors = np.concatenate([self._vectors, vectors])
        self._refresh_norms()

    def _search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        n_queries, n = queries.shape[0], self._vectors.shape[0]
        rows = max(1, self.config.block_size // n)
        if n_queries <= rows and k <= n:  # one block, no padding: a served query
            return topk_rows(block_scores(queries, self._vectors, self._sq_norms), self._ids, k)
        out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
        out_pos = np.full((n_queries, k), -1, dtype=np.int64)
        width = min(k, n)
        for start in range(0, n_queries, rows):
            block = slice(start, start + rows)
            scores = block_scores(queries[block], self._vectors, self._sq_norms)
            out_scores[block, :width], out_pos[block, :width] = topk_rows(scores, self._ids, k)
        return out_scores, out_pos

    def _state(self) -> dict[str, NDArray]:
        return {"vectors": self._vectors.copy()}

    def _restore(self, state: dict[str, Any]) -> None:
        vectors = np.ascontiguousarray(state["vectors"], dtype=np.float32)
        if len(self._ids) and (vectors.ndim != 2 or vectors.shape[1] != self._dim):
            raise ValueError(f"index state vectors have shape {vectors.shape}, dim {self._dim}")
        self._vectors = vectors
        self._refresh_norms()

    def _stored(self) -> int:
        return int(self._vectors.shape[0])
