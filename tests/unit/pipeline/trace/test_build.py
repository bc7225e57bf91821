"""A trace of a fitted funnel shows what ``Funnel.recommend`` serves, is JSON-safe, and its
why-not answers agree with its own stage tables (a small merge, so the merge cuts items)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from conftest import make_log
from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.pipeline.recommender import Recommender
from funnelrec.pipeline.trace import ItemLabels, TraceRequest, trace_request

OVERRIDES = [
    "rank.enabled=false",
    "recall.channels.two_tower.train.epochs=1",
    "recall.merge.k=25",
    "recall.merge.tune=false",
    "rerank.method=mmr",
    "rerank.lam=0.5",
    "rerank.rules.max_per_category=2",
    "rerank.rules.category_window=4",
]


@pytest.fixture(scope="module")
def fitted() -> tuple[Recommender, pl.DataFrame]:
    interactions, items = make_log(n_users=40, n_items=80, n_rows=1500, seed=2)
    items = items.with_columns(pl.format("title {}", "item_id").alias("title"))
    data = Dataset.build(interactions, items)
    rec = Recommender.fit(data, load_config(overrides=OVERRIDES), rng=np.random.default_rng(0))
    return rec, items


def _warm_users(rec: Recommender) -> list:
    return rec.user_vocab.ids.to_list()[:8]


def test_the_trace_shows_what_recommend_serves(fitted) -> None:
    rec, items = fitted
    labels = ItemLabels.of(rec, items)
    for user in _warm_users(rec):
        trace = trace_request(rec, TraceRequest(user_id=user, k=5), labels=labels)
        served = rec.recommend([user], k=5)
        assert [e.item_id for e in trace.final] == served["item_id"].to_list()
        assert [e.item_id for e in trace.rerank.items] == served["item_id"].to_list()
        assert trace.user.known and trace.user.history_len > 0
        assert trace.final[0].title == f"title {trace.final[0].item_id}"
        assert trace.merge.size == 25 and not trace.rank.enabled
        json.dumps(trace.model_dump(mode="json"), allow_nan=False)  # no NaN reaches JSON


def test_why_not_agrees_with_the_stage_tables(fitted) -> None:
    rec, _ = fitted
    seen: dict[str, int] = {}
    for user in _warm_users(rec):
        trace = trace_request(rec, TraceRequest(user_id=user, k=5))
        merged = {e.item_id for e in trace.merge.items}
        final = {e.item_id for e in trace.final}
        retrieved = {e.item_id for c in trace.channels for e in c.items}
        # at most two items of each kind per user: each answer is a full run
        expected: dict[str | int, str] = {}
        for verdict, ids in (
            ("cut_at_merge", sorted(retrieved - merged, key=str)),
            # ranked below k and not lifted back by the re-ranker
            (
                "out_ranked",
                [e.item_id for e in trace.rank.items if e.rank > 5 and e.item_id not in final],
            ),
            ("demoted_at_rerank", [d.item_id for d in trace.rerank.demoted]),
            ("in_list", sorted(final, key=str)),
        ):
            expected.update({i: verdict for i in ids[:2] if i not in expected})
        for item, verdict in expected.items():
            answer = trace_request(rec, TraceRequest(user_id=user, k=5, why_not=item)).why_not
            assert answer is not None
            assert answer.verdict == verdict, (user, item, answer)
            seen[verdict] = seen.get(verdict, 0) + 1
    # the fixture is built so that every kind of loss happens for these users
    assert set(seen) >= {"cut_at_merge", "out_ranked", "demoted_at_rerank", "in_list"}, seen


def test_cold_user_and_unknown_item(fitted) -> None:
    rec, _ = fitted
    trace = trace_request(
        rec, TraceRequest(user_id="nobody", k=5, tags=["c1"], why_not="no-such-item")
    )
    assert not trace.user.known and trace.user.history == [] and trace.user.tags == ["c1"]
    assert len(trace.final) == 5
    assert trace.why_not is not None and trace.why_not.verdict == "unknown_item"
    with pytest.raises(ValueError, match="k must be at least 1"):
        trace_request(rec, TraceRequest(user_id="nobody", k=0))
