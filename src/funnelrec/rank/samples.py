"""Ranking samples and their multi-task labels (the Samples table).

A *sample* is one (query, item) exposure at the query's time ``timestamp``; its label for a
task is 1 when the same user performs one of the task's events on the same item within the
task's window after the exposure. Two sources of exposures:

* :func:`impression_samples`: every item of every logged impression slate (MIND, KuaiRand,
  the simulator). Non-clicked exposures are the negatives: the log says the user saw them.
* :func:`candidate_samples`: the recall stage's candidates for given queries (logs without
  impressions: Taobao, MovieLens); candidates the user did not act on within the window are
  the negatives.

Both return the **Samples** table::

    query_id (Int64), user_idx (Int32), item_idx (Int32), timestamp (Int64),
    label_<task> (Float32) ... one per task, in config order, then passthrough columns
    (impressions: session_id, position, scenario when present; candidates: source,
    source_rank, recall_score, ... everything the candidates table carries), then
    neg_weight (Float64) when negatives were subsampled (``max_negatives_per_query``),
    weight_<task> (Float32) per weighted duration task (``watch_time``: the loss weight of
    YouTube's weighted logistic regression, rank/duration.py)

Negative subsampling. ``max_negatives_per_query = k`` keeps every sample with a positive label
and at most ``k`` all-zero ones per query, at random. A model fitted on the kept rows
overestimates every probability, so the table says how to undo it: ``neg_weight`` is
``1 / keep-rate`` of the sample's query on kept negatives (``n_q / min(n_q, k)`` for ``n_q``
negatives) and 1 on positives. Weighting a loss or a metric by it restores the full
population; :func:`negative_keep_rate` is the overall rate that
:func:`funnelrec.rank.calibration.correct_downsampling` takes. The column derives from the
labels, so it must never become a feature (the featurizer reads only its listed columns).

Attribution. With ``attribution="last"`` (default) an event is credited to the *latest*
exposure of the same (user, item) at or before it, so an item shown unclicked at 10:00 and
shown again and clicked at 10:05 gives one negative and one positive, not two positives.
``"all"`` credits every exposure whose window contains the event.

Every label is computed by one vectorised function, :func:`~funnelrec.rank.labels.label_exposures`
(sort + ``searchsorted`` on a combined ``pair << 32 | time`` key; no loop over rows); the tasks
and the labeller live in :mod:`funnelrec.rank.labels`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from funnelrec.arrays import grouped_lexsort, positions_of
from funnelrec.data.dataset import Dataset
from funnelrec.data.frames import rows_at
from funnelrec.data.vocab import Vocabulary
from funnelrec.rank.duration import weight_column
from funnelrec.rank.labels import (
    DEFAULT_TASKS,
    IMPRESSION,
    TASK_CATALOGUE,
    TaskLabel,
    label_and_weigh_exposures,
    label_exposures,
    require_columns,
    task_parents,
    tasks_for_events,
)

# The task and labelling names are defined in funnelrec.rank.labels and re-exported here,
# since callers build samples and their tasks together.
__all__ = [
    "DEFAULT_TASKS",
    "KEY_COLUMNS",
    "NEG_WEIGHT",
    "TASK_CATALOGUE",
    "SampleConfig",
    "TaskLabel",
    "candidate_samples",
    "extended_vocabulary",
    "impression_samples",
    "index_log",
    "label_exposures",
    "negative_keep_rate",
    "negative_weights",
    "resolve_source",
    "task_parents",
    "tasks_for_events",
]

logger = logging.getLogger(__name__)

_PASSTHROUGH_IMPRESSION = ("session_id", "position", "scenario")
KEY_COLUMNS = ("query_id", "user_idx", "item_idx", "timestamp")
NEG_WEIGHT = "neg_weight"


class SampleConfig(BaseModel):
    """How ranking samples and their labels are built.

    Example:
        >>> cfg = SampleConfig(max_negatives_per_query=4)
        >>> list(cfg.tasks), cfg.tasks["click"].window_s
        (['click', 'cart', 'order'], 3600.0)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["samples"] = "samples"
    source: Literal["auto", "impressions", "recall"] = Field(
        "auto",
        description="Exposures: logged impression slates or recall candidates; auto = "
        "impressions when the log has impression events, else recall.",
    )
    tasks: dict[str, TaskLabel] = Field(
        default_factory=lambda: dict(DEFAULT_TASKS),
        description="Ordered tasks; the first is the exposure-level one (ESMM's CTR).",
    )
    attribution: Literal["last", "all"] = Field(
        "last",
        description="last: an event credits only the latest exposure of its (user, item) at "
        "or before it; all: every exposure whose window contains it.",
    )
    max_negatives_per_query: int | None = Field(
        None,
        ge=0,
        description="Keep at most this many all-zero-label samples per query; the table then "
        "has neg_weight = 1 / keep-rate (1 on positives).",
    )
    seed: int = 0

    @field_validator("tasks")
    @classmethod
    def _valid_tasks(cls, tasks: dict[str, TaskLabel]) -> dict[str, TaskLabel]:
        if not tasks:
            raise ValueError("at least one task is needed")
        for name in tasks:
            if not name.isidentifier():
                raise ValueError(f"task name {name!r} must be an identifier (it names a column)")
        task_parents(tasks)  # a cycle of `after` links fails here, not after featurising
        return tasks

    @property
    def label_columns(self) -> tuple[str, ...]:
        return tuple(f"label_{t}" for t in self.tasks)


