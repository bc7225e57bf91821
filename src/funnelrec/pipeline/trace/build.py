"""One request through :meth:`Funnel.run <funnelrec.pipeline.funnel.Funnel.run>`, turned into
a :class:`~funnelrec.pipeline.trace.models.FunnelTrace`: the user, every channel's list, the
merged list, the ranker's probabilities and scores, the re-ranker's moves and the final list,
plus the "why not item X" answer.

The trace reads only what ``Funnel.run`` returns (its :class:`Recommendation`: channel
results, merged candidates, scored and re-ranked tables); what the re-ranker does not report
(which rule fired) is derived by re-running it (:mod:`funnelrec.pipeline.trace.rerank`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from funnelrec.data.vocab import id_series
from funnelrec.pipeline.context import RequestContext
from funnelrec.pipeline.funnel import Funnel, Recommendation
from funnelrec.pipeline.trace.labels import ItemLabels
from funnelrec.pipeline.trace.models import (
    ChannelEntry,
    ChannelTrace,
    FinalEntry,
    FunnelTrace,
    HistoryEntry,
    MergedEntry,
    MergeTrace,
    RankedEntry,
    RankTrace,
    UserTrace,
    WhyNot,
)
from funnelrec.pipeline.trace.rerank import RerankFacts, explain_rerank
from funnelrec.pipeline.trace.rerank_view import rerank_trace
from funnelrec.pipeline.trace.why_not import FunnelShape, StageRows, explain, fused_score
from funnelrec.pipeline.trace.why_not import unknown_item as unknown_item_answer
from funnelrec.recall.base import Queries
from funnelrec.recall.merge import merge_relevance


@dataclass(frozen=True)
class TraceRequest:
    """What to trace: the request (as ``/v1/recommend`` takes it) and an item to explain.

    Attributes:
        user_id: external user id; an unknown one takes the cold-start path.
        k: items wanted.
        timestamp: as-of time (unix s); None = the funnel's as-of time.
        attributes: one row of user attributes (used for unknown users), or None.
        tags: onboarding categories, or None.
        scenario: where the request comes from (a scenario-aware ranker reads it).
        why_not: an external item id to explain, or None.
    """

    user_id: str | int
    k: int = 10
    timestamp: int | None = None
    attributes: pl.DataFrame | None = None
    tags: list[str] | None = None
    scenario: str | None = None
    why_not: str | int | None = None


@dataclass(frozen=True)
class TraceDepth:
    """How many rows of each list the trace carries (the why-not answer sees them all)."""

    history: int = 20
    channel: int = 20
    merged: int = 300
    ranked: int = 300


def finite(value: Any) -> float | None:
    """A JSON-safe float: None for null, NaN and infinities."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _channel_ranks(rec: Recommendation) -> dict[str, tuple[dict[int, int], dict[int, float]]]:
    """Per channel: item_idx -> 1-based rank and -> score, over its whole list (query 0)."""
    out = {}
    for name, result in rec.channels.items():
        items = result.item_idx[0]
        valid = np.flatnonzero(items >= 0)
        ranks = {int(items[i]): int(i) + 1 for i in valid[::-1]}  # best rank of a repeat wins
        scores = {int(items[i]): float(result.score[0, i]) for i in valid}
        out[name] = (ranks, scores)
    return out


def _user(
    funnel: Funnel, request: TraceRequest, queries: Queries, labels: ItemLabels, depth: TraceDepth
) -> UserTrace:
    """The user's side of the request: known or not, newest history first, attributes."""
    start, end = int(queries.history_ptr[0]), int(queries.history_ptr[1])
    items = queries.history_item[start:end][::-1][: depth.history]
    times = queries.history_time[start:end][::-1][: depth.history]
    history = [
        HistoryEntry(**labels.describe(int(i)), timestamp=int(t))
        for i, t in zip(items, times, strict=True)
    ]
    attributes: dict[str, str | int | None] = {}
    encoder = funnel.users.encoder
    if queries.user_attr is not None:
        for a, (column, vocab) in enumerate(zip(encoder.columns, encoder.vocabs, strict=True)):
            code = int(queries.user_attr[0, a])
            attributes[column] = None if code <= 0 else str(vocab.ids[code - 1])
    return UserTrace(
        user_id=str(request.user_id),
        known=bool(queries.user_idx[0] >= 0),
        history_len=end - start,
        history=history,
        attributes=attributes,
        tags=list(request.tags or []),
    )


