"""The re-ranking panel of a trace, from the facts :mod:`funnelrec.pipeline.trace.rerank`
derived: the final list with its moves, the items diversity pushed out of the top k, and each
business rule that fired."""

from __future__ import annotations

from funnelrec.pipeline.trace.labels import ItemLabels
from funnelrec.pipeline.trace.models import RerankChange, RerankEntry, RerankTrace
from funnelrec.pipeline.trace.rerank import RerankFact, RerankFacts, describe
from funnelrec.rerank.config import RerankConfig

RULE_OUTCOMES = ("filter_consumed", "dedupe", "freshness", "category_cap")


def _change(fact: RerankFact, k: int, config: RerankConfig, labels: ItemLabels) -> RerankChange:
    return RerankChange(
        **labels.describe(fact.item_idx),
        outcome=fact.outcome,
        pre_rerank_rank=fact.pre_rerank_rank,
        diversified_rank=fact.diversified_rank,
        rank=fact.final_rank,
        detail=describe(fact, k, config),
    )


def _promoted_by_freshness(fact: RerankFact, config: RerankConfig) -> bool:
    """A kept fresh item shown above where the diversifier put it: the boost moved it."""
    return (
        fact.outcome == "kept"
        and fact.fresh
        and fact.final_rank is not None
        and (fact.diversified_rank is None or fact.final_rank < fact.diversified_rank)
        and round(config.rules.freshness_boost) > 0
    )


def rerank_trace(
    config: RerankConfig | None, facts: RerankFacts | None, k: int, labels: ItemLabels
) -> RerankTrace:
    """The panel (an empty, disabled one without a re-ranker)."""
    if config is None or facts is None:
        return RerankTrace(
            enabled=False,
            method="none",
            pool=0,
            slack=0,
            rules={},
            items=[],
            demoted=[],
            rules_fired=[],
            notes=["no re-ranker"],
        )
    kept = sorted(
        (f for f in facts.by_item.values() if f.final_rank is not None),
        key=lambda f: f.final_rank or 0,
    )
    items = [
        RerankEntry(
            **labels.describe(f.item_idx),
            rank=f.final_rank or 0,
            pre_rerank_rank=f.pre_rerank_rank,
            diversified_rank=f.diversified_rank,
            fresh=f.fresh,
        )
        for f in kept
    ]
    ordered = sorted(facts.by_item.values(), key=lambda f: f.pre_rerank_rank)
    # "Demoted for diversity": items the ranking put in the top k that the diversifier
    # pushed below it (items ranked below k that stayed below are not moves).
    demoted = [
        _change(f, k, config, labels)
        for f in ordered
        if f.outcome == "diversity" and f.pre_rerank_rank <= k
    ]
    fired = [
        _change(f, k, config, labels)
        for f in ordered
        if f.outcome in RULE_OUTCOMES or _promoted_by_freshness(f, config)
    ]
    rules = config.rules
    return RerankTrace(
        enabled=True,
        method=config.method,
        pool=config.pool,
        slack=config.slack,
        rules={
            "filter_consumed": rules.filter_consumed,
            "dedupe": rules.dedupe,
            "freshness_boost": rules.freshness_boost,
            "fresh_age_s": rules.fresh_age_s,
            "max_per_category": rules.max_per_category,
            "category_window": rules.category_window,
        },
        items=items,
        demoted=demoted,
        rules_fired=fired,
        notes=facts.notes,
    )
