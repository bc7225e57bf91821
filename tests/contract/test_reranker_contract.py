"""Every re-ranking method passes the re-ranker contract."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.rerank.base import ItemSide, ListReranker
from funnelrec.rerank.config import RerankConfig
from funnelrec.testing import check_reranker


def _scored(n_queries: int = 6, per_query: int = 40) -> pl.DataFrame:
    rng = np.random.default_rng(2)
    q = np.repeat(np.arange(n_queries), per_query)
    items = np.concatenate([rng.choice(200, per_query, replace=False) for _ in range(n_queries)])
    score = rng.random(q.shape[0]).astype(np.float32)
    frame = pl.DataFrame({"query_id": q, "item_idx": items.astype(np.int32), "score": score})
    frame = frame.with_columns(
        pl.col("score")
        .rank("ordinal", descending=True)
        .over("query_id")
        .cast(pl.Int32)
        .alias("rank"),
        pl.lit("itemcf").alias("source"),
    )
    return frame.with_columns(pl.col("rank").alias("merged_rank"))


@pytest.mark.parametrize("method", ["mmr", "dpp", "rules"])
def test_method_passes_the_reranker_contract(method: str) -> None:
    rng = np.random.default_rng(0)
    side = ItemSide(
        embeddings=rng.standard_normal((200, 8)).astype(np.float32),
        category=(np.arange(200) % 7).astype(np.int32),
    )
    reranker = ListReranker(RerankConfig(method=method))
    check_reranker(reranker, _scored(), side, k=10)
