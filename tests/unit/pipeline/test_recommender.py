"""The funnel with its re-rank stage: every list the Recommender returns obeys the rules, and a
neutral re-ranker leaves the upstream order alone."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.pipeline.recommender import Recommender

BASE = ["rank.enabled=false", "recall.channels.two_tower.train.epochs=1"]


def _log() -> tuple[pl.DataFrame, pl.DataFrame]:
    """80 items in 5 categories; 60 users with 2,000 clicks."""
    rng = np.random.default_rng(3)
    items = pl.DataFrame(
        {
            "item_id": np.arange(80, dtype=np.int64),
            "category": [f"c{i % 5}" for i in range(80)],
            "created_at": np.zeros(80, dtype=np.int64),
        }
    )
    n = 2000
    interactions = pl.DataFrame(
        {
            "user_id": rng.integers(0, 60, n).astype(np.int64),
            "item_id": (rng.zipf(1.3, n) % 80).astype(np.int64),
            "timestamp": np.sort(rng.integers(1_000_000, 2_000_000, n)).astype(np.int64),
            "event": ["click"] * n,
            "value": np.ones(n, dtype=np.float32),
        }
    )
    return interactions, items


def _fit(overrides: list[str]) -> Recommender:
    data = Dataset.build(*_log())
    config = load_config(overrides=[*BASE, *overrides])
    recommender = Recommender.fit(data, config, rng=np.random.default_rng(0))
    return recommender


@pytest.fixture(scope="module")
def rules_recommender() -> Recommender:
    return _fit(
        [
            "rerank.method=mmr",
            "rerank.lam=0.6",
            "rerank.rules.max_per_category=2",
            "rerank.rules.category_window=4",
        ]
    )


def test_every_list_obeys_the_rules(rules_recommender: Recommender) -> None:
    rec = rules_recommender
    users = rec.user_vocab.ids
    queries = rec.queries(users, int(rec.history["timestamp"].max()) + 1)
    out = rec.run(queries, k=10)
    assert out.reranked is not None and "rerank" in out.timings_s
    category = rec.items.category
    assert category is not None
    history = {
        int(q): set(queries.history_item[queries.history_ptr[r] : queries.history_ptr[r + 1]])
        for r, q in enumerate(queries.query_id)
    }
    for (qid,), group in out.reranked.sort("rank").group_by("query_id", maintain_order=True):
        items = group["item_idx"].to_numpy()
        assert group["rank"].to_list() == list(range(1, len(items) + 1))
        assert len(items) <= 10 and len(set(items.tolist())) == len(items)
        assert not set(items.tolist()) & history[int(qid)]
        cats = category[items]
        for start in range(len(items)):
            window = cats[start : start + 4]
            assert np.bincount(window[window >= 0]).max(initial=0) <= 2
    assert out.ranked.height == out.reranked.filter(pl.col("rank") <= 10).height


def test_neutral_reranker_keeps_the_merge_order() -> None:
    rec = _fit(["rerank.method=mmr", "rerank.lam=1.0", "rerank.rules.filter_consumed=false"])
    queries = rec.queries(rec.user_vocab.ids.head(20), int(rec.history["timestamp"].max()) + 1)
    out = rec.run(queries, k=10)
    merged = out.candidates.filter(pl.col("merged_rank") <= 10).sort("query_id", "merged_rank")
    assert out.reranked is not None
    assert out.reranked.sort("query_id", "rank")["item_idx"].to_list() == (
        merged["item_idx"].to_list()
    )


def test_rerank_off_returns_the_merge_order() -> None:
    rec = _fit(["rerank.method=rules", "rerank.rules.filter_consumed=false"])
    queries = rec.queries(rec.user_vocab.ids.head(5), int(rec.history["timestamp"].max()) + 1)
    out = rec.run(queries, k=5)
    merged = out.candidates.filter(pl.col("merged_rank") <= 5).sort("query_id", "merged_rank")
    assert out.ranked["item_id"].to_list() == (
        rec.item_vocab.decode(merged["item_idx"].to_numpy()).to_list()
    )