def _channels(
    funnel: Funnel,
    rec: Recommendation,
    merged_at: dict[int, int],
    labels: ItemLabels,
    depth: TraceDepth,
) -> list[ChannelTrace]:
    merge = funnel.merge_config
    sources = rec.candidates["source"].value_counts()
    merged_from = dict(zip(sources["source"].to_list(), sources["count"].to_list(), strict=True))
    out = []
    for name, result in rec.channels.items():
        items, scores = result.item_idx[0], result.score[0]
        valid = np.flatnonzero(items >= 0)
        entries = [
            ChannelEntry(
                **labels.describe(int(items[i])),
                rank=int(i) + 1,
                score=finite(scores[i]),
                merged_rank=merged_at.get(int(items[i])),
            )
            for i in valid[: depth.channel]
        ]
        out.append(
            ChannelTrace(
                name=name,
                kind=str(funnel.channels[name].config.kind),
                returned=int(valid.shape[0]),
                quota=merge.quotas.get(name),
                weight=merge.weights.get(name, 1.0) if merge.method == "rrf" else None,
                merged_from=int(merged_from.get(name, 0)),
                items=entries,
            )
        )
    return out


def _merge(
    funnel: Funnel, rec: Recommendation, labels: ItemLabels, depth: TraceDepth
) -> MergeTrace:
    merge, candidates = funnel.merge_config, rec.candidates
    rows = candidates.head(depth.merged).select(
        "item_idx", "merged_rank", "source", "source_rank", "recall_score", "sources"
    )
    items = [
        MergedEntry(
            **labels.describe(row["item_idx"]),
            merged_rank=row["merged_rank"],
            source=row["source"],
            source_rank=row["source_rank"],
            recall_score=finite(row["recall_score"]),
            sources=list(row["sources"]),
        )
        for row in rows.iter_rows(named=True)
    ]
    counts = candidates["source"].value_counts()
    return MergeTrace(
        method=merge.method,
        k=merge.k,
        rrf_k=merge.rrf_k,
        quotas=dict(merge.quotas),
        weights=dict(merge.weights),
        size=candidates.height,
        by_source=dict(zip(counts["source"].to_list(), counts["count"].to_list(), strict=True)),
        items=items,
    )


def _ranked_rows(rec: Recommendation, tasks: list[str]) -> dict[int, dict[str, Any]]:
    """item_idx -> its ranking row (rank, status, probabilities, scores), best rank first."""
    table = rec.scored
    if table is None:  # no ranker: the merge order is the ranking
        return {
            int(i): {
                "rank": int(r),
                "merged_rank": int(r),
                "status": "held",
                "probabilities": {},
                "score": None,
                "prerank_score": None,
            }
            for i, r in zip(rec.candidates["item_idx"], rec.candidates["merged_rank"], strict=True)
        }
    has_prerank = "prerank_score" in table.columns
    out: dict[int, dict[str, Any]] = {}
    for row in table.sort("rank").iter_rows(named=True):
        score = finite(row["score"])
        prerank = finite(row["prerank_score"]) if has_prerank else None
        scored = row["score"] is not None
        status = "scored" if scored else ("prerank_cut" if prerank is not None else "held")
        out.setdefault(
            int(row["item_idx"]),
            {
                "rank": int(row["rank"]),
                "merged_rank": int(row["merged_rank"]),
                "status": status,
                "probabilities": {t: finite(row[f"p_{t}"]) for t in tasks},
                "score": score,
                "prerank_score": prerank,
            },
        )
    return out


