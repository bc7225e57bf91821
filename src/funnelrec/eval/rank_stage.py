"""The ranking stage measured on the test period: per-task metrics on test exposures and the
ranked list against the recall order. Training lives in :mod:`funnelrec.pipeline`."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.split import Split
from funnelrec.eval.queries import EvalQueries
from funnelrec.eval.scenarios import by_scenario
from funnelrec.metrics.rank import grouped_ndcg_at, rank_report
from funnelrec.pipeline.fit import RankTraining
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.rank_samples import RankData, take_queries
from funnelrec.rank.base import RankerProtocol
from funnelrec.rank.samples import (
    SampleConfig,
    TaskLabel,
    candidate_samples,
    extended_vocabulary,
    impression_samples,
    index_log,
)


def impression_rank_metrics(
    ranker: RankerProtocol,
    data: RankData,
    full_log: pl.DataFrame,
    as_of: int,
    max_samples: int | None,
    rng: np.random.Generator,
) -> dict:
    """Per-task metrics on the logged impression slates after the cutoff (real exposures,
    non-clicked = negatives); features read the whole log, point in time."""
    future = full_log.filter(pl.col("timestamp") >= as_of)
    if not (future["event"] == "impression").any():
        return {}
    samples = impression_samples(future, data.sample_config, rng=rng)
    samples = take_queries(samples, max_samples, rng)
    if samples.height == 0:
        return {}
    probs = ranker.predict(samples, full_log)
    labels = {t: samples[f"label_{t}"].to_numpy() for t in ranker.tasks}
    report = rank_report(labels, probs, samples["query_id"].to_numpy())
    out = {
        "tasks": report,
        "n_samples": samples.height,
        "n_queries": samples["query_id"].n_unique(),
    }
    scenarios = by_scenario(samples, labels, probs)
    if scenarios:  # the log has several scenarios (KuaiRand's tab, the simulator's)
        out["by_scenario"] = scenarios
    return out


def candidate_rank_metrics(
    ranker: RankerProtocol,
    data: RankData,
    scored: pl.DataFrame,
    queries: pl.DataFrame,
    future: pl.DataFrame,
    k_values: tuple[int, ...],
) -> dict:
    """On the eval queries' scored candidates, labelled by the users' test-period events:
    per-task metrics, and NDCG@K of the ranker's order vs the recall (merge) order, with
    graded gains ``sum_t value_weights[t] * label_t``."""
    tasks = {
        t: TaskLabel(events=v.events, window_s=None) for t, v in data.sample_config.tasks.items()
    }
    labelled = candidate_samples(
        queries, scored, future, SampleConfig(source="recall", tasks=tasks)
    )
    if labelled.height == 0:
        return {}
    group = labelled["query_id"].to_numpy()
    value = np.zeros(labelled.height)
    for t in ranker.tasks:
        value += ranker.config.fusion.value_weights.get(t, 1.0) * labelled[f"label_{t}"].to_numpy()
    recall_order = -labelled["merged_rank"].to_numpy().astype(np.float64)
    final_order = -labelled["rank"].to_numpy().astype(np.float64)
    final = grouped_ndcg_at(value, final_order, group, k_values)
    recall = grouped_ndcg_at(value, recall_order, group, k_values)
    lists = {}
    for k in k_values:
        lists[f"ndcg@{k}"] = final[k]
        lists[f"recall_order_ndcg@{k}"] = recall[k]
    # Per-task metrics over the candidates the ranker scored (warm users, known items).
    judged = labelled.filter(pl.col("score").is_not_null())
    labels = {t: judged[f"label_{t}"].to_numpy() for t in ranker.tasks}
    probs = {t: judged[f"p_{t}"].to_numpy().astype(np.float64) for t in ranker.tasks}
    return {
        "tasks": rank_report(labels, probs, judged["query_id"].to_numpy()),
        "list": lists,
        "n_samples": judged.height,
        "n_queries": judged["query_id"].n_unique(),
    }


def rank_metrics(
    recommender: Funnel,
    training: RankTraining,
    eval_queries: EvalQueries,
    scored: pl.DataFrame | None,
    interactions: pl.DataFrame,
    train: Dataset,
    split: Split,
    config: ExperimentConfig,
) -> dict[str, Any]:
    """metrics.json ``rank``: per task (AUC, GAUC, LogLoss, calibration) on test exposures,
    the ranked list's NDCG@K against the recall order, and how the ranker was trained.

    Test exposures are the logged impression slates after the cutoff when the ranker was
    trained on impressions, otherwise the eval queries' candidates (labelled by each user's
    test-period events)."""
    ranker = recommender.ranker
    assert ranker is not None
    rank_data = training.data
    future = _test_period_log(interactions, split)
    # Labels only match a query's user with its events, so the test period and the queries
    # are indexed alone (new users numbered among themselves), not the whole log.
    assert eval_queries.user_ids is not None  # build_eval_queries records them
    query_users = eval_queries.user_ids.cast(future["user_id"].dtype, strict=False)
    users = extended_vocabulary(train.user_vocab, pl.concat([future["user_id"], query_users]))
    future = future.with_columns(
        pl.Series("user_idx", users.encode(future["user_id"])),
        # Candidates carry the recommender's catalogue ids (training items + ingested ones).
        pl.Series("item_idx", recommender.item_vocab.encode(future["item_id"])),
    )
    request = pl.DataFrame(
        {
            "query_id": eval_queries.queries.query_id,
            "user_idx": users.encode(query_users),
            "timestamp": eval_queries.queries.timestamp,
        }
    )
    on_candidates = candidate_rank_metrics(
        ranker,
        rank_data,
        scored if scored is not None else pl.DataFrame(),
        request,
        future,
        tuple(sorted(config.eval.ks)),
    )
    rng = np.random.default_rng(config.seed)
    on_impressions = (
        impression_rank_metrics(
            ranker,
            rank_data,
            index_log(interactions, train),
            split.as_of,
            config.eval.rank_test_samples,
            rng,
        )
        if rank_data.source == "impressions"
        else {}
    )
    headline = on_impressions or on_candidates
    out: dict[str, Any] = dict(headline.get("tasks", {}))
    out["evaluated_on"] = "test impressions" if on_impressions else "test-user candidates"
    out["n_samples"] = headline.get("n_samples", 0)
    out["n_queries"] = headline.get("n_queries", 0)
    if "by_scenario" in headline:
        out["by_scenario"] = headline["by_scenario"]
    out["list"] = on_candidates.get("list", {})
    out["candidates"] = on_candidates.get("tasks", {})
    out["model"] = ranker.config.model.kind
    out["training"] = {
        **rank_data.info,
        **{k: v for k, v in training.stats.items() if k != "history"},
        "epochs_detail": training.stats.get("history", []),
    }
    return out


def _test_period_log(interactions: pl.DataFrame, split: Split) -> pl.DataFrame:
    """The events that label test candidates (ids only, not indexed)."""
    if split.info.get("kind") == "temporal":
        return interactions.filter(pl.col("timestamp") >= split.as_of)
    # Leave-last-out and random splits hold out events from inside the training span: the
    # future is those events, dated at their query's time (labels need event >= query).
    held = split.test.select("user_id", "item_id", "timestamp", "query_ts")
    return (
        interactions.join(held, on=["user_id", "item_id", "timestamp"], how="inner")
        .with_columns(pl.col("query_ts").alias("timestamp"))
        .drop("query_ts")
    )
