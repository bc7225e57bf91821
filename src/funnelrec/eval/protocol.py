"""The offline protocol: split -> :func:`fit_funnel` on the training side -> recommend for
held-out users -> metrics per channel, for the merged, ranked and re-ranked lists. Measurement
only: the funnel is trained by the same function ``funnelrec train`` calls, and queried through
the same ``Recommender.run`` the service runs."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.events import require_positives
from funnelrec.data.split import Split, make_split
from funnelrec.errors import DataError
from funnelrec.eval.funnel import funnel_summary, rerank_sweep
from funnelrec.eval.intervals import list_intervals
from funnelrec.eval.latency import request_latency
from funnelrec.eval.lists import ListEvaluation, evaluate_lists
from funnelrec.eval.queries import EvalQueries, build_eval_queries
from funnelrec.eval.rank_stage import rank_metrics
from funnelrec.eval.slices import slice_metrics
from funnelrec.metrics.topn import PerQueryValues
from funnelrec.pipeline.fit import FitReport, ProgressFn, fit_funnel
from funnelrec.pipeline.funnel import Funnel


@dataclass(frozen=True)
class ExperimentResult:
    """A fitted recommender (training side only), its training data and metrics.json.

    ``per_query`` holds each reported list's per-query recall@K / NDCG@K (rows are the
    held-out users ``query_users``), so runs on the same split can be compared query by query
    (:func:`funnelrec.metrics.intervals.paired_difference`)."""

    recommender: Funnel
    train: Dataset
    metrics: dict[str, Any]
    per_query: dict[str, PerQueryValues] = field(default_factory=dict)
    query_users: pl.Series | None = None


def split_and_index(
    interactions: pl.DataFrame,
    items: pl.DataFrame | None,
    users: pl.DataFrame | None,
    config: ExperimentConfig,
) -> tuple[Split, Dataset]:
    """The configured split and the indexed training Dataset (vocabularies, statistics and
    ``as_of`` from the training side only)."""
    require_positives(interactions, config.data.positive_events)
    split = make_split(interactions, items, users, config.split, config.data.positive_events)
    _require_both_sides(split, interactions.height, config.split.kind)
    train = Dataset.build(
        split.train_interactions,
        split.train_items,
        split.train_users,
        as_of=split.as_of,
        positive_events=config.data.positive_events,
    )
    return split, train


def _require_both_sides(split: Split, n_rows: int, kind: str) -> None:
    """An evaluation needs rows to learn from and positives to score against; without either
    every later stage would fail its own, less clear way (or report NaN metrics)."""
    missing = [
        what
        for what, empty in (
            ("no training row", split.train_interactions.height == 0),
            ("no held-out positive to evaluate on", split.test.height == 0),
        )
        if empty
    ]
    if missing:
        raise DataError(
            f"the {kind} split of {n_rows} rows leaves {' and '.join(missing)}: more data, or "
            "another split.kind (temporal, leave_last_out, random_ratio), is needed"
        )


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
    start = time.perf_counter()
    split, train = split_and_index(interactions, items, users, config)
    timings = {"split": time.perf_counter() - start}
    recommender, report = fit_funnel(config, train, rng, work_dir=work_dir, progress=progress)
    timings.update(report.timings_s)
    n_new_items = 0
    if config.eval.ingest_new_items and items is not None:
        # Items published during the test period are known by their metadata (not their
        # interactions) at query time, as in production: channels that can embed them do.
        start = time.perf_counter()
        n_new_items = recommender.ingest_items(items).shape[0]
        timings["ingest_new_items"] = time.perf_counter() - start
    start = time.perf_counter()
    eval_queries = build_eval_queries(split, train, config, rng, recommender, users)
    timings["build_queries"] = time.perf_counter() - start
    lists = evaluate_lists(recommender, eval_queries, train, config, progress)
    timings.update(lists.timings_s)
    metrics = _base_metrics(recommender, report, lists, eval_queries, split, train, config)
    metrics["data"].update(interactions=interactions.height, ingested_new_items=n_new_items)
    per_query = {name: lists.per_query[name] for name in metrics["recall"]}
    if config.eval.interval_resamples:
        # Its own stream: adding intervals leaves every other sampled number of a run as it was.
        metrics["intervals"] = list_intervals(
            per_query,
            np.random.default_rng(config.seed),
            level=config.guards.level,
            n_boot=config.eval.interval_resamples,
        )
    metrics["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
    _stage_reports(metrics, recommender, lists, eval_queries, config, rng)
    metrics["guards"] = [d.as_dict() for d in report.guards]
    if report.recall_tuning:
        metrics["recall_tuning"] = [t.as_dict() for t in report.recall_tuning]
    if report.rank_skipped is not None:
        metrics["rank"] = {"skipped": report.rank_skipped}
    if report.rank is not None and recommender.ranker is not None:
        start = time.perf_counter()
        metrics["rank"] = rank_metrics(
            recommender, report.rank, eval_queries, lists.scored, interactions, train, split, config
        )
        metrics["timings_s"]["rank.evaluate"] = round(time.perf_counter() - start, 4)
    return ExperimentResult(recommender, train, metrics, per_query, eval_queries.user_ids)


def _base_metrics(
    recommender: Funnel,
    report: FitReport,
    lists: ListEvaluation,
    eval_queries: EvalQueries,
    split: Split,
    train: Dataset,
    config: ExperimentConfig,
) -> dict[str, Any]:
    """metrics.json's ``recall``, ``skipped_channels``, ``silent_channels``, ``slices``,
    ``split`` and ``data``. A fitted channel that returned nothing for any query is listed
    under ``silent_channels`` instead of as a row of zeros (e.g. onboarding without tags)."""
    silent = {
        name: "returned no candidate for any evaluation query"
        for name in recommender.channels
        if not (lists.lists[name] >= 0).any()
    }
    return {
        "recall": {n: v for n, v in lists.metrics.items() if n not in silent},
        "skipped_channels": dict(report.skipped),
        "silent_channels": silent,
        "slices": slice_metrics(
            lists.lists, eval_queries, train.n_items, tuple(sorted(config.eval.ks))
        ),
        "split": {
            **split.info,
            "n_queries": len(eval_queries.queries),
            "n_held_out_users": eval_queries.n_held_out_users,
            "n_cold_user_queries": eval_queries.n_cold_users,
            "truth_items": int(eval_queries.truth_idx.shape[0]),
        },
        "data": {
            "train_users": train.n_users,
            "train_items": train.n_items,
            "train_positives": train.positives.height,
        },
    }


def _stage_reports(
    metrics: dict[str, Any],
    recommender: Funnel,
    lists: ListEvaluation,
    eval_queries: EvalQueries,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> None:
    """metrics.json's ``latency_ms``, ``rerank`` (the accuracy-diversity sweep) and
    ``funnel`` (one row per stage)."""
    if config.eval.latency_requests:
        metrics["latency_ms"] = request_latency(
            recommender, eval_queries.queries, config.eval.latency_requests, 10, rng
        )
    sweep = config.eval.rerank_sweep_queries > 0
    if sweep and recommender.reranker is not None and lists.scored is not None:
        start = time.perf_counter()
        metrics["rerank"] = rerank_sweep(recommender, eval_queries, lists.scored, config, rng)
        metrics["timings_s"]["rerank.sweep"] = round(time.perf_counter() - start, 4)
    metrics["funnel"] = funnel_summary(
        lists.metrics,
        {s: dataclasses.asdict(v) for s, v in lists.stages.items()},
        {c: dataclasses.asdict(v) for c, v in lists.channels.items()},
        metrics.get("latency_ms"),
        min(config.eval.ks),
    )
