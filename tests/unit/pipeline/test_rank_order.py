"""The ranked order ``Funnel._rank`` builds: held rows keep their merge slot, the scored ones
fill the free slots by score, the pre-ranker's cut follows in its order."""

import numpy as np
import polars as pl
import pytest

from funnelrec.pipeline.rank_order import query_rows, slot_order
from funnelrec.rank.prerank import PRERANK_COLUMN


def _pool() -> pl.DataFrame:
    # Query 5: merged ranks 1..5; query 2: merged ranks 1..3 (queries not in id order).
    return pl.DataFrame(
        {
            "query_id": [5, 5, 5, 5, 5, 2, 2, 2],
            "item_idx": pl.Series([10, 11, 12, 13, 14, 20, 21, 22], dtype=pl.Int32),
            "merged_rank": pl.Series([1, 2, 3, 4, 5, 1, 2, 3], dtype=pl.Int32),
        }
    )


def _scored(pool: pl.DataFrame, kept_at: np.ndarray, score: list[float]) -> pl.DataFrame:
    values = pl.Series(score, dtype=pl.Float32)
    return pool[kept_at].with_columns(p_click=values, score=values)


def test_held_rows_keep_their_slot_and_scored_rows_fill_the_rest_by_score() -> None:
    pool = _pool()
    judged = np.array([True, False, True, True, True, True, True, False])
    kept_at = np.flatnonzero(judged)  # no pre-ranker: every judged row is scored
    scored = _scored(pool, kept_at, [0.1, 0.9, 0.5, 0.3, 0.2, 0.8])
    out = slot_order(pool, judged, kept_at, scored, None)
    # Query 2 first (ascending id): 21 (0.8) in slot 1, 20 (0.2) in slot 2, held 22 stays 3.
    # Query 5: held 11 stays in slot 2; 12 (0.9), 13 (0.5), 14 (0.3), 10 (0.1) take 1, 3, 4, 5.
    assert out["item_idx"].to_list() == [21, 20, 22, 12, 11, 13, 14, 10]
    assert out["rank"].to_list() == [1, 2, 3, 1, 2, 3, 4, 5]
    assert out["score"].is_null().to_list() == [False, False, True, False, True] + [False] * 3
    assert PRERANK_COLUMN not in out.columns


def test_the_cut_follows_the_scored_rows_in_the_preranker_order() -> None:
    pool = _pool().head(5)  # query 5 only
    judged = np.ones(5, dtype=bool)
    pre_score = np.array([0.5, 0.4, 0.9, 0.1, 0.7], dtype=np.float32)
    kept_at = np.array([2, 4])  # the pre-ranker's best two
    scored = _scored(pool, kept_at, [0.3, 0.6])
    out = slot_order(pool, judged, kept_at, scored, pre_score)
    # Scored: 14 (0.6), 12 (0.3); then the cut by pre-ranker score: 10, 11, 13.
    assert out["item_idx"].to_list() == [14, 12, 10, 11, 13]
    assert out["rank"].to_list() == [1, 2, 3, 4, 5]
    assert out["p_click"].is_null().to_list() == [False, False, True, True, True]
    assert out[PRERANK_COLUMN].to_list() == pytest.approx([0.7, 0.9, 0.5, 0.4, 0.1])


def test_a_nan_score_counts_as_the_best_and_ties_go_to_the_merge_order() -> None:
    pool = _pool().head(5)
    judged = np.ones(5, dtype=bool)
    kept_at = np.arange(5)
    scored = _scored(pool, kept_at, [0.5, float("nan"), 0.5, 0.7, 0.5])
    out = slot_order(pool, judged, kept_at, scored, None)
    assert out["item_idx"].to_list() == [11, 13, 10, 12, 14]


def test_query_rows_maps_each_row_to_its_query_position() -> None:
    assert query_rows(np.array([7, 3, 9]), np.array([9, 3, 3, 7])).tolist() == [2, 1, 1, 0]


def test_one_query_alone_is_ordered_as_within_a_batch() -> None:
    """The one-query path (no query key in the sorts) orders a query's rows as the batch does."""
    rng = np.random.default_rng(3)
    pool = pl.concat([_pool(), _pool().with_columns(query_id=pl.lit(9, pl.Int64))])
    judged = rng.random(pool.height) < 0.8
    pre_score = rng.random(pool.height).astype(np.float32)
    kept_at = np.flatnonzero(judged)[::2]
    scored = _scored(pool, kept_at, rng.random(kept_at.shape[0]).round(1).tolist())
    batch = slot_order(pool, judged, kept_at, scored, pre_score)
    for query in (2, 5, 9):
        rows = np.flatnonzero(pool["query_id"].to_numpy() == query)
        kept = np.flatnonzero(np.isin(rows, kept_at))
        alone = slot_order(
            pool[rows],
            judged[rows],
            kept,
            scored[np.flatnonzero(np.isin(kept_at, rows))],
            pre_score[rows],
        )
        assert alone.equals(batch.filter(pl.col("query_id") == query))
