""" "Why is item X not in this user's list?": the stage where X was lost, with its numbers.

The stages are tried in funnel order and the first one X did not pass is the answer: unknown
id -> no channel returned it -> the merge cut it -> the ranker did not score it (beyond the
score depth, or cut by the pre-ranker) or ranked it below k -> the re-ranker removed it (a
rule) or pushed it out of the top k (diversity, fresher items, the category cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from funnelrec.pipeline.trace.models import WhyNot
from funnelrec.pipeline.trace.rerank import RerankFact, describe
from funnelrec.recall.merge import MergeConfig
from funnelrec.rerank.config import RerankConfig


@dataclass(frozen=True)
class StageRows:
    """What each stage knew about one item (None: the item never reached that stage).

    Attributes:
        item_id: the id as asked for.
        title / category / in_history: what the catalogue and the user's history say.
        channel_ranks / channel_scores: per channel that returned it, its 1-based rank and score.
        merged: its row of the merged candidates (``merged_rank``, ``source``, ...).
        ranked: its row of the ranked table (``rank``, ``status``, probabilities, ``score``,
            ``prerank_score``); with no ranker, the merge order row.
        rerank: its fate at re-ranking.
        final_rank: its position in the returned list.
    """

    item_id: str
    title: str | None
    category: str | None
    in_history: bool
    channel_ranks: dict[str, int]
    channel_scores: dict[str, float | None]
    merged: dict[str, Any] | None
    ranked: dict[str, Any] | None
    rerank: RerankFact | None
    final_rank: int | None


@dataclass(frozen=True)
class FunnelShape:
    """The settings the answers quote."""

    k: int
    merge: MergeConfig
    merged_size: int
    last_merged_fused: float | None
    ranker: bool
    score_depth: int | None
    prerank_keep: int | None
    rerank: RerankConfig | None


def fused_score(ranks: dict[str, int], merge: MergeConfig) -> float:
    """The item's weighted reciprocal-rank fusion score ``sum_c w_c / (rrf_k + rank_c)``."""
    return sum(merge.weights.get(c, 1.0) / (merge.rrf_k + r) for c, r in ranks.items())


def _merge_cut(rows: StageRows, shape: FunnelShape) -> str:
    """Why the merge left the item out, in the merge's own terms."""
    merge = shape.merge
    if merge.method == "rrf":
        mine = fused_score(rows.channel_ranks, merge)
        last = shape.last_merged_fused
        worst = "" if last is None else f" below the last merged item's {last:.5f}"
        return (
            f"its fused RRF score {mine:.5f} (weights / ({merge.rrf_k} + rank)) ranked it{worst}; "
            f"the merged list keeps merge.k = {merge.k} ({shape.merged_size} merged)"
        )
    parts = []
    for channel, rank in sorted(rows.channel_ranks.items(), key=lambda x: x[1]):
        quota = merge.quotas.get(channel, 0)
        parts.append(f"rank {rank} in {channel} (quota {quota})")
    return (
        f"{', '.join(parts)}: beyond each channel's quota, and the fill pass ended when the "
        f"merged list reached merge.k = {merge.k} ({shape.merged_size} merged)"
    )


def _at_ranking(rows: StageRows, shape: FunnelShape) -> WhyNot | None:
    """The verdict when the ranking stage lost the item (None: it passed ranking)."""
    merged_rank = rows.merged["merged_rank"] if rows.merged else None
    if rows.ranked is None:
        return _answer(
            rows,
            "not_scored",
            "rank",
            f"merged at rank {merged_rank}, beyond the ranker's score depth "
            f"{shape.score_depth} (max(rank.serve.score_k, k)): never scored",
        )
    rank, status = rows.ranked["rank"], rows.ranked["status"]
    if status == "prerank_cut":
        return _answer(
            rows,
            "not_scored",
            "rank",
            f"merged at rank {merged_rank}; the pre-ranker cut it (pre-rank score "
            f"{_num(rows.ranked['prerank_score'])}; it keeps {shape.prerank_keep} for the "
            f"ranker), so it followed the scored items at rank {rank} > k = {shape.k}",
        )
    outcome = rows.rerank.outcome if rows.rerank else None
    if rank <= shape.k or outcome in ("filter_consumed", "dedupe"):
        return None
    if not shape.ranker:
        how = "no ranker: the merge order is the ranking"
        return _answer(
            rows, "out_ranked", "merge", f"merged at rank {merged_rank} > k = {shape.k} ({how})"
        )
    if status == "held":
        how = "kept its merge slot (the ranker cannot judge this user or item)"
    else:
        how = f"score {_num(rows.ranked['score'])}"
    rerank = ""
    if rows.rerank is not None and shape.rerank is not None:
        rerank = "; at re-ranking: " + describe(rows.rerank, shape.k, shape.rerank)
    return _answer(
        rows,
        "out_ranked",
        "rank",
        f"merged at rank {merged_rank}, ranked {rank} > k = {shape.k} ({how}){rerank}",
    )


def unknown_item(item_id: str) -> WhyNot:
    """The answer for an id the artifact's catalogue does not hold."""
    return WhyNot(
        item_id=item_id,
        known_item=False,
        verdict="unknown_item",
        stage="catalogue",
        message=f"item {item_id!r} is not in this artifact's catalogue",
    )


def explain(rows: StageRows, shape: FunnelShape) -> WhyNot:
    """The stage where a known item was lost (see the module docstring)."""
    if rows.final_rank is not None:
        return _answer(rows, "in_list", "final", f"it is in the list at rank {rows.final_rank}")
    if not rows.channel_ranks:
        seen = " (the user already has it: channels leave out history items)"
        return _answer(
            rows,
            "not_retrieved",
            "recall",
            "no recall channel returned it" + (seen if rows.in_history else ""),
        )
    if rows.merged is None:
        return _answer(rows, "cut_at_merge", "merge", _merge_cut(rows, shape))
    lost = _at_ranking(rows, shape)
    if lost is not None:
        return lost
    fact = rows.rerank
    if fact is None or shape.rerank is None:  # no re-ranker: the top k is the list
        return _answer(rows, "out_ranked", "rank", "ranked beyond the returned list")
    removed = fact.outcome in ("filter_consumed", "dedupe", "category_cap")
    return _answer(
        rows,
        "removed_at_rerank" if removed else "demoted_at_rerank",
        "rerank",
        describe(fact, shape.k, shape.rerank),
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _answer(rows: StageRows, verdict: Any, stage: str, message: str) -> WhyNot:
    """A known item's answer with every number the stages recorded for it."""
    ranked = rows.ranked or {}
    fact = rows.rerank
    return WhyNot(
        item_id=rows.item_id,
        known_item=True,
        title=rows.title,
        category=rows.category,
        in_history=rows.in_history,
        verdict=verdict,
        stage=stage,
        message=message,
        channel_ranks=rows.channel_ranks,
        channel_scores=rows.channel_scores,
        merged_rank=rows.merged["merged_rank"] if rows.merged else None,
        rank_status=ranked.get("status"),
        probabilities=ranked.get("probabilities", {}),
        score=ranked.get("score"),
        prerank_score=ranked.get("prerank_score"),
        ranked_rank=ranked.get("rank"),
        rerank_outcome=None if fact is None else fact.outcome,
        diversified_rank=None if fact is None else fact.diversified_rank,
        final_rank=rows.final_rank,
    )
