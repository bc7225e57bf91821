"""The ranking stage inside the offline protocol: build leakage-free training samples, fit the
ranker, and measure it on the test period.

Training samples come from the last ``rank.window_fraction`` of the training time span:

* ``impressions``: the logged slates of that window (non-clicked exposures are negatives);
  slates whose label windows would reach past the cutoff are dropped, so every label is
  complete.
* ``recall``: recall is re-fitted on the time before the window, asked for each user active
  in the window as of the window start, and its candidates are labelled by the window's events
  (candidates the user did not touch are negatives). Recall fitted on the whole training side
  would have seen those events and excluded them as "already seen".

Features are point-in-time (each sample reads only events strictly before its timestamp), so
training features read the training log and test features may read the whole log. The latest
``valid_fraction`` of training queries drives early stopping and fusion tuning.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.metrics.rank import grouped_ndcg, rank_report
from funnelrec.rank.ranker import RankConfig, Ranker
from funnelrec.rank.samples import (
    SampleConfig,
    TaskLabel,
    candidate_samples,
    impression_samples,
    resolve_source,
    tasks_for_events,
)
from funnelrec.schema import INTERACTIONS

if TYPE_CHECKING:
    from funnelrec.pipeline.recommender import Recommender
    from funnelrec.recall.base import Queries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankData:
    """Training/validation samples, the log their features read, and how they were made."""

    train: pl.DataFrame
    valid: pl.DataFrame
    log: pl.DataFrame
    source: str
    sample_config: SampleConfig
    info: dict = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.sample_config.tasks)


def sample_config(rank: RankConfig, log: pl.DataFrame, source: str) -> SampleConfig:
    """Tasks the log supports (or ``rank.tasks``); recall-source labels use the whole window."""
    known = tasks_for_events(log["event"].unique().to_list())
    if rank.tasks is not None:
        missing = [t for t in rank.tasks if t not in known]
        if missing:
            raise ValueError(
                f"rank.tasks {missing} have no events in the log; it supports {sorted(known)}"
            )
        known = {t: known[t] for t in rank.tasks}
    if source == "recall":
        known = {t: TaskLabel(events=v.events, window_s=None) for t, v in known.items()}
    return SampleConfig(
        source=source,
        tasks=known,
        max_negatives_per_query=rank.max_negatives_per_query,
        seed=rank.seed,
    )


def take_queries(samples: pl.DataFrame, max_samples: int | None, rng: np.random.Generator):
    """Whole queries, at random, until about ``max_samples`` rows."""
    if max_samples is None or samples.height <= max_samples:
        return samples
    sizes = samples.group_by("query_id").len().sort("query_id")
    order = rng.permutation(sizes.height)
    cum = np.cumsum(sizes["len"].to_numpy()[order])
    keep = sizes["query_id"].to_numpy()[order[: int(np.searchsorted(cum, max_samples)) + 1]]
    return samples.filter(pl.col("query_id").is_in(keep))


def _split_valid(samples: pl.DataFrame, fraction: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The latest ``fraction`` of queries (by time, then id) become validation."""
    queries = (
        samples.group_by("query_id").agg(pl.col("timestamp").min()).sort("timestamp", "query_id")
    )
    n_valid = max(1, round(queries.height * fraction)) if queries.height > 1 else 0
    valid_ids = queries["query_id"].tail(n_valid)
    is_valid = pl.col("query_id").is_in(valid_ids.implode())
    return samples.filter(~is_valid), samples.filter(is_valid)


def build_rank_data(train: Dataset, config: ExperimentConfig, rng: np.random.Generator) -> RankData:
    """Training and validation samples from the end of the training period (module docstring)."""
    rank = config.rank
    log = train.interactions
    if log.height == 0:
        raise ValueError("no training interactions to build ranking samples from")
    source = resolve_source(log, SampleConfig(source=rank.source))
    cfg = sample_config(rank, log, source)
    t_min = int(log["timestamp"].min())
    window_start = int(train.as_of - rank.window_fraction * (train.as_of - t_min))
    info: dict = {"source": source, "window_start": window_start, "tasks": list(cfg.tasks)}
    if source == "impressions":
        samples = impression_samples(log.filter(pl.col("timestamp") >= window_start), cfg, rng=rng)
        windows = [t.window_s for t in cfg.tasks.values()]
        if all(w is not None for w in windows):
            # Labels of later slates would be cut off by the split: drop those slates.
            samples = samples.filter(pl.col("timestamp") < train.as_of - max(windows))
    else:
        samples = _recall_samples(train, config, cfg, window_start, rng)
    samples = take_queries(samples, rank.max_train_samples, rng)
    fit_part, valid_part = _split_valid(samples, rank.valid_fraction)
    if fit_part.height == 0:
        raise ValueError(
            "no ranking samples in the training window; widen rank.window_fraction or "
            "disable the stage with --set rank.enabled=false"
        )
    info.update(
        train_samples=fit_part.height,
        valid_samples=valid_part.height,
        train_queries=fit_part["query_id"].n_unique(),
        positive_rate={t: float(fit_part[f"label_{t}"].mean()) for t in cfg.tasks},
    )
    return RankData(fit_part, valid_part, log, source, cfg, info)


