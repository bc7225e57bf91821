"""Every list the funnel produces, judged on the held-out truth: each channel, the merged
candidates, the ranked and the re-ranked list, plus the candidate recall of whole stages and
each channel's share of the final list."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.csr import csr_rows
from funnelrec.data.dataset import Dataset
from funnelrec.eval.funnel import diversity_metrics
from funnelrec.eval.queries import EvalQueries
from funnelrec.metrics.topn import (
    PerQueryValues,
    catalogue_coverage,
    drop_masked,
    hit_matrix,
    metric_means,
    novelty,
    per_query_metrics,
)
from funnelrec.pipeline.fit import ProgressFn
from funnelrec.pipeline.funnel import Funnel, Recommendation
from funnelrec.recall.merge import candidates_to_matrix

STAGES = ("recall", "merge", "rank")
PER_QUERY_METRICS = ("recall@", "ndcg@")
"""Per-query values kept for the bootstrap intervals (the others are only reported as means)."""
SCORED_COLUMNS = ("query_id", "item_idx", "merged_rank", "rank", "score", "source")


@dataclass(frozen=True)
class StageRecall:
    """How much of the truth a whole stage hands on (not cut at any K)."""

    candidate_recall: float
    mean_candidates: float


@dataclass(frozen=True)
class ChannelShare:
    """A channel's share of the final top-k items, and of their hits."""

    share: float
    hit_share: float


@dataclass(frozen=True)
class ListEvaluation:
    """What :func:`evaluate_lists` measured.

    Attributes:
        metrics: ``{list: {metric@k: value}}`` for every channel, ``merged``, ``ranked``,
            ``reranked``.
        stages: candidate recall of the recall union, the merge and the ranked set.
        channels: each channel's share of the final list.
        timings_s: summed stage timings over the batches.
        lists: ``{list: [n_queries, k_max]}`` item indices (-1 = padding).
        scored: the ranker's Scores rows of every batch (None without a ranker).
        per_query: ``{list: {metric@k: [n_queries] values}}`` for recall and NDCG, whose means
            are ``metrics`` (the bootstrap intervals resample them).
    """

    metrics: dict[str, dict[str, float]]
    stages: dict[str, StageRecall]
    channels: dict[str, ChannelShare]
    timings_s: dict[str, float]
    lists: dict[str, NDArray[np.int32]]
    scored: pl.DataFrame | None = None
    per_query: dict[str, PerQueryValues] = field(default_factory=dict)


@dataclass
class _Collector:
    """Accumulates per-batch lists, stage recall and channel shares."""

    names: list[str]
    lists: dict[str, NDArray[np.int32]]
    k_min: int
    n: int
    shown: NDArray[np.int64] = field(init=False)
    shown_hits: NDArray[np.int64] = field(init=False)
    stage_hits: dict[str, NDArray[np.int64]] = field(init=False)
    stage_sizes: dict[str, NDArray[np.int64]] = field(init=False)
    timings: dict[str, float] = field(default_factory=dict)
    scored: list[pl.DataFrame] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shown = np.zeros(len(self.names), dtype=np.int64)
        self.shown_hits = np.zeros(len(self.names), dtype=np.int64)
        self.stage_hits = {s: np.zeros(self.n, dtype=np.int64) for s in STAGES}
        self.stage_sizes = {s: np.zeros(self.n, dtype=np.int64) for s in STAGES}

    def add(
        self,
        rows: NDArray[np.int64],
        lists: dict[str, NDArray[np.int32]],
        stage_lists: dict[str, NDArray[np.int32]],
        final: pl.DataFrame,
        query_id: NDArray[np.int64],
        eval_queries: EvalQueries,
    ) -> None:
        truth_ptr, truth_idx = csr_rows(eval_queries.truth_ptr, eval_queries.truth_idx, rows)
        mask = None
        if eval_queries.mask_ptr is not None and eval_queries.mask_idx is not None:
            mask = csr_rows(eval_queries.mask_ptr, eval_queries.mask_idx, rows)
        source, items = _source_matrix(final, query_id, self.k_min, self.names)
        hit = hit_matrix(items, truth_ptr, truth_idx)
        self.shown += np.bincount(source[source >= 0], minlength=len(self.names))
        self.shown_hits += np.bincount(source[(source >= 0) & hit], minlength=len(self.names))
        k_max = next(iter(self.lists.values())).shape[1]
        for name, matrix in lists.items():
            if mask is not None:
                matrix = drop_masked(matrix, *mask)
            width = min(k_max, matrix.shape[1])
            self.lists[name][rows, :width] = matrix[:, :width]
        for stage, matrix in stage_lists.items():
            if mask is not None:
                matrix = drop_masked(matrix, *mask)
            self.stage_hits[stage][rows] = hit_matrix(matrix, truth_ptr, truth_idx).sum(axis=1)
            self.stage_sizes[stage][rows] = (matrix >= 0).sum(axis=1)

    def stage_recall(self, truth_sizes: NDArray[np.int64], stages: tuple[str, ...]) -> dict:
        return {
            s: StageRecall(
                float(np.mean(self.stage_hits[s] / truth_sizes)),
                float(np.mean(self.stage_sizes[s])),
            )
            for s in stages
        }

    def channel_shares(self) -> dict[str, ChannelShare]:
        return {
            name: ChannelShare(
                float(self.shown[i] / max(self.shown.sum(), 1)),
                float(self.shown_hits[i] / max(self.shown_hits.sum(), 1)),
            )
            for i, name in enumerate(self.names)
        }


