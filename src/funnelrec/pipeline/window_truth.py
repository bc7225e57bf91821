"""What the recall window's users went on to want: the truth every window-tuned choice (merge
weights, channel settings) is scored against.

The recall window (:class:`~funnelrec.pipeline.rank_samples.RecallWindow`) is recall fitted on
the time before the ranking window, asked for every user who acted in it; its positives are
the truth. Queries with at least one positive on an item the earlier recall knows are split
like the ranking samples: the latest ``rank.samples.guard_fraction`` is the guard part, the
rest the fit part (a seeded sample of ``recall.tune_queries`` of it, when larger: every trial
is scored on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.arrays import unique_sorted
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.events import positive_expr
from funnelrec.metrics.topn import hit_matrix, ndcg_rows, recall_rows
from funnelrec.pipeline.rank_samples import RecallWindow
from funnelrec.recall.base import Queries

MIN_QUERIES = 10
MIN_GUARD_QUERIES = 5


@dataclass(frozen=True)
class WindowPart:
    """Some window queries and their truth (CSR, item indices of the window's recall)."""

    queries: Queries
    truth_ptr: NDArray[np.int64]
    truth_idx: NDArray[np.int64]

    def objective(self, matrix: NDArray[np.int32], k: int, depth: int) -> NDArray[np.float64]:
        """Per query: ``0.5 NDCG@k`` of the order of ``matrix`` ``[B, >= max(k, depth)]`` +
        ``0.5 Recall@depth`` of its set: what is served when nothing re-ranks it, and what a
        ranker gets to re-order."""
        hits = hit_matrix(matrix, self.truth_ptr, self.truth_idx)
        return 0.5 * ndcg_rows(hits, self.truth_ptr, k) + 0.5 * recall_rows(
            hits, self.truth_ptr, depth
        )


def window_parts(
    window: RecallWindow, config: ExperimentConfig
) -> tuple[WindowPart, WindowPart] | None:
    """(fit part, guard part) of the window's queries with a known positive; None when there
    are fewer than :data:`MIN_QUERIES` of them or the guard part would hold fewer than
    :data:`MIN_GUARD_QUERIES`."""
    funnel, queries = window.funnel, window.queries
    positives = window.events.filter(positive_expr(config.data.positive_events))
    positives = positives.with_columns(
        pl.Series("item_idx", funnel.item_vocab.encode(positives["item_id"])).cast(pl.Int64)
    ).filter(pl.col("item_idx") >= 0)
    per_query = (
        pl.DataFrame({"query_id": queries.query_id, "user_id": window.users})
        .join(positives.select("user_id", "item_idx").unique(), on="user_id", how="inner")
        .sort("query_id", "item_idx")
    )
    ids = unique_sorted(per_query["query_id"].to_numpy())
    if ids.shape[0] < MIN_QUERIES:
        return None
    n_guard = round(ids.shape[0] * config.rank.samples.guard_fraction)
    if n_guard < MIN_GUARD_QUERIES:
        return None
    row_of = {int(q): r for r, q in enumerate(queries.query_id)}
    fit_ids = _sampled(ids[: ids.shape[0] - n_guard], config.recall.tune_queries, config.seed)
    parts = []
    for chosen in (fit_ids, ids[ids.shape[0] - n_guard :]):
        rows = np.array([row_of[int(q)] for q in chosen], dtype=np.int64)
        truth = per_query.filter(pl.col("query_id").is_in(chosen))
        counts = truth.group_by("query_id", maintain_order=True).len()["len"].to_numpy()
        ptr = np.zeros(chosen.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        parts.append(WindowPart(queries.take(rows), ptr, truth["item_idx"].to_numpy()))
    return parts[0], parts[1]


def _sampled(ids: NDArray[np.int64], limit: int | None, seed: int) -> NDArray[np.int64]:
    """A seeded sample of ``limit`` of the sorted ``ids``, still sorted (all when fewer).

    Seeded from the configuration alone, so channel and merge tuning score on the same
    queries whatever else drew from the run's generator.

    Example:
        >>> _sampled(np.arange(10), 3, 0).tolist()
        [5, 6, 9]
    """
    if limit is None or ids.shape[0] <= limit:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, size=limit, replace=False))