def _recall_samples(
    train: Dataset,
    config: ExperimentConfig,
    cfg: SampleConfig,
    window_start: int,
    rng: np.random.Generator,
) -> pl.DataFrame:
    from funnelrec.pipeline.recommender import Recommender

    log = train.interactions
    before = log.filter(pl.col("timestamp") < window_start)
    items = train.items
    if items is not None and "created_at" in items.columns:
        items = items.filter(pl.col("created_at").is_null() | (pl.col("created_at") < window_start))
    columns = [c for c in INTERACTIONS.names if c in before.columns]
    earlier = Dataset.build(
        before.select(columns),
        None if items is None else items.drop("item_idx"),
        None if train.users is None else train.users.drop("user_idx"),
        as_of=window_start,
        positive_events=config.data.positive_events,
    )
    recall, _ = Recommender.fit(config, earlier, rng=rng)
    window = log.filter(pl.col("timestamp") >= window_start)
    active = window.filter(pl.col("event") != "impression")["user_id"].unique().sort()
    queries = recall.queries(active, window_start)
    candidates = merged_candidates(recall, queries, config.rank.score_k, config.eval.batch_size)
    # Candidate item_idx are in the earlier vocabulary: map them to the training one.
    item_ids = recall.item_vocab.decode(candidates["item_idx"].to_numpy())
    candidates = candidates.with_columns(
        pl.Series("item_idx", train.item_vocab.encode(pl.Series(item_ids)))
    )
    query_frame = pl.DataFrame(
        {
            "query_id": queries.query_id,
            "user_idx": train.user_vocab.encode(active),
            "timestamp": np.full(len(queries), window_start, dtype=np.int64),
        }
    )
    return candidate_samples(query_frame, candidates, window, cfg, rng=rng)


def merged_candidates(
    recommender: Recommender, queries: Queries, k: int, batch_size: int
) -> pl.DataFrame:
    """Merged candidates (recall order) of ``queries``, at most ``k`` per query: recall and
    merge only, in batches."""
    parts = []
    for start in range(0, len(queries), batch_size):
        batch = queries.take(np.arange(start, min(start + batch_size, len(queries))))
        merged = recommender.candidates(batch)[1]
        parts.append(merged.filter(pl.col("merged_rank") <= k))
    return pl.concat(parts)


def fit_ranker(
    data: RankData, train: Dataset, config: ExperimentConfig, health_dir: Path | None
) -> tuple[Ranker, dict[str, float]]:
    """Fit the configured ranker on ``data``; returns it and stage timings."""
    start = time.perf_counter()
    ranker = Ranker(config.rank, data.tasks).fit(
        train, data.train, data.valid, data.log, health_dir=health_dir
    )
    return ranker, {"fit.rank": time.perf_counter() - start}


def impression_rank_metrics(
    ranker: Ranker, data: RankData, full_log: pl.DataFrame, as_of: int, rng: np.random.Generator
) -> dict:
    """Per-task metrics on the logged impression slates after the cutoff (real exposures,
    non-clicked = negatives); features read the whole log, point in time."""
    future = full_log.filter(pl.col("timestamp") >= as_of)
    if not (future["event"] == "impression").any():
        return {}
    samples = impression_samples(future, data.sample_config, rng=rng)
    samples = take_queries(samples, ranker.config.max_test_samples, rng)
    if samples.height == 0:
        return {}
    probs = ranker.predict(samples, full_log)
    labels = {t: samples[f"label_{t}"].to_numpy() for t in ranker.tasks}
    report = rank_report(labels, probs, samples["query_id"].to_numpy())
    return {
        "tasks": report,
        "n_samples": samples.height,
        "n_queries": samples["query_id"].n_unique(),
    }


def candidate_rank_metrics(
    ranker: Ranker,
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
        value += ranker.config.value_weights.get(t, 1.0) * labelled[f"label_{t}"].to_numpy()
    recall_order = -labelled["merged_rank"].to_numpy().astype(np.float64)
    final_order = -labelled["rank"].to_numpy().astype(np.float64)
    lists = {}
    for k in k_values:
        lists[f"ndcg@{k}"] = grouped_ndcg(value, final_order, group, k)
        lists[f"recall_order_ndcg@{k}"] = grouped_ndcg(value, recall_order, group, k)
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