def _batch_lists(
    rec: Recommendation, recommender: Funnel, query_id: NDArray[np.int64], k_max: int
) -> tuple[dict[str, NDArray[np.int32]], dict[str, NDArray[np.int32]]]:
    """The batch's lists (per channel, merged, ranked, re-ranked) and whole-stage sets."""
    lists = {name: result.item_idx for name, result in rec.channels.items()}
    lists["merged"] = candidates_to_matrix(
        rec.candidates, query_id, recommender.config.recall.merge.k
    )
    stages = {"recall": _dedupe_rows(np.hstack(list(lists.values()))), "merge": lists["merged"]}
    if rec.scored is not None and recommender.ranker is not None:
        depth = recommender.ranker.config.serve.score_k
        lists["ranked"] = candidates_to_matrix(rec.scored, query_id, depth, rank_column="rank")
        stages["rank"] = lists["ranked"]
    if rec.reranked is not None:
        lists["reranked"] = candidates_to_matrix(rec.reranked, query_id, k_max, rank_column="rank")
    return lists, stages


def evaluate_lists(
    recommender: Funnel,
    eval_queries: EvalQueries,
    train: Dataset,
    config: ExperimentConfig,
    progress: ProgressFn | None = None,
) -> ListEvaluation:
    """Run the funnel on every held-out query (in batches) and measure each list at every K."""
    ks = tuple(sorted(config.eval.ks))
    queries = eval_queries.queries
    n = len(queries)
    names = list(recommender.channels)
    outputs = [*names, "merged"]
    outputs += ["ranked"] if recommender.ranker is not None else []
    outputs += ["reranked"] if recommender.reranker is not None else []
    recs = {name: np.full((n, ks[-1]), -1, dtype=np.int32) for name in outputs}
    collector = _Collector(names, recs, ks[0], n)
    for start in range(0, n, config.eval.batch_size):
        rows = np.arange(start, min(start + config.eval.batch_size, n))
        batch = queries.take(rows)
        rec = recommender.run(batch, k=ks[-1])
        for key, value in rec.timings_s.items():
            collector.timings[key] = collector.timings.get(key, 0.0) + value
        lists, stage_lists = _batch_lists(rec, recommender, batch.query_id, ks[-1])
        if rec.scored is not None:
            keep = [*SCORED_COLUMNS, *(c for c in rec.scored.columns if c.startswith("p_"))]
            collector.scored.append(rec.scored.select(keep))
        collector.add(rows, lists, stage_lists, rec.final, batch.query_id, eval_queries)
        if progress is not None:
            progress("evaluate", int(rows[-1]) + 1, n)
    metrics, per_query = _list_metrics(recommender, recs, eval_queries, train, ks)
    stages = STAGES if recommender.ranker is not None else STAGES[:2]
    return ListEvaluation(
        metrics=metrics,
        stages=collector.stage_recall(np.diff(eval_queries.truth_ptr), stages),
        channels=collector.channel_shares(),
        timings_s=collector.timings,
        lists=recs,
        scored=pl.concat(collector.scored) if collector.scored else None,
        per_query=per_query,
    )


