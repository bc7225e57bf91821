"""Ranking samples from the end of the training span: what the ranker of :func:`fit_funnel`
learns from.

Training samples come from the last ``rank.samples.window_fraction`` of the training time span:

* ``impressions``: the logged slates of that window (non-clicked exposures are negatives);
  slates whose label windows would reach past the cutoff are dropped, so every label is
  complete.
* ``recall``: recall is re-fitted on the time before the window, asked for each user active
  in the window as of the window start, and its candidates are labelled by the window's events
  (candidates the user did not touch are negatives). Recall fitted on the whole training side
  would have seen those events and excluded them as "already seen".

Features are point-in-time (each sample reads only events strictly before its timestamp), so
training features read the training log. The latest ``valid_fraction`` of training queries
drives early stopping and fusion tuning; the latest ``guard_fraction`` before that is held out
for the do-no-harm guards (:mod:`funnelrec.pipeline.guards`), which judge every learned stage
on queries none of them was fitted or tuned on.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.events import positive_expr
from funnelrec.data.split import make_split
from funnelrec.data.user_attributes import tag_lists
from funnelrec.errors import ConfigError, MissingInputError
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.recall_fit import fit_recall
from funnelrec.rank.config import RankConfig
from funnelrec.rank.delay.censor import censor_tasks
from funnelrec.rank.labels import DURATION_TASKS, duration_tasks_for
from funnelrec.rank.popularity_weights import item_popularity, popularity_weighted
from funnelrec.rank.samples import (
    SampleConfig,
    candidate_samples,
    impression_samples,
    resolve_source,
    tasks_for_events,
)
from funnelrec.recall.base import Queries
from funnelrec.schema import INTERACTIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankData:
    """Training/validation samples, the log their features read, and how they were made."""

    train: pl.DataFrame
    valid: pl.DataFrame
    log: pl.DataFrame
    source: str
    sample_config: SampleConfig
    info: dict[str, Any] = field(default_factory=dict)
    guard: pl.DataFrame = field(default_factory=pl.DataFrame)
    cold_queries: frozenset[int] = frozenset()
    """Recall source: queries whose user had no history at the window start; the funnel keeps
    their merge order (the ranker only re-orders warm users' candidates), so the guards do."""

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.sample_config.tasks)


def sample_config(rank: RankConfig, log: pl.DataFrame, source: str) -> SampleConfig:
    """Tasks the log supports (or ``rank.tasks``); recall-source labels use the whole window."""
    known = tasks_for_events(log["event"].unique().to_list())
    if rank.samples.tasks is not None:
        # Duration tasks (complete, watch_time, ...) only when named: they need the columns.
        known = {**known, **duration_tasks_for(log)}
        missing = [t for t in rank.samples.tasks if t not in known]
        if missing:
            _refuse_tasks(missing, sorted(known))
        known = {t: known[t] for t in rank.samples.tasks}
    if source == "recall":
        known = {t: v.model_copy(update={"window_s": None}) for t, v in known.items()}
    return SampleConfig(
        source=source,
        tasks=censor_tasks(known, rank.samples.label_window_s),
        max_negatives_per_query=rank.samples.max_negatives_per_query,
        seed=rank.train.seed,
    )


def _refuse_tasks(missing: list[str], supported: list[str]) -> None:
    """Raise for ``rank.samples.tasks`` the log cannot label: a duration task on a log
    without play/video durations is a configuration mistake, named as one."""
    durations = [t for t in missing if t in DURATION_TASKS]
    if durations:
        raise ConfigError(
            f"rank.samples.tasks {durations} need the interactions' play_duration and "
            "video_duration columns (seconds) and plays (click/watch rows) carrying them; this "
            f"log has none. It supports {supported}"
        )
    raise ValueError(
        f"rank.samples.tasks {missing} have no events in the log; it supports {supported}"
    )


def take_queries(
    samples: pl.DataFrame, max_samples: int | None, rng: np.random.Generator
) -> pl.DataFrame:
    """Whole queries, at random, until about ``max_samples`` rows."""
    if max_samples is None or samples.height <= max_samples:
        return samples
    sizes = samples.group_by("query_id").len().sort("query_id")
    order = rng.permutation(sizes.height)
    cum = np.cumsum(sizes["len"].to_numpy()[order])
    keep = sizes["query_id"].to_numpy()[order[: int(np.searchsorted(cum, max_samples)) + 1]]
    return samples.filter(pl.col("query_id").is_in(keep))