def resolve_source(interactions: pl.DataFrame, config: SampleConfig) -> str:
    """``"impressions"`` or ``"recall"``: ``config.source`` with ``"auto"`` resolved on the log.

    Example:
        >>> log = pl.DataFrame({"event": ["click"]})
        >>> resolve_source(log, SampleConfig())
        'recall'
    """
    if config.source != "auto":
        return config.source
    require_columns(interactions, ("event",), "interactions")
    return "impressions" if (interactions["event"] == IMPRESSION).any() else "recall"


def index_log(interactions: pl.DataFrame, data: Dataset) -> pl.DataFrame:
    """Add ``user_idx``/``item_idx`` to a later log with ``data``'s vocabularies.

    Ids the training data knows keep their index; ids new since then get fresh indices from
    ``n_users``/``n_items`` on (one per id, in sorted order), so labels still match them and
    :class:`~funnelrec.features.pit.PointInTimeFeatures` treats them as unknown (sparse id 0)
    while still counting their events. Rows are returned in input order.

    Args:
        interactions: canonical interactions (``user_id``, ``item_id``, ...), e.g. the full log
            of a temporal split (train + test period).
        data: the training Dataset.

    Returns:
        ``interactions`` with ``user_idx`` and ``item_idx`` (Int32) replaced or added.

    Example:
        >>> train = Dataset.build(pl.DataFrame({"user_id": [1], "item_id": [5],
        ...     "timestamp": [0], "event": ["click"], "value": [1.0]}))
        >>> later = pl.DataFrame({"user_id": [1, 2], "item_id": [7, 5]})
        >>> index_log(later, train).select("user_idx", "item_idx").rows()
        [(0, 1), (1, 0)]
    """
    require_columns(interactions, ("user_id", "item_id"), "interactions")
    users = extended_vocabulary(data.user_vocab, interactions["user_id"])
    items = extended_vocabulary(data.item_vocab, interactions["item_id"])
    return interactions.with_columns(
        pl.Series("user_idx", users.encode(interactions["user_id"])),
        pl.Series("item_idx", items.encode(interactions["item_id"])),
    )


def extended_vocabulary(vocab: Vocabulary, ids: pl.Series) -> Vocabulary:
    """``vocab`` followed by the ids of ``ids`` it lacks, in sorted order: the indices
    :func:`index_log` gives new ids.

    Example:
        >>> known = Vocabulary(pl.Series("id", [5, 1]))
        >>> extended_vocabulary(known, pl.Series([9, 1, 7, None])).ids.to_list()
        [5, 1, 7, 9]
    """
    new = ids.cast(vocab.dtype, strict=False).drop_nulls().unique().sort()
    new = new.filter(~new.is_in(vocab.ids.implode()))
    return Vocabulary(pl.concat([vocab.ids, new.rename("id")]))


