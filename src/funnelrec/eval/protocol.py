"""The offline protocol: split -> fit on the training side -> recommend for held-out users ->
metrics per channel and for the merged set. Uses the same ``Recommender`` the service runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.split import Split, make_split
from funnelrec.data.csr import csr_rows
from funnelrec.eval.funnel import diversity_metrics, funnel_summary, rerank_sweep
from funnelrec.metrics.topn import (
    catalogue_coverage,
    drop_masked,
    hit_matrix,
    novelty,
    ranking_metrics,
)
from funnelrec.eval.rank_stage import (
    RankData,
    build_rank_data,
    candidate_rank_metrics,
    fit_ranker,
    impression_rank_metrics,
)
from funnelrec.pipeline.recommender import Recommender
from funnelrec.rank.samples import index_log
from funnelrec.recall.base import Queries
from funnelrec.recall.merge import candidates_to_matrix

ProgressFn = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; the CLI renders it with rich."""


@dataclass(frozen=True)
class EvalQueries:
    """Held-out requests and their truth (CSR over item_idx; unknown items get ids >= n_items)."""

    queries: Queries
    truth_ptr: NDArray[np.int64]
    truth_idx: NDArray[np.int64]
    n_cold_users: int  # queries whose user has no history at query time
    mask_ptr: NDArray[np.int64] | None = None
    mask_idx: NDArray[np.int64] | None = None
    user_ids: pl.Series | None = None  # external ids, rows aligned with the queries


@dataclass(frozen=True)
class ExperimentResult:
    recommender: Recommender
    train: Dataset
    metrics: dict


def build_eval_queries(
    split: Split,
    train: Dataset,
    config: ExperimentConfig,
    rng: np.random.Generator,
    recommender: Recommender,
    users: pl.DataFrame | None = None,
) -> EvalQueries:
    """One query per held-out user, as of the split's query time, with that user's truth.

    Queries are built by ``recommender.queries``, the path serving uses: history from the
    training positives, attributes of users the model does not know from ``users`` (a profile
    is known at request time, as new items' metadata is). The truth is mapped through the
    recommender's catalogue at query time (training items plus items ingested since).
    """
    item_vocab = recommender.item_vocab
    test = split.test.with_columns(
        pl.Series("user_idx", train.user_vocab.encode(split.test["user_id"])),
        pl.Series("item_idx", item_vocab.encode(split.test["item_id"]).astype(np.int64)),
    )
    # Items the model cannot know still count in the denominator: give each a distinct id.
    unknown = test.filter(pl.col("item_idx") < 0).select("item_id").unique().sort("item_id")
    unknown = unknown.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + len(item_vocab)).alias("_new_idx")
    )
    test = (
        test.join(unknown, on="item_id", how="left")
        .with_columns(pl.coalesce(pl.col("_new_idx"), pl.col("item_idx")).alias("item_idx"))
        .drop("_new_idx")
    )
    if config.eval.exclude_seen_targets:
        seen = train.positives.select("user_idx", pl.col("item_idx").cast(pl.Int64))
        test = test.join(seen.unique(), on=["user_idx", "item_idx"], how="anti")
    per_user = (
        test.group_by("user_id")
        .agg(
            pl.col("user_idx").first(),
            pl.col("query_ts").min(),
            pl.col("item_idx").unique().sort(),
        )
        .sort("user_id")
    )
    if config.eval.max_queries is not None and per_user.height > config.eval.max_queries:
        rows = np.sort(rng.choice(per_user.height, config.eval.max_queries, replace=False))
        per_user = per_user[rows]
    lens = per_user["item_idx"].list.len().to_numpy()
    truth_ptr = np.zeros(per_user.height + 1, dtype=np.int64)
    np.cumsum(lens, out=truth_ptr[1:])
    truth_idx = per_user["item_idx"].explode().to_numpy().astype(np.int64)
    attributes = None
    if users is not None:
        attributes = per_user.select("user_id").join(
            users.with_columns(pl.col("user_id").cast(per_user["user_id"].dtype, strict=False)),
            on="user_id",
            how="left",
            maintain_order="left",
        )
    queries = recommender.queries(
        per_user["user_id"], per_user["query_ts"].to_numpy(), attributes=attributes
    )
    mask_ptr = mask_idx = None
    if split.masked is not None:
        masked = split.masked.with_columns(
            pl.Series("item_idx", item_vocab.encode(split.masked["item_id"])).cast(pl.Int64)
        ).filter(pl.col("item_idx") >= 0)
        per_query = (
            per_user.select("user_id").with_row_index("_q").join(masked, on="user_id", how="left")
        )
        per_query = per_query.sort("_q", "item_idx").filter(pl.col("item_idx").is_not_null())
        counts = np.bincount(per_query["_q"].to_numpy(), minlength=per_user.height)
        mask_ptr = np.zeros(per_user.height + 1, dtype=np.int64)
        np.cumsum(counts, out=mask_ptr[1:])
        mask_idx = per_query["item_idx"].to_numpy()
    n_without_history = int((queries.history_len == 0).sum())
    return EvalQueries(
        queries, truth_ptr, truth_idx, n_without_history, mask_ptr, mask_idx, per_user["user_id"]
    )


