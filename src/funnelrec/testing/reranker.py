"""The re-ranker contract (see :mod:`funnelrec.testing`)."""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.rerank.base import ItemSide, ListReranker


def check_reranker(
    reranker: ListReranker,
    scored: pl.DataFrame,
    items: ItemSide,
    k: int,
    now: NDArray[np.int64] | None = None,
) -> None:
    """Run the re-ranker contract on a Scores table (``query_id, item_idx, score, rank``).

    Raises:
        AssertionError: a clause of the contract is broken (the message names it).
    """
    out = reranker.rerank(scored, k, items, consumed={}, now=now)
    sizes = out.group_by("query_id").len()
    assert sizes.height == 0 or sizes["len"].max() <= k, "more than k items for a query"  # type: ignore[operator]
    pairs = scored.select("query_id", "item_idx")
    assert out.join(pairs, on=["query_id", "item_idx"], how="anti").height == 0, (
        "re-ranking returned an item that was not among its input"
    )
    assert out.select("query_id", "item_idx").is_duplicated().sum() == 0, "a repeated item"
    for _, part in out.group_by("query_id"):
        ranks = np.sort(part["rank"].to_numpy())
        assert np.array_equal(ranks, np.arange(1, ranks.shape[0] + 1)), "ranks are not 1..n"
    again = reranker.rerank(scored, k, items, consumed={}, now=now)
    assert again.sort("query_id", "rank").equals(out.sort("query_id", "rank")), "not deterministic"
    empty = reranker.rerank(scored.clear(), k, items, consumed={}, now=now)
    assert empty.height == 0, "empty input must give zero rows"
