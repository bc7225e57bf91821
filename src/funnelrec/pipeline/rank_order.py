"""Where ranked candidates go: the order :meth:`Funnel._rank
<funnelrec.pipeline.funnel.Funnel._rank>` serves.

Candidates the ranker cannot judge (cold users, items newer than the ranker) keep their merge
slot; the judged ones fill the other slots, the ranker's by score, then the pre-ranker's cut
in its order. All in NumPy over the request's pool, with one gather at the end.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.arrays import positions_of
from funnelrec.data.frames import masked_float32_column, masked_float32_columns, rows_at
from funnelrec.rank.prerank import PRERANK_COLUMN


def query_rows(query_id: NDArray[np.integer], row_query: NDArray[np.integer]) -> NDArray[np.intp]:
    """The position in ``query_id`` of each row's query (every row's query must be there).

    Example:
        >>> query_rows(np.array([7, 3]), np.array([3, 3, 7])).tolist()
        [1, 1, 0]
    """
    return positions_of(query_id, row_query)[0]


def slot_order(
    pool: pl.DataFrame,
    judged: NDArray[np.bool_],
    kept_at: NDArray[np.int64],
    scored: pl.DataFrame,
    pre_score: NDArray[np.float32] | None,
) -> pl.DataFrame:
    """``pool`` with the ranker's ``p_<task>`` and ``score`` (rows ``kept_at``, in the order
    of ``scored``), the pre-ranker's score when there is one, in final order with its
    ``rank``.

    Held rows (not ``judged``) keep their merged rank; each query's judged rows take the
    merged ranks the held ones leave free, smallest first: the scored ones by descending
    score (ties: merged rank), then the ones the pre-ranker cut, by its score. One gather of
    the (evidence-free) pool at the end: each polars gather hands the frame to its thread
    pool, which on a loaded box costs a wake-up per call.
    """
    n = pool.height
    query = pool["query_id"].to_numpy()
    merged = pool["merged_rank"].to_numpy()
    is_scored = np.zeros(n, dtype=bool)
    is_scored[kept_at] = True
    names = [c for c in scored.columns if c.startswith("p_")] + ["score"]
    values = np.full((len(names), n), np.nan, dtype=np.float32)  # NaN where not scored
    for j, name in enumerate(names):
        values[j, kept_at] = scored[name].to_numpy()
    score = values[-1]
    # polars sorted NaN scores above every number: they count as the best here too.
    within = np.where(is_scored, np.where(np.isnan(score), -np.inf, -score), 0.0)
    if pre_score is not None:
        within = np.where(judged & ~is_scored, -pre_score, within)
    at = np.flatnonzero(judged)
    # A served request is one query: its key would only add a sort pass to each lexsort.
    keys = () if n == 0 or (query == query[0]).all() else (query,)
    by_score = at[np.lexsort((merged[at], within[at], ~is_scored[at], *(k[at] for k in keys)))]
    by_slot = at[np.lexsort((merged[at], *(k[at] for k in keys)))]
    rank = merged.astype(np.int32)  # a copy: held rows keep their merged rank
    # Both orders list the queries' judged rows in the same query order with the same
    # counts, so the j-th row of one takes the j-th smallest merged rank of the same query.
    rank[by_score] = merged[by_slot]
    final = np.lexsort((rank, *keys))
    # The added columns are gathered in NumPy together and built once each, in final order,
    # from Arrow buffers: on a served request each NumPy or polars call costs ~10-20 us.
    added = []
    if pre_score is not None:
        added.append(masked_float32_column(PRERANK_COLUMN, pre_score[final], judged[final]))
    added += masked_float32_columns(names, values[:, final], is_scored[final])
    added.append(pl.Series("rank", rank[final]))
    return rows_at(pool, final).hstack(added)