def _item_popularity(train: Dataset) -> NDArray[np.float64]:
    users_per_item = train.positives.group_by("item_idx").agg(pl.col("user_idx").n_unique())
    pop = np.zeros(train.n_items, dtype=np.float64)
    pop[users_per_item["item_idx"].to_numpy()] = users_per_item["user_idx"].to_numpy()
    return pop / max(train.n_users, 1)


def evaluate_recall(
    recommender: Recommender,
    eval_queries: EvalQueries,
    train: Dataset,
    config: ExperimentConfig,
    progress: ProgressFn | None = None,
    scored_parts: list[pl.DataFrame] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, NDArray[np.int32]]]:
    """Per-channel, merged (and ranked, with a ranker) metrics at every K, summed stage
    timings, and the lists. With a ranker, each batch's Scores table is appended to
    ``scored_parts`` when given."""
    ks = tuple(sorted(config.eval.ks))
    k_max = ks[-1]
    queries = eval_queries.queries
    n = len(queries)
    names = list(recommender.channels)
    lists_out = [*names, "merged"]
    lists_out += ["ranked"] if recommender.ranker is not None else []
    lists_out += ["reranked"] if recommender.reranker is not None else []
    recs = {name: np.full((n, k_max), -1, dtype=np.int32) for name in lists_out}
    k_min = ks[0]
    shown = np.zeros(len(names), dtype=np.int64)  # final top-k_min items per source channel
    shown_hits = np.zeros(len(names), dtype=np.int64)
    # Candidate recall of whole stages (not cut at k_max): the union of all channels, the
    # merged set, the set the ranker scores. Per row: hits and list length.
    stage_hits = {s: np.zeros(n, dtype=np.int64) for s in ("recall", "merge", "rank")}
    stage_sizes = {s: np.zeros(n, dtype=np.int64) for s in stage_hits}
    timings: dict[str, float] = {}
    for start in range(0, n, config.eval.batch_size):
        rows = np.arange(start, min(start + config.eval.batch_size, n))
        batch = queries.take(rows)
        rec = recommender.recommend(batch, k=k_max)
        for key, value in rec.timings_s.items():
            timings[key] = timings.get(key, 0.0) + value
        lists = {name: result.item_idx for name, result in rec.channels.items()}
        lists["merged"] = candidates_to_matrix(
            rec.candidates, batch.query_id, recommender.config.recall.merge.k
        )
        stage_lists = {"recall": _dedupe_rows(np.hstack(list(lists.values()))), "merge": None}
        stage_lists["merge"] = lists["merged"]
        if rec.scored is not None:
            lists["ranked"] = candidates_to_matrix(
                rec.scored, batch.query_id, recommender.ranker.config.score_k, rank_column="rank"
            )
            stage_lists["rank"] = lists["ranked"]
            if scored_parts is not None:
                keep = ["query_id", "item_idx", "merged_rank", "rank", "score", "source"]
                keep += [c for c in rec.scored.columns if c.startswith("p_")]
                scored_parts.append(rec.scored.select(keep))
        final = rec.scored if rec.reranked is None else rec.reranked
        if rec.reranked is not None:
            lists["reranked"] = candidates_to_matrix(
                rec.reranked, batch.query_id, k_max, rank_column="rank"
            )
        if final is None:
            final = rec.candidates.rename({"merged_rank": "rank"})
        truth_ptr, truth_idx = csr_rows(eval_queries.truth_ptr, eval_queries.truth_idx, rows)
        mask = None
        if eval_queries.mask_ptr is not None:
            mask = csr_rows(eval_queries.mask_ptr, eval_queries.mask_idx, rows)
        source, items = _source_matrix(final, batch.query_id, k_min, names)
        hit = hit_matrix(items, truth_ptr, truth_idx)
        shown += np.bincount(source[source >= 0], minlength=len(names))
        shown_hits += np.bincount(source[(source >= 0) & hit], minlength=len(names))
        for name, matrix in lists.items():
            if mask is not None:
                matrix = drop_masked(matrix, *mask)
            width = min(k_max, matrix.shape[1])
            recs[name][rows, :width] = matrix[:, :width]
        for stage, matrix in stage_lists.items():
            if mask is not None:
                matrix = drop_masked(matrix, *mask)
            stage_hits[stage][rows] = hit_matrix(matrix, truth_ptr, truth_idx).sum(axis=1)
            stage_sizes[stage][rows] = (matrix >= 0).sum(axis=1)
        if progress is not None:
            progress("evaluate", int(rows[-1]) + 1, n)
    popularity = _item_popularity(train)
    n_catalogue = len(recommender.item_vocab)
    popularity = np.concatenate([popularity, np.zeros(n_catalogue - popularity.shape[0])])
    side = recommender.item_side()
    metrics: dict[str, dict[str, float]] = {}
    for name, matrix in recs.items():
        list_ks = ks
        if name == "reranked":  # re-ranking returns at most rerank.pool items
            list_ks = tuple(k for k in ks if k <= recommender.config.rerank.pool) or ks[:1]
        values = ranking_metrics(matrix, eval_queries.truth_ptr, eval_queries.truth_idx, list_ks)
        for k in list_ks:
            values[f"coverage@{k}"] = catalogue_coverage(matrix, n_catalogue, k)
            values[f"novelty@{k}"] = novelty(matrix, popularity, k)
            values.update(diversity_metrics(matrix, side, k))
        metrics[name] = values
    truth_sizes = np.diff(eval_queries.truth_ptr)
    metrics["_stages"] = {
        stage: {
            "candidate_recall": float(np.mean(stage_hits[stage] / truth_sizes)),
            "mean_candidates": float(np.mean(stage_sizes[stage])),
        }
        for stage in stage_hits
        if stage != "rank" or recommender.ranker is not None
    }
    metrics["_channels"] = {
        name: {
            "share": float(shown[i] / max(shown.sum(), 1)),
            "hit_share": float(shown_hits[i] / max(shown_hits.sum(), 1)),
        }
        for i, name in enumerate(names)
    }
    return metrics, timings, recs


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