def _latest_count(n: int, fraction: float) -> int:
    """How many of ``n`` queries the latest ``fraction`` holds: at least one when there are
    two or more queries and ``fraction`` is not 0, else none."""
    return max(1, round(n * fraction)) if n > 1 and fraction else 0


def time_order(timestamp: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
    """Positions of ``timestamp`` from earliest to latest, equal times in random order.

    Which of the queries asked at one time is the "latest" carries no information: every
    query of a temporal ranking window is asked at the window's start. Ordered by id instead,
    the latest were the highest ids, and ids often grow with sign-up order: on a 100k-row
    simulated log 111 of the guard's 127 queries were then users without history (the
    window's share is ~40%; a one-off count, docs/guards.md), whose lists the ranker does not
    touch, and the guard judged the ranker on them.
    """
    return np.lexsort((rng.permutation(timestamp.shape[0]), timestamp))


def split_valid(
    samples: pl.DataFrame, fraction: float, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The latest ``fraction`` of queries (by time, ties at random: :func:`time_order`)
    become validation (none when ``fraction`` is 0)."""
    queries = samples.group_by("query_id").agg(pl.col("timestamp").min()).sort("query_id")
    n_valid = _latest_count(queries.height, fraction)
    order = time_order(queries["timestamp"].to_numpy(), rng)
    valid_ids = queries["query_id"].gather(order[queries.height - n_valid :])
    is_valid = pl.col("query_id").is_in(valid_ids.implode())
    return samples.filter(~is_valid), samples.filter(is_valid)


@dataclass(frozen=True)
class RecallWindow:
    """Recall fitted on the time before the ranking window, asked for every user who acted in
    it (as of the window's start): where recall-source ranking samples, the merge tuning and
    the guards' slice come from.

    Attributes:
        funnel: recall + merge fitted on the data before ``start`` (its own vocabularies).
        queries: one query per active user, as of ``start``.
        users: ``[Q]`` the active users' external ids, aligned with ``queries``.
        events: the training log from ``start`` on (the window's events).
        start: the window's start (unix s): the earliest query time.
        earlier: the Dataset ``funnel`` was fitted on (the time before ``start``, or the
            training data less the held-out rows).
        feature_log: the training-log rows the window's samples may read features from
            (None = all: a temporal window's samples read only events before its start).
    """

    funnel: Funnel
    queries: Queries
    users: pl.Series
    events: pl.DataFrame
    start: int
    earlier: Dataset
    feature_log: pl.DataFrame | None = None


def window_start(train: Dataset, config: ExperimentConfig) -> int:
    """The start of the ranking window: the last ``rank.samples.window_fraction`` of the span."""
    t_min = int(cast(int, train.interactions["timestamp"].min()))
    return int(train.as_of - config.rank.samples.window_fraction * (train.as_of - t_min))


def sample_source(train: Dataset, config: ExperimentConfig) -> str:
    """``impressions`` or ``recall`` (``rank.samples.source``, ``auto`` decided by the log)."""
    if train.interactions.height == 0:
        raise MissingInputError("no training interactions to build ranking samples from")
    return resolve_source(train.interactions, SampleConfig(source=config.rank.samples.source))


def recall_window(
    train: Dataset, config: ExperimentConfig, rng: np.random.Generator
) -> RecallWindow:
    """Fit recall on the time before the window and query it for the window's active users.

    The window follows the configured split, so that everything tuned and judged on it
    (merge weights, channel settings, the ranker and the guards) is judged the way the funnel
    is evaluated: a temporal split (and production ``train``) gets the end of the time span;
    leave-last-out and random splits hold out rows of the training data the same way
    (:func:`_holdout_window`): a ranker trained on "what comes next" is the wrong ranker for
    a random hold-out, and the time tail cannot see it.

    Raises:
        MissingInputError: nobody acted in the window.
    """
    if config.split.kind != "temporal":
        return _holdout_window(train, config, rng)
    start = window_start(train, config)
    log = train.interactions
    before = log.filter(pl.col("timestamp") < start)
    items = train.items
    if items is not None and "created_at" in items.columns:
        items = items.filter(pl.col("created_at").is_null() | (pl.col("created_at") < start))
    earlier = Dataset.build(
        before.select(_canonical(before)),
        None if items is None else items.drop("item_idx"),
        None if train.users is None else train.users.drop("user_idx"),
        as_of=start,
        positive_events=config.data.positive_events,
    )
    funnel = fit_recall(config, earlier, rng).recommender
    events = log.filter(pl.col("timestamp") >= start)
    acted = events.filter(positive_expr(config.data.positive_events))
    active = acted["user_id"].unique().sort()
    if active.len() == 0:
        raise MissingInputError(
            "no user acted in the ranking window (the last "
            f"{config.rank.samples.window_fraction:.0%} of the training span)"
        )
    queries = funnel.queries(active, start, tags=_user_tags(train, active))
    return RecallWindow(funnel, queries, active, events, start, earlier)


def _canonical(log: pl.DataFrame) -> list[str]:
    """The canonical interaction columns of ``log`` (its index columns left out)."""
    return [c for c in INTERACTIONS.names if c in log.columns]


def _holdout_window(
    train: Dataset, config: ExperimentConfig, rng: np.random.Generator
) -> RecallWindow:
    """The configured split applied to the training data itself: recall fitted on what it
    keeps, each user with held-out positives queried at the split's query time, the held-out
    events (dated at that time, so they label its candidates) as the window's events, and the
    features of its samples reading the log without them (as the test queries' features do)."""
    log = train.interactions
    columns = _canonical(log)
    split = make_split(
        log.select(columns),
        None if train.items is None else train.items.drop("item_idx"),
        None if train.users is None else train.users.drop("user_idx"),
        config.split,
        config.data.positive_events,
    )
    held = split.test.select("user_id", "item_id", "timestamp", "query_ts")
    if held.height == 0:
        raise MissingInputError(
            f"the {config.split.kind} split of the training data holds out no row"
        )
    earlier = Dataset.build(
        split.train_interactions.select(columns),
        split.train_items,
        split.train_users,
        as_of=split.as_of,
        positive_events=config.data.positive_events,
    )
    funnel = fit_recall(config, earlier, rng).recommender
    keys = ["user_id", "item_id", "timestamp"]
    rows = log.join(held, on=keys, how="inner")
    events = rows.with_columns(pl.col("query_ts").alias("timestamp")).drop("query_ts")
    per_user = held.group_by("user_id").agg(pl.col("query_ts").min()).sort("user_id")
    users = per_user["user_id"]
    tags = _user_tags(train, users)
    queries = funnel.queries(users, per_user["query_ts"].to_numpy(), tags=tags)
    start = int(cast(int, per_user["query_ts"].min()))
    feature_log = log.join(held.select(keys), on=keys, how="anti")
    return RecallWindow(funnel, queries, users, events, start, earlier, feature_log)


def _user_tags(train: Dataset, users: pl.Series) -> list[list[str]] | None:
    """The onboarding tags of ``users`` from the users table (None without a tags column),
    so the window's queries carry what serving requests carry."""
    if train.users is None or "tags" not in train.users.columns:
        return None
    table = train.users.select("user_id", "tags")
    rows = pl.DataFrame({"user_id": users}).join(
        table.with_columns(pl.col("user_id").cast(users.dtype, strict=False)),
        on="user_id",
        how="left",
        maintain_order="left",
    )
    return tag_lists(rows)


def build_rank_data(
    train: Dataset,
    config: ExperimentConfig,
    rng: np.random.Generator,
    window: RecallWindow | None = None,
) -> RankData:
    """Training, validation and guard samples from the end of the training period (module
    docstring); recall-source samples come from ``window`` (made here when not given)."""
    rank = config.rank
    log = train.interactions
    source = sample_source(train, config)
    cfg = sample_config(rank, log, source)
    start = window_start(train, config)
    info: dict[str, Any] = {"source": source, "window_start": start, "tasks": list(cfg.tasks)}
    if source == "impressions":
        samples = impression_samples(log.filter(pl.col("timestamp") >= start), cfg, rng=rng)
        windows = [t.window_s for t in cfg.tasks.values() if t.window_s is not None]
        if len(windows) == len(cfg.tasks):
            # Labels of later slates would be cut off by the split: drop those slates.
            samples = samples.filter(pl.col("timestamp") < train.as_of - max(windows))
        rest, guard = split_valid(samples, rank.samples.guard_fraction, rng)
        guard = labelled_queries(guard)
    else:
        window = window if window is not None else recall_window(train, config, rng)
        rest_rows, guard_rows = _guard_split(window.queries, rank.samples.guard_fraction, rng)
        rest = _recall_samples(train, window, rest_rows, cfg, config, rng)
        guard = (
            _recall_samples(train, window, guard_rows, cfg, config, rng, judgeable=True)
            if guard_rows.size
            else rest.clear()
        )
        if window.feature_log is not None:
            log = window.feature_log
    data = _split_samples(rest, guard, log, source, cfg, info, config, rng)
    if window is not None:
        cold = window.queries.query_id[window.queries.history_len == 0]
        data = dataclasses.replace(data, cold_queries=frozenset(int(q) for q in cold))
    return data


def _split_samples(
    rest: pl.DataFrame,
    guard: pl.DataFrame,
    log: pl.DataFrame,
    source: str,
    cfg: SampleConfig,
    info: dict[str, Any],
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> RankData:
    """Validation (latest of ``rest``), then training samples; both parts capped."""
    rank = config.rank
    rest = take_queries(rest, rank.samples.max_train_samples, rng)
    guard = take_queries(guard, rank.samples.max_train_samples, rng)
    fit_part, valid_part = split_valid(rest, rank.samples.valid_fraction, rng)
    if fit_part.height == 0:
        raise MissingInputError(
            "no ranking samples in the training window; widen rank.samples.window_fraction or "
            "disable the stage with --set rank.enabled=false"
        )
    cfg, dropped = _trainable_tasks(fit_part, cfg, rank.samples.min_task_positives)
    if dropped:
        labels = [f"label_{t}" for t in dropped]
        fit_part, valid_part, guard = (f.drop(labels) for f in (fit_part, valid_part, guard))
        info.update(tasks=list(cfg.tasks), dropped_tasks=dropped)
    beta = rank.samples.popularity_beta
    if beta > 0:  # popularity-bias re-weighting of the loss (training and validation)
        acted = log.filter(positive_expr(config.data.positive_events))
        items = log["item_idx"].to_numpy()
        popularity = item_popularity(acted, int(items.max()) + 1 if items.size else 0)
        tasks = tuple(cfg.tasks)
        fit_part = popularity_weighted(fit_part, popularity, beta, tasks)
        valid_part = popularity_weighted(valid_part, popularity, beta, tasks)
    info.update(
        train_samples=fit_part.height,
        valid_samples=valid_part.height,
        guard_samples=guard.height,
        guard_queries=guard["query_id"].n_unique(),
        train_queries=fit_part["query_id"].n_unique(),
        positive_rate={t: float(cast(float, fit_part[f"label_{t}"].mean())) for t in cfg.tasks},
    )
    return RankData(fit_part, valid_part, log, source, cfg, info, guard)


def _trainable_tasks(
    fit_part: pl.DataFrame, cfg: SampleConfig, minimum: int
) -> tuple[SampleConfig, dict[str, int]]:
    """``cfg`` without the tasks that have fewer than ``minimum`` training positives, and
    ``{dropped task: its positives}``.

    Raises:
        MissingInputError: no task has enough positives (the funnel serves the merge order).
    """
    positives = {t: int(cast(float, fit_part[f"label_{t}"].sum())) for t in cfg.tasks}
    dropped = {t: n for t, n in positives.items() if n < minimum}
    if len(dropped) == len(positives):
        raise MissingInputError(
            f"no ranking task has {minimum} positives among the training samples "
            f"(positives {positives}); lower rank.samples.min_task_positives to train anyway"
        )
    for task, n in dropped.items():
        logger.warning(
            "ranking task %r dropped: %d positive(s) among %d training samples, fewer than "
            "rank.samples.min_task_positives = %d",
            task,
            n,
            fit_part.height,
            minimum,
        )
    kept = {t: v for t, v in cfg.tasks.items() if t not in dropped}
    return cfg.model_copy(update={"tasks": kept}), dropped


def _guard_split(
    queries: Queries, fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row positions of the window's (rest, guard) queries: the latest ``fraction`` (ties at
    random, :func:`time_order`) are the guard's, as :func:`split_valid` splits samples (the
    rest is never empty for a window with a query)."""
    order = time_order(queries.timestamp.astype(np.int64), rng)
    n_rest = order.shape[0] - _latest_count(order.shape[0], fraction)
    return order[:n_rest], order[n_rest:]


MIN_BATCH = 64
"""Fewest queries recalled per batch while filling the sample cap."""


def _recall_samples(
    train: Dataset,
    window: RecallWindow,
    rows: NDArray[np.int64],
    cfg: SampleConfig,
    config: ExperimentConfig,
    rng: np.random.Generator,
    *,
    judgeable: bool = False,
) -> pl.DataFrame:
    """The merged candidates of the window's queries at ``rows``, labelled by the users'
    window events: all of them, or whole queries at random until ``max_train_samples`` rows;
    ``judgeable`` keeps only the queries with a labelled candidate (:func:`labelled_queries`),
    so that the cap is spent on queries a guard can judge.

    Queries are recalled and labelled in batches and the batches stop once the cap is
    reached: the cap keeps a few hundred queries of a window that may hold hundreds of
    thousands, so recalling them all (then dropping most, :func:`take_queries`) made this
    stage grow faster than the log and hold every window candidate in memory at once.
    """
    cap = config.rank.samples.max_train_samples
    if cap is not None:
        rows = rng.permutation(rows)
    per_query = float(config.rank.serve.score_k)  # an upper bound until a batch is seen
    parts: list[pl.DataFrame] = []
    done = held = 0
    while done < rows.shape[0] and (cap is None or held < cap):
        size = config.eval.batch_size
        if cap is not None:  # about what the cap still needs, with a margin
            size = min(size, max(MIN_BATCH, int(1.25 * (cap - held) / per_query) + 1))
        batch = rows[done : done + size]
        done += batch.shape[0]
        part = _labelled(train, window, batch, cfg, config, rng)
        parts.append(labelled_queries(part) if judgeable else part)
        held += parts[-1].height
        per_query = max(held / done, 1.0)
    return pl.concat(parts)


def labelled_queries(samples: pl.DataFrame) -> pl.DataFrame:
    """The samples of the queries with at least one positive label: NDCG is defined on those
    only, so they are all a guard judges on. At 10M simulated rows the capped guard held about
    1,000 queries (200,000 samples of 200 candidates), and 264 of them had one
    (docs/scaling.md)."""
    labels = [pl.col(c) > 0 for c in samples.columns if c.startswith("label_")]
    if not labels:
        return samples.clear()
    return samples.filter(pl.any_horizontal(labels).any().over("query_id"))


def _labelled(
    train: Dataset,
    window: RecallWindow,
    rows: NDArray[np.int64],
    cfg: SampleConfig,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """The merged candidates of the window's queries at ``rows``, labelled by their users'
    window events."""
    recall, queries = window.funnel, window.queries.take(rows)
    candidates = merged_candidates(
        recall,
        queries,
        config.rank.serve.score_k,
        config.eval.batch_size,
        evidence=config.rank.features.recall_evidence,
    )
    # Candidate item_idx are in the earlier vocabulary: map them to the training one.
    item_ids = recall.item_vocab.decode(candidates["item_idx"].to_numpy())
    candidates = candidates.with_columns(
        pl.Series("item_idx", train.item_vocab.encode(pl.Series(item_ids)))
    )
    users = window.users.gather(pl.Series(rows))
    query_frame = pl.DataFrame(
        {
            "query_id": queries.query_id,
            "user_idx": train.user_vocab.encode(users),
            "timestamp": queries.timestamp.astype(np.int64),
        }
    )
    # Only these users' events: each batch would otherwise join the whole window.
    users_in = pl.col("user_idx").is_in(query_frame["user_idx"].implode())
    return candidate_samples(query_frame, candidates, window.events.filter(users_in), cfg, rng=rng)


def merged_candidates(
    recommender: Funnel, queries: Queries, k: int, batch_size: int, *, evidence: bool = False
) -> pl.DataFrame:
    """Merged candidates (recall order) of ``queries``, at most ``k`` per query: recall and
    merge only, in batches; ``evidence`` adds the recall-evidence columns."""
    parts = []
    for start in range(0, len(queries), batch_size):
        batch = queries.take(np.arange(start, min(start + batch_size, len(queries))))
        merged = recommender.candidates(batch, evidence=evidence)[1]
        parts.append(merged.filter(pl.col("merged_rank") <= k))
    return pl.concat(parts)
