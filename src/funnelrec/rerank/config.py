"""The typed, frozen configurations of the re-ranking stage: the list rules and the re-ranker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DAY_S = 86_400


class RulesConfig(BaseModel):
    """Business rules applied after diversification (:func:`~funnelrec.rerank.rules.apply_rules`).

    Example:
        >>> RulesConfig(max_per_category=2, category_window=5).dedupe
        True
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_category: int | None = Field(
        None,
        ge=1,
        description="m: at most this many items of one category in any window of "
        "category_window consecutive positions (None = no category limit).",
    )
    category_window: int = Field(
        5, ge=1, description="w: length of the sliding window the category limit applies to."
    )
    dedupe: bool = Field(True, description="Keep only the first occurrence of each item id.")
    filter_consumed: bool = Field(
        True, description="Drop items the user already consumed (bought, watched, ...)."
    )
    freshness_boost: float = Field(
        0.0,
        ge=0.0,
        description="Each fresh item moves up by round(freshness_boost) list positions (0 = off).",
    )
    fresh_age_s: int = Field(
        7 * DAY_S,
        gt=0,
        description="An item is fresh while now - created_at <= fresh_age_s (seconds).",
    )


class RerankConfig(BaseModel):
    """The list re-ranker (:class:`funnelrec.rerank.base.ListReranker`).

    Example:
        >>> RerankConfig(method="mmr", lam=0.5).pool
        100
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["rules", "mmr", "dpp"] = Field(
        "dpp",
        description="Diversifier: 'rules' keeps the ranking order (business rules only), "
        "'mmr' is maximal marginal relevance, 'dpp' greedy DPP MAP inference.",
    )
    # Defaults from the accuracy-diversity sweep of the demo (docs/rerank.md): the points
    # that buy the most diversity for an NDCG@10 loss of about 3%.
    lam: float = Field(
        0.9, ge=0.0, le=1.0, description="MMR relevance weight (1 = relevance order)."
    )
    theta: float = Field(
        0.95, ge=0.0, le=1.0, description="DPP relevance weight (1 = relevance order)."
    )
    window: int | None = Field(
        None,
        ge=1,
        description="DPP: diversify only against the last `window` picks (None = all picks); "
        "set it for long lists.",
    )
    jitter: float = Field(
        1e-3,
        ge=0.0,
        description="DPP: added to the kernel diagonal so a rank-d embedding kernel does not "
        "stop the greedy after d picks.",
    )
    category_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Weight of the same-category kernel against embedding cosine when items "
        "have both.",
    )
    pool: int = Field(
        100, ge=1, description="How many top-ranked candidates per query enter re-ranking."
    )
    slack: int = Field(
        20,
        ge=0,
        description="The diversifier selects k + slack items so the rules have diversified "
        "spares for the items they drop.",
    )
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Business rules.")
    similarity: Literal["auto", "two_tower", "content", "category"] = Field(
        "auto",
        description="Item vectors for the similarity kernel: the two-tower item tower, content "
        "embeddings, or categories only; 'auto' takes the first fitted of two_tower, content "
        "(categories are blended in by category_weight whenever items have them).",
    )