def _subsample_negatives(
    samples: pl.DataFrame, config: SampleConfig, rng: np.random.Generator
) -> pl.DataFrame:
    """Keep at most ``max_negatives_per_query`` all-zero samples per query (rows stay ordered).

    Returns:
        The kept rows plus ``neg_weight`` (Float64): ``n_q / min(n_q, k)`` on the kept
        negatives of a query with ``n_q`` negatives, 1 on positives; ``samples`` unchanged
        (no column) without ``max_negatives_per_query``.
    """
    k = config.max_negatives_per_query
    if k is None:
        return samples
    labels = [pl.col(c) for c in config.label_columns]
    negative = pl.sum_horizontal(labels) == 0
    keyed = samples.with_columns(pl.Series("_r", rng.random(samples.height)), negative.alias("_n"))
    keyed = keyed.with_columns(
        pl.when("_n").then(pl.col("_r").rank("ordinal").over("query_id", "_n")).alias("_k"),
        pl.when("_n").then(pl.len().over("query_id", "_n")).alias("_m"),
    )
    kept = keyed.filter(~pl.col("_n") | (pl.col("_k") <= k))
    # Only kept negatives reach the division, and they exist only when k >= 1.
    weight = pl.when("_n").then(pl.col("_m") / pl.min_horizontal("_m", pl.lit(k))).otherwise(1.0)
    kept = kept.with_columns(weight.cast(pl.Float64).alias(NEG_WEIGHT)).drop("_r", "_n", "_k", "_m")
    logger.info(
        "kept %d of %d samples (negatives <= %d per query, negative keep rate %.4g; "
        "'%s' holds 1 / keep-rate)",
        kept.height,
        samples.height,
        k,
        negative_keep_rate(kept, config.label_columns),
        NEG_WEIGHT,
    )
    return kept


def negative_weights(samples: pl.DataFrame) -> NDArray[np.float64]:
    """``[N]`` per-sample weights that undo negative subsampling (all 1 when none was done).

    Example:
        >>> negative_weights(pl.DataFrame({"neg_weight": [1.0, 4.0]})).tolist()
        [1.0, 4.0]
        >>> negative_weights(pl.DataFrame({"label_click": [1.0, 0.0]})).tolist()
        [1.0, 1.0]
    """
    if NEG_WEIGHT not in samples.columns:
        return np.ones(samples.height, dtype=np.float64)
    return samples[NEG_WEIGHT].to_numpy().astype(np.float64, copy=False)


def negative_keep_rate(samples: pl.DataFrame, label_columns: Sequence[str] | None = None) -> float:
    """Share of the all-zero-label samples that subsampling kept, over every query.

    ``kept negatives / sum of their neg_weight``: the negatives before subsampling, so it stays
    right on any subset of whole queries (a validation split, ``take_queries``).

    Args:
        samples: a Samples table.
        label_columns: the ``label_*`` columns that define a negative (default: all of them).

    Returns:
        The rate in ``(0, 1]``; 1.0 without ``neg_weight`` or without any negative.

    Example:
        >>> s = pl.DataFrame({"label_click": [1.0, 0.0, 0.0], "neg_weight": [1.0, 4.0, 4.0]})
        >>> negative_keep_rate(s)  # 2 negatives kept of 8
        0.25
    """
    if NEG_WEIGHT not in samples.columns:
        return 1.0
    if label_columns is None:
        label_columns = [c for c in samples.columns if c.startswith("label_")]
    negative = samples.select((pl.sum_horizontal(label_columns) == 0).alias("n"))["n"]
    weights = negative_weights(samples)[negative.to_numpy()]
    total = float(weights.sum())
    return float(weights.shape[0] / total) if total > 0 else 1.0


def _rate(labels: pl.Series) -> float:
    """Mean of a 0/1 label column, 0 when empty (polars types ``mean()`` as any literal)."""
    mean = labels.mean()
    return float(mean) if isinstance(mean, int | float) else 0.0