def _rank(
    funnel: Funnel,
    rec: Recommendation,
    ranked: dict[int, dict[str, Any]],
    k: int,
    labels: ItemLabels,
    depth: TraceDepth,
) -> RankTrace:
    ranker = funnel.ranker if rec.scored is not None else None
    tasks = list(ranker.tasks) if ranker is not None else []
    counts: dict[str, int] = {"scored": 0, "prerank_cut": 0, "held": 0}
    for row in ranked.values():
        counts[row["status"]] += 1
    items = [
        RankedEntry(**labels.describe(item), **row)
        for item, row in list(ranked.items())[: depth.ranked]
    ]
    if ranker is None:
        return RankTrace(
            enabled=False,
            tasks=[],
            fusion="none: the merge order is the ranking",
            score_depth=None,
            prerank_keep=None,
            counts=counts,
            items=items,
        )
    fusion = ranker.fusion_config
    terms = ", ".join(f"{t} {w:g}" for t, w in fusion.weights.items())
    return RankTrace(
        enabled=True,
        tasks=tasks,
        fusion=f"{fusion.kind} ({terms})",
        score_depth=max(ranker.config.serve.score_k, k),
        prerank_keep=None if funnel.preranker is None else funnel.preranker.config.keep,
        counts=counts,
        items=items,
    )


def _rerank_input(funnel: Funnel, rec: Recommendation) -> pl.DataFrame:
    """The table the re-ranker received: the ranked one, or the merge order with its
    reciprocal-rank relevance (what ``Funnel.run`` builds without a ranker)."""
    if rec.scored is not None:
        return rec.scored
    merged = rec.candidates["merged_rank"]
    relevance = merge_relevance(merged.to_numpy(), funnel.merge_config.rrf_k)
    return rec.candidates.select("query_id", "item_idx", "merged_rank").hstack(
        [pl.Series("score", relevance, dtype=pl.Float32), merged.alias("rank")]
    )


def _history_items(queries: Queries) -> set[int]:
    ptr = queries.history_ptr
    return set(queries.history_item[int(ptr[0]) : int(ptr[1])].tolist())


def _run(
    funnel: Funnel, request: TraceRequest, when: int, context: RequestContext
) -> tuple[Queries, Recommendation]:
    """The request's one query and its ``Funnel.run`` (the call the service makes)."""
    if request.scenario is not None:
        context = dataclasses.replace(context, scenario=request.scenario)
    queries = funnel.queries(
        id_series([request.user_id]),
        when,
        attributes=request.attributes,
        tags=[list(request.tags)] if request.tags else None,
        context=context,
    )
    return queries, funnel.run(queries, k=request.k, context=context)