SLICE_METRICS = ("recall", "ndcg", "hit", "mrr")


def slice_metrics(
    recs: dict[str, NDArray[np.int32]],
    eval_queries: EvalQueries,
    n_train_items: int,
    ks: tuple[int, ...],
) -> dict[str, dict]:
    """Metrics for warm/cold users and warm/cold items.

    Cold users have no history at query time. Cold items are held-out items the training data
    never saw (first seen in the test period); their slice keeps, per query, only the cold part
    of the truth, so it answers "how much of the new-item demand does this channel recall".
    """
    queries = eval_queries.queries
    ptr, idx = eval_queries.truth_ptr, eval_queries.truth_idx
    out: dict[str, dict] = {}
    cold_user = queries.history_len == 0
    for label, rows in (("warm_users", ~cold_user), ("cold_users", cold_user)):
        out[label] = _subset_metrics(recs, np.flatnonzero(rows), ptr, idx, None, ks)
    for label, keep in (("warm_items", idx < n_train_items), ("cold_items", idx >= n_train_items)):
        out[label] = _subset_metrics(recs, None, ptr, idx, keep, ks)
    return out


def _subset_metrics(
    recs: dict[str, NDArray[np.int32]],
    rows: NDArray[np.int64] | None,
    ptr: NDArray[np.int64],
    idx: NDArray[np.int64],
    keep_truth: NDArray[np.bool_] | None,
    ks: tuple[int, ...],
) -> dict:
    row_of = np.repeat(np.arange(ptr.shape[0] - 1), np.diff(ptr))
    keep = np.ones(idx.shape[0], dtype=bool) if keep_truth is None else keep_truth
    if rows is not None:
        keep &= np.isin(row_of, rows)
    counts = np.bincount(row_of[keep], minlength=ptr.shape[0] - 1)
    sel = np.flatnonzero(counts > 0)
    result: dict = {"n_queries": int(sel.shape[0]), "n_truth": int(keep.sum())}
    if sel.shape[0] == 0:
        return result
    sub_ptr = np.zeros(sel.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts[sel], out=sub_ptr[1:])
    sub_idx = idx[keep]  # truth is grouped by row, so the kept entries stay in row order
    for name, matrix in recs.items():
        values = ranking_metrics(matrix[sel], sub_ptr, sub_idx, ks)
        result[name] = {m: v for m, v in values.items() if m.split("@")[0] in SLICE_METRICS}
    return result


