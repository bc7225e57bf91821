"""The JSON shape of a funnel trace: one request, stage by stage, plus the "why not item X"
answer. Plain pydantic models with JSON-safe values only (ids as the input tables spelled
them, NaN and infinities as null), so the service returns them as they are and the CLI prints
them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

JsonId = str | int
"""An external id as the input tables spelled it (integer ids stay integers)."""

Verdict = Literal[
    "in_list",
    "unknown_item",
    "not_retrieved",
    "cut_at_merge",
    "not_scored",
    "out_ranked",
    "demoted_at_rerank",
    "removed_at_rerank",
]
"""Where "why not item X" says X was lost (``in_list``: it was not)."""

RankStatus = Literal["scored", "prerank_cut", "held"]
"""What the ranking stage did with a merged candidate: the ranker scored it, the pre-ranker
cut it before the ranker, or it kept its merge slot because the ranker cannot judge it (a
user without history, an item newer than the ranker)."""

RerankOutcome = Literal[
    "kept",
    "below_k",
    "outside_pool",
    "filter_consumed",
    "dedupe",
    "diversity",
    "freshness",
    "category_cap",
]
"""What the re-ranker did with one ranked item: kept it (maybe moved), left it below the top k
where the ranking had put it (``below_k``), never looked at it (beyond ``rerank.pool``),
removed it by a rule, or pushed it out of the top k: the diversifier (``diversity``), fresher
items (``freshness``) or the category cap took its place."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TraceItem(_Model):
    """An item and what the artifact (and the optional items table) say about it."""

    item_id: JsonId
    title: str | None = None
    category: str | None = None


class HistoryEntry(TraceItem):
    timestamp: int


class UserTrace(_Model):
    """Who the request was for: known or cold, the recent history, the cold-start inputs."""

    user_id: str
    known: bool
    history_len: int
    history: list[HistoryEntry]
    attributes: dict[str, str | int | None]
    tags: list[str]


class ChannelEntry(TraceItem):
    rank: int
    score: float | None
    merged_rank: int | None


class ChannelTrace(_Model):
    """One recall channel's list (the first ``depth`` items) and what the merge took."""

    name: str
    kind: str
    returned: int
    quota: int | None
    weight: float | None
    merged_from: int
    items: list[ChannelEntry]


class MergedEntry(TraceItem):
    merged_rank: int
    source: str
    source_rank: int
    recall_score: float | None
    sources: list[str]


class MergeTrace(_Model):
    """The merged candidate list and the merge settings that produced it."""

    method: str
    k: int
    rrf_k: int
    quotas: dict[str, int]
    weights: dict[str, float]
    size: int
    by_source: dict[str, int]
    items: list[MergedEntry]


class RankedEntry(TraceItem):
    rank: int
    merged_rank: int
    status: RankStatus
    probabilities: dict[str, float | None]
    score: float | None
    prerank_score: float | None


class RankTrace(_Model):
    """The ranking stage: per-task probabilities and the fused score of each candidate."""

    enabled: bool
    tasks: list[str]
    fusion: str
    score_depth: int | None
    prerank_keep: int | None
    counts: dict[str, int]
    items: list[RankedEntry]


class RerankEntry(TraceItem):
    """An item of the final list with its position before re-ranking and after the
    diversifier (``diversified_rank``; None when the diversifier did not select it)."""

    rank: int
    pre_rerank_rank: int
    diversified_rank: int | None
    fresh: bool


class RerankChange(TraceItem):
    """An item the re-ranker removed, demoted out of the top k, or moved by a rule."""

    outcome: RerankOutcome
    pre_rerank_rank: int
    diversified_rank: int | None
    rank: int | None
    detail: str


class RerankTrace(_Model):
    """The re-ranker's moves: the final list, the items diversity pushed out of the top k,
    and every business rule that fired."""

    enabled: bool
    method: str
    pool: int
    slack: int
    rules: dict[str, int | float | bool | None]
    items: list[RerankEntry]
    demoted: list[RerankChange]
    rules_fired: list[RerankChange]
    notes: list[str]


class FinalEntry(TraceItem):
    rank: int
    score: float | None
    source: str


class WhyNot(_Model):
    """Where item X was lost, with its numbers at every stage it reached."""

    item_id: str
    known_item: bool
    verdict: Verdict
    stage: str
    message: str
    title: str | None = None
    category: str | None = None
    in_history: bool = False
    channel_ranks: dict[str, int] = {}
    channel_scores: dict[str, float | None] = {}
    merged_rank: int | None = None
    rank_status: RankStatus | None = None
    probabilities: dict[str, float | None] = {}
    score: float | None = None
    prerank_score: float | None = None
    ranked_rank: int | None = None
    rerank_outcome: RerankOutcome | None = None
    diversified_rank: int | None = None
    final_rank: int | None = None


class FunnelTrace(_Model):
    """One request through the funnel, stage by stage."""

    k: int
    timestamp: int
    user: UserTrace
    channels: list[ChannelTrace]
    merge: MergeTrace
    rank: RankTrace
    rerank: RerankTrace
    final: list[FinalEntry]
    timings_ms: dict[str, float]
    why_not: WhyNot | None = None
