"""The why-not answer names the first stage an item did not pass, with that stage's numbers."""

from __future__ import annotations

from typing import Any

import pytest

from funnelrec.pipeline.trace.rerank import RerankFact
from funnelrec.pipeline.trace.why_not import (
    FunnelShape,
    StageRows,
    explain,
    fused_score,
    unknown_item,
)
from funnelrec.recall.merge import MergeConfig
from funnelrec.rerank.config import RerankConfig

QUOTAS = MergeConfig(k=5, quotas={"itemcf": 2, "popular": 3})
RRF = MergeConfig(k=5, method="rrf", weights={"itemcf": 2.0}, rrf_k=10)


def _shape(merge: MergeConfig = QUOTAS, **overrides: Any) -> FunnelShape:
    values: dict[str, Any] = {
        "k": 3,
        "merge": merge,
        "merged_size": 5,
        "last_merged_fused": 0.05,
        "ranker": True,
        "score_depth": 4,
        "prerank_keep": 2,
        "rerank": RerankConfig(),
    }
    return FunnelShape(**{**values, **overrides})


def _rows(**overrides: Any) -> StageRows:
    values: dict[str, Any] = {
        "item_id": "42",
        "title": None,
        "category": None,
        "in_history": False,
        "channel_ranks": {"itemcf": 7},
        "channel_scores": {"itemcf": 0.1},
        "merged": {"merged_rank": 4},
        "ranked": {
            "rank": 2,
            "status": "scored",
            "score": 0.3,
            "prerank_score": 1.0,
            "probabilities": {"click": 0.3},
        },
        "rerank": RerankFact(1, 2, "diversity", 6, None, False),
        "final_rank": None,
    }
    return StageRows(**{**values, **overrides})


def test_unknown_and_listed_items() -> None:
    assert unknown_item("zz").verdict == "unknown_item"
    answer = explain(_rows(final_rank=2), _shape())
    assert (answer.verdict, answer.final_rank) == ("in_list", 2)


def test_not_retrieved_says_when_the_user_already_has_the_item() -> None:
    answer = explain(_rows(channel_ranks={}, channel_scores={}, in_history=True), _shape())
    assert answer.verdict == "not_retrieved"
    assert "already has it" in answer.message


@pytest.mark.parametrize(
    ("merge", "quoted"),
    [(QUOTAS, "rank 7 in itemcf (quota 2)"), (RRF, f"{fused_score({'itemcf': 7}, RRF):.5f}")],
)
def test_cut_at_merge_quotes_the_merge_rule(merge: MergeConfig, quoted: str) -> None:
    answer = explain(_rows(merged=None, ranked=None, rerank=None), _shape(merge))
    assert answer.verdict == "cut_at_merge"
    assert quoted in answer.message and "merge.k = 5" in answer.message
    assert answer.channel_ranks == {"itemcf": 7}


def test_not_scored_beyond_the_depth_or_cut_by_the_preranker() -> None:
    beyond = explain(_rows(ranked=None, rerank=None), _shape())
    assert beyond.verdict == "not_scored" and "score depth 4" in beyond.message
    cut = {"rank": 9, "status": "prerank_cut", "score": None, "prerank_score": -0.5}
    answer = explain(_rows(ranked=cut, rerank=None), _shape())
    assert answer.verdict == "not_scored" and "pre-ranker cut it" in answer.message
    assert answer.prerank_score == -0.5


def test_out_ranked_below_k() -> None:
    ranked = {"rank": 8, "status": "scored", "score": 0.01, "prerank_score": 1.0}
    fact = RerankFact(1, 8, "below_k", None, None, False)
    answer = explain(_rows(ranked=ranked, rerank=fact), _shape())
    assert (answer.verdict, answer.stage, answer.ranked_rank) == ("out_ranked", "rank", 8)
    no_ranker = explain(
        _rows(ranked={**ranked, "status": "held"}, rerank=fact), _shape(ranker=False)
    )
    assert (no_ranker.verdict, no_ranker.stage) == ("out_ranked", "merge")


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        ("diversity", "demoted_at_rerank"),
        ("freshness", "demoted_at_rerank"),
        ("category_cap", "removed_at_rerank"),
        ("filter_consumed", "removed_at_rerank"),
    ],
)
def test_lost_at_rerank(outcome: str, verdict: str) -> None:
    fact = RerankFact(1, 2, outcome, 6, None, False)  # type: ignore[arg-type]
    answer = explain(_rows(rerank=fact), _shape())
    assert (answer.verdict, answer.stage, answer.rerank_outcome) == (verdict, "rerank", outcome)
    assert answer.diversified_rank == 6 and answer.probabilities == {"click": 0.3}