def split_and_index(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    users: pl.DataFrame | None,
    config: ExperimentConfig,
) -> tuple[Split, Dataset]:
    """The configured split and the indexed training Dataset (vocabularies, statistics and
    ``as_of`` from the training side only)."""
    split = make_split(interactions, items, users, config.split, config.data.positive_events)
    train = Dataset.build(
        split.train_interactions,
        split.train_items,
        split.train_users,
        as_of=split.as_of,
        positive_events=config.data.positive_events,
    )
    return split, train


def run_experiment(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    users: pl.DataFrame | None,
    config: ExperimentConfig,
    progress: ProgressFn | None = None,
    work_dir: Path | None = None,
) -> ExperimentResult:
    """Split, fit on the training side, evaluate; returns the fitted recommender and metrics.

    ``work_dir`` receives run by-products (the ranker's training-health diagnostics)."""
    rng = np.random.default_rng(config.seed)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    split, train = split_and_index(interactions, items, users, config)
    timings["split"] = time.perf_counter() - start
    if progress is not None:
        progress("fit", 0, 1)
    recommender, fit_timings = Recommender.fit(config, train, rng=rng)
    timings.update(fit_timings)
    if progress is not None:
        progress("fit", 1, 1)
    n_new_items = 0
    if config.eval.ingest_new_items and items is not None:
        # Items published during the test period are known by their metadata (not their
        # interactions) at query time, as in production: channels that can embed them do.
        start = time.perf_counter()
        n_new_items = recommender.ingest_items(items).shape[0]
        timings["ingest_new_items"] = time.perf_counter() - start
    rank_data = None
    if config.rank.enabled:
        if progress is not None:
            progress("rank.fit", 0, 1)
        start = time.perf_counter()
        rank_data = build_rank_data(train, config, rng)
        timings["rank.samples"] = time.perf_counter() - start
        health_dir = None if work_dir is None else Path(work_dir) / "diagnostics"
        ranker, rank_timings = fit_ranker(rank_data, train, config, health_dir)
        timings.update(rank_timings)
        recommender.attach_ranker(ranker, train.interactions)
        if progress is not None:
            progress("rank.fit", 1, 1)
    start = time.perf_counter()
    eval_queries = build_eval_queries(split, train, config, rng, recommender, users)
    timings["build_queries"] = time.perf_counter() - start
    scored_parts: list[pl.DataFrame] = []
    recall, eval_timings, recs = evaluate_recall(
        recommender, eval_queries, train, config, progress, scored_parts
    )
    timings.update(eval_timings)
    stages, channel_share = recall.pop("_stages"), recall.pop("_channels")
    slices = slice_metrics(recs, eval_queries, train.n_items, tuple(sorted(config.eval.ks)))
    metrics = {
        "recall": recall,
        "skipped_channels": recommender.skipped,
        "slices": slices,
        "split": {
            **split.info,
            "n_queries": len(eval_queries.queries),
            "n_cold_user_queries": eval_queries.n_cold_users,
            "truth_items": int(eval_queries.truth_idx.shape[0]),
        },
        "data": {
            "interactions": interactions.height,
            "train_users": train.n_users,
            "train_items": train.n_items,
            "train_positives": train.positives.height,
            "ingested_new_items": n_new_items,
        },
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
    }
    if config.eval.latency_requests:
        metrics["latency_ms"] = request_latency(
            recommender, eval_queries.queries, config.eval.latency_requests, 10, rng
        )
    if recommender.reranker is not None and scored_parts and config.eval.rerank_sweep_queries:
        start = time.perf_counter()
        metrics["rerank"] = rerank_sweep(
            recommender, eval_queries, pl.concat(scored_parts), config, rng
        )
        metrics["timings_s"]["rerank.sweep"] = round(time.perf_counter() - start, 4)
    metrics["funnel"] = funnel_summary(
        recall, stages, channel_share, metrics.get("latency_ms"), min(config.eval.ks)
    )
    if rank_data is not None and recommender.ranker is not None:
        start = time.perf_counter()
        metrics["rank"] = rank_metrics(
            recommender, rank_data, eval_queries, scored_parts, interactions, train, split, config
        )
        metrics["timings_s"]["rank.evaluate"] = round(time.perf_counter() - start, 4)
    return ExperimentResult(recommender, train, metrics)