def _finish(
    samples: pl.DataFrame,
    targets: tuple[dict[str, NDArray[np.float32]], dict[str, NDArray[np.float32]]],
    passthrough: list[str],
    config: SampleConfig,
    rng: np.random.Generator,
) -> pl.DataFrame:
    labels, weights = targets
    table = samples.select(
        pl.col("query_id").cast(pl.Int64),
        pl.col("user_idx").cast(pl.Int32),
        pl.col("item_idx").cast(pl.Int32),
        pl.col("timestamp").cast(pl.Int64),
        *[pl.Series(f"label_{t}", v, dtype=pl.Float32) for t, v in labels.items()],
        *passthrough,
        *[pl.Series(weight_column(t), v, dtype=pl.Float32) for t, v in weights.items()],
    )
    table = _subsample_negatives(table, config, rng)
    rates = {t: round(_rate(table[f"label_{t}"]), 5) for t in labels}
    n_queries = table["query_id"].n_unique()
    logger.info("%d samples in %d queries, label rates %s", table.height, n_queries, rates)
    return table


def impression_samples(
    interactions: pl.DataFrame,
    config: SampleConfig,
    *,
    rng: np.random.Generator | None = None,
) -> pl.DataFrame:
    """Samples from logged impression slates, labelled by the later events in the same log.

    A slate (query) is the impressions sharing ``user_idx`` and ``timestamp`` (and
    ``session_id`` when the log has one: MIND's impression id; the simulator's sessions hold
    several slates at different times, each its own query). Every impressed item is a sample;
    an item shown twice in one slate counts once. ``query_id`` numbers the slates
    ``0..Q-1`` in (timestamp, user_idx, session_id) order.

    Args:
        interactions: ``[R]`` log with ``user_idx``, ``item_idx``, ``timestamp``, ``event``
            (impressions plus the click/cart/order/... events that label them; MIND's clicks
            share their impression's timestamp); optional ``session_id``, ``position``,
            ``scenario`` are passed through.
        config: tasks, attribution, negative subsampling.
        rng: randomness for subsampling; default ``np.random.default_rng(config.seed)``.

    Returns:
        The Samples table ``[N]`` (see the module docstring), sorted by query_id then position.

    Raises:
        ValueError: a required column is missing or the log has no impression.

    Example:
        >>> log = pl.DataFrame({"user_idx": [0, 0, 0], "item_idx": [1, 2, 2],
        ...     "timestamp": [100, 100, 130], "event": ["impression", "impression", "click"]})
        >>> s = impression_samples(log, SampleConfig(tasks={"click": TaskLabel(events=("click",))}))
        >>> s.select("query_id", "item_idx", "label_click").rows()
        [(0, 1, 0.0), (0, 2, 1.0)]
    """
    require_columns(interactions, ("user_idx", "item_idx", "timestamp", "event"), "interactions")
    rng = np.random.default_rng(config.seed) if rng is None else rng
    imp = interactions.filter(pl.col("event") == IMPRESSION)
    if imp.height == 0:
        raise ValueError(
            "interactions: no 'impression' event; build samples from recall candidates "
            "with candidate_samples (source='recall')"
        )
    passthrough = [c for c in _PASSTHROUGH_IMPRESSION if c in imp.columns]
    slate = ["timestamp", "user_idx"] + (["session_id"] if "session_id" in imp.columns else [])
    within = ["position"] if "position" in imp.columns else []
    imp = (
        imp.with_row_index("_row")
        .sort([*slate, *within, "_row"])
        .unique([*slate, "item_idx"], keep="first", maintain_order=True)
        .with_columns(pl.struct(slate).rle_id().cast(pl.Int64).alias("query_id"))
    )
    targets = label_and_weigh_exposures(imp, interactions, config.tasks, config.attribution)
    return _finish(imp, targets, passthrough, config, rng)


def _query_rows(queries: pl.DataFrame, candidates: pl.DataFrame) -> NDArray[np.intp]:
    """``[C]`` the row of ``queries`` (distinct ``query_id``) of each candidate's query.

    A binary search among the queries' sorted ids, which fit in cache: polars' hash join of
    20M candidate rows cost 4.1x the time of 6M (a one-off timing).

    Raises:
        ValueError: a candidate names a query that is not in ``queries``.
    """
    wanted = candidates["query_id"].to_numpy()
    at, found = positions_of(queries["query_id"].to_numpy(), wanted)
    if not found.all():
        raise ValueError(f"candidates: query_id {wanted[~found][0]} is not in queries")
    return at


