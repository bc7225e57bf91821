"""Each ranked item's fate at re-ranking is derived from re-runs of the re-ranker; every
outcome is checked against what the real re-ranker returned on a list built to trigger it."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.pipeline.trace.labels import ItemLabels
from funnelrec.pipeline.trace.rerank import RerankFacts, explain_rerank
from funnelrec.pipeline.trace.rerank_view import rerank_trace
from funnelrec.rerank.base import ItemSide, ListReranker
from funnelrec.rerank.config import RerankConfig, RulesConfig

NOW = 1_000_000_000


def _ranked(n: int = 6) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "query_id": np.zeros(n, dtype=np.int64),
            "item_idx": np.arange(n, dtype=np.int32),
            "score": np.linspace(1.0, 0.5, n),
            "rank": np.arange(1, n + 1, dtype=np.int32),
        }
    )


def _run(
    config: RerankConfig, side: ItemSide, k: int, consumed: frozenset[int] = frozenset()
) -> tuple[pl.DataFrame, RerankFacts]:
    ranked = _ranked()
    final = ListReranker(config).rerank(
        ranked, k, side, consumed={0: consumed}, now=np.array([NOW])
    )
    facts = explain_rerank(config, ranked, final, k, side, consumed, NOW)
    return final, facts


def test_the_diversifier_demotes_a_near_copy_out_of_the_top_k() -> None:
    emb = np.eye(6, dtype=np.float32)
    emb[1] = emb[0]  # item 1 is a copy of item 0
    config = RerankConfig(method="mmr", lam=0.5, slack=0)
    final, facts = _run(config, ItemSide(embeddings=emb), k=3)
    assert 1 not in final["item_idx"].to_list()
    fact = facts.by_item[1]
    assert (fact.outcome, fact.pre_rerank_rank, fact.final_rank) == ("diversity", 2, None)
    assert facts.by_item[0].outcome == "kept"
    # below the top k before and after: not a demotion
    assert facts.by_item[5].outcome == "below_k"
    shown = rerank_trace(config, facts, 3, ItemLabels(range(6)))
    assert [d.item_id for d in shown.demoted] == [1]
    assert [e.item_id for e in shown.items] == final["item_idx"].to_list()


def test_rules_consumed_pool_category_cap_and_freshness() -> None:
    category = np.array([0, 0, 1, 1, 2, 2], dtype=np.int32)
    rules = RulesConfig(max_per_category=1, category_window=3)
    config = RerankConfig(method="rules", pool=5, rules=rules)
    final, facts = _run(config, ItemSide(category=category), k=3, consumed=frozenset({3}))
    kept = final["item_idx"].to_list()
    assert kept == [0, 2, 4]
    outcomes = {i: f.outcome for i, f in facts.by_item.items()}
    assert outcomes == {
        0: "kept",
        1: "category_cap",  # second c0 within 3 positions
        2: "kept",
        3: "filter_consumed",
        4: "kept",
        5: "outside_pool",  # pool = 5
    }
    shown = rerank_trace(config, facts, 3, ItemLabels(range(6)))
    assert {c.item_id: c.outcome for c in shown.rules_fired} == {
        1: "category_cap",
        3: "filter_consumed",
    }


def test_fresh_items_push_others_out_and_are_reported_as_promoted() -> None:
    created = np.zeros(6, dtype=np.int64)
    created[4] = NOW  # the only fresh item
    config = RerankConfig(method="rules", rules=RulesConfig(freshness_boost=2))
    final, facts = _run(config, ItemSide(created_at=created), k=3)
    assert final["item_idx"].to_list() == [0, 1, 4]
    assert facts.by_item[2].outcome == "freshness"
    assert facts.by_item[4].fresh and facts.by_item[4].final_rank == 3
    shown = rerank_trace(config, facts, 3, ItemLabels(range(6)))
    assert {c.item_id: c.outcome for c in shown.rules_fired} == {2: "freshness", 4: "kept"}