def request_latency(
    recommender: Recommender, queries: Queries, n: int, k: int, rng: np.random.Generator
) -> dict[str, dict[str, float]]:
    """Per-stage latency of single-user requests (ms, p50/p99/mean over ``n`` random queries),
    as a service would see it (batch evaluation amortises per-call costs and would hide them).
    """
    if n <= 0 or len(queries) == 0:
        return {}
    rows = rng.choice(len(queries), min(n, len(queries)), replace=False)
    for _ in range(2):  # warm-up: JIT, caches, the ranker's log index (built on 2nd sight)
        recommender.recommend(queries.take(rows[:1]), k=k)
    per_stage: dict[str, list[float]] = {}
    for row in rows:
        start = time.perf_counter()
        rec = recommender.recommend(queries.take(np.array([row])), k=k)
        total = time.perf_counter() - start
        recall = sum(v for s, v in rec.timings_s.items() if s.startswith("recall."))
        for stage, seconds in {**rec.timings_s, "recall": recall, "total": total}.items():
            per_stage.setdefault(stage, []).append(seconds * 1000.0)
    return {
        stage: {
            "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99)),
            "mean": float(np.mean(values)),
        }
        for stage, values in per_stage.items()
    }


def rank_metrics(
    recommender: Recommender,
    rank_data: RankData,
    eval_queries: EvalQueries,
    scored_parts: list[pl.DataFrame],
    interactions: pl.DataFrame,
    train: Dataset,
    split: Split,
    config: ExperimentConfig,
) -> dict:
    """metrics.json ``rank``: per task (AUC, GAUC, LogLoss, calibration) on test exposures,
    the ranked list's NDCG@K against the recall order, and how the ranker was trained.

    Test exposures are the logged impression slates after the cutoff when the ranker was
    trained on impressions, otherwise the eval queries' candidates (labelled by each user's
    test-period events)."""
    ranker = recommender.ranker
    assert ranker is not None
    full = index_log(interactions, train)
    if split.info.get("kind") == "temporal":
        future = full.filter(pl.col("timestamp") >= split.as_of)
    else:
        # Leave-last-out and random splits hold out events from inside the training span:
        # the future is those events, dated at their query's time (labels need event >= query).
        held = split.test.select("user_id", "item_id", "timestamp", "query_ts")
        future = (
            full.join(held, on=["user_id", "item_id", "timestamp"], how="inner")
            .with_columns(pl.col("query_ts").alias("timestamp"))
            .drop("query_ts")
        )
    # Candidates carry the recommender's catalogue ids (training items + ingested ones).
    future = future.with_columns(
        pl.Series("item_idx", recommender.item_vocab.encode(future["item_id"]))
    )
    users = full.select("user_id", "user_idx").unique("user_id")
    request = (
        pl.DataFrame(
            {
                "query_id": eval_queries.queries.query_id,
                "user_id": eval_queries.user_ids,
                "timestamp": eval_queries.queries.timestamp,
            }
        )
        .join(users, on="user_id", how="left", maintain_order="left")
        .select("query_id", "user_idx", "timestamp")
    )
    scored = pl.concat(scored_parts) if scored_parts else pl.DataFrame()
    on_candidates = candidate_rank_metrics(
        ranker, rank_data, scored, request, future, tuple(sorted(config.eval.ks))
    )
    out: dict = {}
    rng = np.random.default_rng(config.seed)
    on_impressions = (
        impression_rank_metrics(ranker, rank_data, full, split.as_of, rng)
        if rank_data.source == "impressions"
        else {}
    )
    headline = on_impressions or on_candidates
    out.update(headline.get("tasks", {}))
    out["evaluated_on"] = "test impressions" if on_impressions else "test-user candidates"
    out["n_samples"] = headline.get("n_samples", 0)
    out["n_queries"] = headline.get("n_queries", 0)
    out["list"] = on_candidates.get("list", {})
    out["candidates"] = on_candidates.get("tasks", {})
    out["model"] = ranker.config.model.kind
    out["training"] = {
        **rank_data.info,
        **{k: v for k, v in ranker.stats.items() if k != "history"},
        "epochs_detail": ranker.stats.get("history", []),
    }
    return out