def trace_request(
    funnel: Funnel,
    request: TraceRequest,
    *,
    context: RequestContext | None = None,
    labels: ItemLabels | None = None,
    depth: TraceDepth | None = None,
) -> FunnelTrace:
    """Run ``request`` through ``funnel`` and describe every stage (module docstring).

    Args:
        funnel: a fitted or loaded funnel.
        request: the request and the item to explain.
        context: serving state (the service passes the user's store events); None = offline.
        labels: item titles and categories; default: the artifact's categories only.
        depth: rows per list; default :class:`TraceDepth`.

    Raises:
        ValueError: ``k`` below 1.
    """
    if request.k < 1:
        raise ValueError(f"k must be at least 1, got {request.k}")
    labels = labels or ItemLabels.of(funnel)
    depth = depth or TraceDepth()
    when = funnel.as_of if request.timestamp is None else int(request.timestamp)
    queries, rec = _run(funnel, request, when, context or RequestContext())
    merged_at = dict(
        zip(
            rec.candidates["item_idx"].to_list(),
            rec.candidates["merged_rank"].to_list(),
            strict=True,
        )
    )
    tasks = (
        list(funnel.ranker.tasks) if funnel.ranker is not None and rec.scored is not None else []
    )
    ranked = _ranked_rows(rec, tasks)
    reranker = funnel.reranker
    facts = None
    final = rec.final.filter(pl.col("rank") <= request.k)
    if reranker is not None and rec.reranked is not None:
        facts = explain_rerank(
            reranker.config,
            _rerank_input(funnel, rec),
            rec.reranked,
            request.k,
            funnel.item_side(),
            _history_items(queries),
            when,
        )
    trace = FunnelTrace(
        k=request.k,
        timestamp=when,
        user=_user(funnel, request, queries, labels, depth),
        channels=_channels(funnel, rec, merged_at, labels, depth),
        merge=_merge(funnel, rec, labels, depth),
        rank=_rank(funnel, rec, ranked, request.k, labels, depth),
        rerank=rerank_trace(reranker.config if reranker else None, facts, request.k, labels),
        final=[
            FinalEntry(
                **labels.describe(int(row["item_idx"])),
                rank=int(row["rank"]),
                score=finite(row["score"]),
                source=str(row["source"]),
            )
            for row in final.iter_rows(named=True)
        ],
        timings_ms={name: round(s * 1e3, 3) for name, s in rec.timings_s.items()},
    )
    if request.why_not is not None:
        answer = why_not(
            funnel, rec, request, ranked, facts, final, labels, _history_items(queries)
        )
        trace = trace.model_copy(update={"why_not": answer})
    return trace


def why_not(
    funnel: Funnel,
    rec: Recommendation,
    request: TraceRequest,
    ranked: dict[int, dict[str, Any]],
    facts: RerankFacts | None,
    final: pl.DataFrame,
    labels: ItemLabels,
    history: set[int],
) -> WhyNot:
    """The answer for ``request.why_not`` from one run's tables."""
    asked = str(request.why_not)
    idx = int(funnel.item_vocab.encode(pl.Series([asked], dtype=pl.String))[0])
    if idx < 0:
        return unknown_item_answer(asked)
    per_channel = _channel_ranks(rec)
    merged_rows = rec.candidates.filter(pl.col("item_idx") == idx)
    final_rank = dict(zip(final["item_idx"].to_list(), final["rank"].to_list(), strict=True))
    described = labels.describe(idx)
    rows = StageRows(
        item_id=asked,
        title=described["title"],
        category=described["category"],
        in_history=idx in history,
        channel_ranks={c: r[idx] for c, (r, _) in per_channel.items() if idx in r},
        channel_scores={c: finite(s[idx]) for c, (_, s) in per_channel.items() if idx in s},
        merged=merged_rows.row(0, named=True) if merged_rows.height else None,
        ranked=ranked.get(idx),
        rerank=None if facts is None else facts.by_item.get(idx),
        final_rank=final_rank.get(idx),
    )
    return explain(rows, _shape(funnel, rec, request.k, per_channel))


def _shape(
    funnel: Funnel,
    rec: Recommendation,
    k: int,
    per_channel: dict[str, tuple[dict[int, int], dict[int, float]]],
) -> FunnelShape:
    merge = funnel.merge_config
    last_fused = None
    if rec.candidates.height and merge.method == "rrf":
        last = int(rec.candidates["item_idx"][-1])
        last_fused = fused_score(
            {c: r[last] for c, (r, _) in per_channel.items() if last in r}, merge
        )
    ranker = funnel.ranker if rec.scored is not None else None
    return FunnelShape(
        k=k,
        merge=merge,
        merged_size=rec.candidates.height,
        last_merged_fused=last_fused,
        ranker=ranker is not None,
        score_depth=None if ranker is None else max(ranker.config.serve.score_k, k),
        prerank_keep=None if funnel.preranker is None else funnel.preranker.config.keep,
        rerank=None if funnel.reranker is None else funnel.reranker.config,
    )