def _first_of_each_pair(samples: pl.DataFrame) -> pl.DataFrame:
    """``samples`` in (``query_id``, ``_row``) order, each (query, item) pair's first row only.

    Sorted within blocks of whole queries (:func:`~funnelrec.arrays.grouped_lexsort`): polars'
    order-keeping ``unique`` hashed every row of an evaluation's 20M candidates, and its cost
    per row grew with their number (3.9x the CPU time for 3.3x the rows, a one-off timing).
    """
    query = samples["query_id"].to_numpy()
    item = samples["item_idx"].to_numpy()
    row = samples["_row"].to_numpy()
    order = grouped_lexsort((row, item), query)  # by query, item, then row
    q, i = query[order], item[order]
    first = np.empty(samples.height, dtype=np.bool_)
    first[order[:1]] = True
    first[order[1:]] = (q[1:] != q[:-1]) | (i[1:] != i[:-1])
    kept = np.flatnonzero(first)
    return rows_at(samples, kept[grouped_lexsort((row[kept],), query[kept])])


def candidate_samples(
    queries: pl.DataFrame,
    candidates: pl.DataFrame,
    future: pl.DataFrame,
    config: SampleConfig,
    *,
    rng: np.random.Generator | None = None,
) -> pl.DataFrame:
    """Samples from recall candidates, labelled by the users' events after the query time.

    Args:
        queries: ``[Q]`` with ``query_id`` (unique), ``user_idx``, ``timestamp`` (as-of time).
        candidates: ``[C]`` with ``query_id``, ``item_idx`` and any further columns (the
            Candidates table: source, source_rank, recall_score, ...), all passed through.
        future: interactions with ``user_idx``, ``item_idx``, ``timestamp``, ``event``; only
            events at or after each query's time (within a task's window) count.
        config: tasks, attribution, negative subsampling.
        rng: randomness for subsampling; default ``np.random.default_rng(config.seed)``.

    Returns:
        The Samples table ``[N]``: one row per distinct (query, candidate item), in candidate
        order within each query, queries in ``query_id`` order.

    Raises:
        ValueError: a required column is missing, ``query_id`` repeats in ``queries``, or a
            candidate names a query that is not in ``queries``.

    Example:
        >>> q = pl.DataFrame({"query_id": [7], "user_idx": [0], "timestamp": [100]})
        >>> c = pl.DataFrame({"query_id": [7, 7], "item_idx": [3, 4], "source_rank": [1, 2]})
        >>> f = pl.DataFrame({"user_idx": [0, 0], "item_idx": [4, 4], "timestamp": [400, 500],
        ...     "event": ["click", "order"]})
        >>> candidate_samples(q, c, f, SampleConfig())["label_order"].to_list()
        [0.0, 1.0]
    """
    require_columns(queries, ("query_id", "user_idx", "timestamp"), "queries")
    require_columns(candidates, ("query_id", "item_idx"), "candidates")
    require_columns(future, ("user_idx", "item_idx", "timestamp", "event"), "future")
    rng = np.random.default_rng(config.seed) if rng is None else rng
    if queries["query_id"].n_unique() != queries.height:
        raise ValueError("queries: column 'query_id' has repeated values")
    q = queries.select(
        pl.col("query_id").cast(pl.Int64), "user_idx", pl.col("timestamp").cast(pl.Int64)
    )
    cand = candidates.drop([c for c in ("user_idx", "timestamp") if c in candidates.columns])
    cand = cand.with_columns(pl.col("query_id").cast(pl.Int64)).with_row_index("_row")
    samples = cand.hstack(rows_at(q.drop("query_id"), _query_rows(q, cand)).get_columns())
    orphan = samples["user_idx"].is_null()
    if orphan.any():
        qid = samples.filter(orphan)["query_id"][0]
        raise ValueError(f"candidates: query_id {qid} is not in queries")
    samples = _first_of_each_pair(samples)
    passthrough = [c for c in cand.columns if c not in (*KEY_COLUMNS, "_row")]
    targets = label_and_weigh_exposures(samples, future, config.tasks, config.attribution)
    return _finish(samples, targets, passthrough, config, rng)