def _list_metrics(
    recommender: Funnel,
    recs: dict[str, NDArray[np.int32]],
    eval_queries: EvalQueries,
    train: Dataset,
    ks: tuple[int, ...],
) -> tuple[dict[str, dict[str, float]], dict[str, PerQueryValues]]:
    """Accuracy, coverage and novelty of each list at every K, its diversity at the smallest K
    (the one the reports show), and the per-query recall and NDCG behind the accuracy means."""
    n_catalogue = len(recommender.item_vocab)
    popularity = _item_popularity(train)
    popularity = np.concatenate([popularity, np.zeros(n_catalogue - popularity.shape[0])])
    side = recommender.item_side()
    metrics: dict[str, dict[str, float]] = {}
    per_query: dict[str, PerQueryValues] = {}
    for name, matrix in recs.items():
        list_ks = ks
        if name == "reranked":  # re-ranking returns at most rerank.pool items
            list_ks = tuple(k for k in ks if k <= recommender.config.rerank.pool) or ks[:1]
        rows = per_query_metrics(matrix, eval_queries.truth_ptr, eval_queries.truth_idx, list_ks)
        values = metric_means(rows)
        for k in list_ks:
            values[f"coverage@{k}"] = catalogue_coverage(matrix, n_catalogue, k)
            values[f"novelty@{k}"] = novelty(matrix, popularity, k)
        # Diversity only at the K the reports show (the funnel table, the re-rank sweep): at
        # every K it cost more than training the ranker on a 1M-row run.
        values.update(diversity_metrics(matrix, side, list_ks[0]))
        metrics[name] = values
        per_query[name] = {m: v for m, v in rows.items() if m.startswith(PER_QUERY_METRICS)}
    return metrics, per_query


def _item_popularity(train: Dataset) -> NDArray[np.float64]:
    """Share of training users who had each item (novelty's popularity)."""
    users_per_item = train.positives.group_by("item_idx").agg(pl.col("user_idx").n_unique())
    pop = np.zeros(train.n_items, dtype=np.float64)
    pop[users_per_item["item_idx"].to_numpy()] = users_per_item["user_idx"].to_numpy()
    return pop / max(train.n_users, 1)


def _dedupe_rows(matrix: NDArray[np.int32]) -> NDArray[np.int32]:
    """Rows with repeated items reduced to one copy (the rest -1); order is not kept."""
    ordered = np.sort(matrix, axis=1)
    repeat = np.zeros_like(ordered, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    return np.where(repeat, -1, ordered).astype(np.int32)


def _source_matrix(
    table: pl.DataFrame, query_id: NDArray[np.int64], k: int, names: list[str]
) -> tuple[NDArray[np.int16], NDArray[np.int32]]:
    """``[B, k]`` index into ``names`` of each final item's source channel (-1 = none; the
    merge credits an item to the first channel, in quota order, that recalled it) and the
    ``[B, k]`` items."""
    row_of = {int(q): r for r, q in enumerate(np.asarray(query_id))}
    source = np.full((len(row_of), k), -1, dtype=np.int16)
    items = np.full((len(row_of), k), -1, dtype=np.int32)
    top = table.filter(pl.col("rank") <= k)
    if top.height == 0:
        return source, items
    code = {name: i for i, name in enumerate(names)}
    rows = top["query_id"].replace_strict(row_of, return_dtype=pl.Int64).to_numpy()
    cols = top["rank"].to_numpy() - 1
    source[rows, cols] = (
        top["source"].replace_strict(code, default=-1, return_dtype=pl.Int16).to_numpy()
    )
    items[rows, cols] = top["item_idx"].to_numpy()
    return source, items
