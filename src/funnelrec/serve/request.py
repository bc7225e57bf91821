"""One recommendation request through ``Recommender.run``: the code the service runs and the
offline replay (:mod:`funnelrec.serve.consistency`) re-runs.

A request reads what a :class:`~funnelrec.pipeline.RequestContext` gives it: the artifact's
rows of its user plus the events the store recorded after training, the ranker's log index with
those events added, and a channel policy (time budgets; failures drop the channel instead of
the request). The funnel itself (recall -> merge -> rank -> re-rank) is the same method offline
evaluation calls, on the same fitted objects.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

import numpy as np
import polars as pl

from funnelrec.data.events import is_positive
from funnelrec.data.frames import select_columns
from funnelrec.pipeline.context import RequestContext
from funnelrec.pipeline.funnel import Funnel
from funnelrec.recall.base import ChannelResult, Queries, Retriever
from funnelrec.schema import column_types
from funnelrec.serve.errors import RequestError
from funnelrec.serve.settings import Budgets
from funnelrec.serve.store import Event

logger = logging.getLogger(__name__)

FALLBACK_SOURCE = "fallback_popular"
STAGE_COLUMNS = (
    "source",
    "source_rank",
    "recall_score",
    "merged_rank",
    "pre_rerank_rank",
    "score",
    "rank",
)
HISTORY_SCHEMA = {"user_idx": pl.Int32, "item_idx": pl.Int32, "timestamp": pl.Int64}
LOG_SCHEMA = {**HISTORY_SCHEMA, "event": pl.String}
# Built once: an empty frame from a schema costs ~50 us a request (polars frames are not
# changed in place here, so one instance can be shared).
_EMPTY_HISTORY = pl.DataFrame(schema=HISTORY_SCHEMA)
_EMPTY_LOG = pl.DataFrame(schema=LOG_SCHEMA)


@dataclass(frozen=True)
class RequestSpec:
    """Everything a request's result depends on besides the artifact (what the feature log
    records and the replay reads back).

    Attributes:
        user_id: external user id (as a string).
        k: items wanted.
        timestamp: as-of time (unix s); nothing later is read.
        attributes: user attributes for users the model does not know (age, gender, ...).
        tags: onboarding categories.
        events: the store's events of this user used by the request (after the artifact).
        dropped: recall channels left out (failed or over budget) in the served request.
        ranker_failed: the ranker raised and the merge order was served.
        scenario: where the request comes from (home feed, detail page, ...), for a
            scenario-aware ranker; None = unknown.
    """

    user_id: str
    k: int
    timestamp: int
    attributes: Mapping[str, Any] | None = None
    tags: Sequence[str] | None = None
    events: Sequence[Event] = ()
    dropped: Sequence[str] = ()
    ranker_failed: bool = False
    scenario: str | None = None


@dataclass(frozen=True)
class Served:
    """A request's result.

    Attributes:
        top: the returned rows, best first: ``item_idx``, the stage columns present
            (``source, source_rank, recall_score, merged_rank, [pre_rerank_rank], p_<task>...,
            score, rank``).
        pool: the ranked pool (every candidate the ranker saw, best first) with the same
            columns; equals ``top`` without a ranker beyond the merge.
        timings_s: per-stage wall time.
        known_user: the user is in the artifact's vocabulary.
        history_len: positives the request's history held.
        fallback: nothing was retrieved and popular items were served.
    """

    top: pl.DataFrame
    pool: pl.DataFrame
    timings_s: dict[str, float]
    known_user: bool
    history_len: int
    fallback: bool = False


def event_frames(
    recommender: Funnel,
    user_idx: int,
    events: Sequence[Event],
    item_index: Mapping[str, int],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The store's events as extra history rows (positives) and extra rank-log rows (all).
    Items the artifact does not know are left out."""
    kept = [e for e in events if e.item_id in item_index]
    if not kept:  # most requests: nothing posted since training, nothing to build
        return _EMPTY_HISTORY, _EMPTY_LOG
    items = np.array([item_index[e.item_id] for e in kept], dtype=np.int32)
    times = np.array([e.timestamp for e in kept], dtype=np.int64)
    users = np.full(len(kept), user_idx, dtype=np.int32)
    names = [e.event for e in kept]
    log = pl.DataFrame(
        {"user_idx": users, "item_idx": items, "timestamp": times, "event": names},
        schema=LOG_SCHEMA,
    )
    positive = is_positive(names, recommender.config.data.positive_events)
    history = log.filter(pl.Series(positive, dtype=pl.Boolean)).drop("event")
    return history, log


def empty_channel_result(name: str, n_queries: int) -> ChannelResult:
    """A channel result with no candidates (one padding column)."""
    return ChannelResult(
        name,
        np.full((n_queries, 1), -1, dtype=np.int32),
        np.full((n_queries, 1), -np.inf, dtype=np.float32),
    )


@dataclass
class ChannelOutcomes:
    """What the guarded channels of one request did: ``{channel: 'error' | 'timeout'}``."""

    dropped: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetedChannels:
    """A :class:`~funnelrec.pipeline.context.ChannelPolicy` whose failing or overrunning
    channel is dropped from the request instead of failing it.

    The budget is checked when the call returns (Python cannot pre-empt a running call): a
    channel over budget has its result discarded, so a slow channel never changes the answer
    non-deterministically half-way, and the request goes on with the others.
    """

    budgets: Budgets
    outcomes: ChannelOutcomes

    def retrieve(self, name: str, channel: Retriever, queries: Queries) -> ChannelResult:
        budget_s = self.budgets.channel_s(name)
        start = time.perf_counter()
        try:
            result = channel.retrieve(queries)
        except Exception as e:  # a failing channel must not fail the request
            logger.warning("recall channel '%s' failed, dropped: %r", name, e)
            self.outcomes.dropped[name] = "error"
            self.outcomes.errors[name] = repr(e)
            return empty_channel_result(name, len(queries))
        elapsed = time.perf_counter() - start
        if budget_s is not None and elapsed > budget_s:
            logger.warning(
                "recall channel '%s' took %.1f ms (budget %.1f ms), dropped",
                name,
                elapsed * 1e3,
                budget_s * 1e3,
            )
            self.outcomes.dropped[name] = "timeout"
            return empty_channel_result(name, len(queries))
        return result


@dataclass(frozen=True)
class LeftOutChannels:
    """A channel policy that leaves out the named channels (what a replay does for the
    channels the served request dropped)."""

    names: frozenset[str]

    def retrieve(self, name: str, channel: Retriever, queries: Queries) -> ChannelResult:
        if name in self.names:
            return empty_channel_result(name, len(queries))
        return channel.retrieve(queries)


def attributes_frame(attributes: Mapping[str, Any] | None) -> pl.DataFrame | None:
    """One-row frame of user attributes (numeric age stays numeric for its buckets)."""
    if not attributes:
        return None
    columns: dict[str, pl.Series] = {}
    for name, value in attributes.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            columns[name] = pl.Series(name, [None if value is None else str(value)], pl.String)
        else:
            columns[name] = pl.Series(name, [int(value)], pl.Int64)
    return pl.DataFrame(columns)


def stage_columns(frame: pl.DataFrame) -> list[str]:
    """The per-stage columns of a ranked table, in a fixed order (p_<task> before score)."""
    probs = [c for c in frame.columns if c.startswith("p_")]
    cols = [c for c in STAGE_COLUMNS[:5] if c in frame.columns]
    return ["item_idx", *cols, *probs, *[c for c in STAGE_COLUMNS[5:] if c in frame.columns]]


def fallback_items(
    popularity: np.ndarray, seen: np.ndarray, k: int, n_queries: int = 1
) -> pl.DataFrame:
    """The ``k`` most popular items the user has not seen, as a ranked table."""
    ranked = popularity[~np.isin(popularity, seen)][:k].astype(np.int32)
    n = ranked.shape[0]
    return pl.DataFrame(
        {
            "item_idx": ranked,
            "source": [FALLBACK_SOURCE] * n,
            "source_rank": np.arange(1, n + 1, dtype=np.int32),
            "recall_score": pl.Series([None] * n, dtype=pl.Float32),
            "merged_rank": np.arange(1, n + 1, dtype=np.int32),
            "score": pl.Series([None] * n, dtype=pl.Float32),
            "rank": np.arange(1, n + 1, dtype=np.int32),
        }
    )


def run_request(
    recommender: Funnel, spec: RequestSpec, popularity: np.ndarray, context: RequestContext
) -> tuple[Served, Queries]:
    """Build the request's queries and run ``recommender.run`` in ``context``; when nothing at
    all is retrieved, serve the most popular unseen items (``popularity``: item_idx, most
    popular first)."""
    if spec.scenario is not None:
        context = dataclasses.replace(context, scenario=spec.scenario)
    user_ids = pl.Series("user_id", [spec.user_id], dtype=pl.String)
    queries = recommender.queries(
        user_ids,
        np.int64(spec.timestamp),
        attributes=attributes_frame(spec.attributes),
        tags=[list(spec.tags)] if spec.tags else None,
        context=context,
    )
    result = recommender.run(queries, k=spec.k, context=context)
    # One query, so ``final`` is sorted by rank.
    return _served(result.final, queries, 0, spec.k, popularity, result.timings_s), queries


def batchable(spec: RequestSpec, known: bool) -> bool:
    """Whether a request can share a :func:`run_batch` with others: a known user without
    attributes or onboarding tags (those build per-request frames whose columns may differ;
    an unknown user's store events would be attached to the shared unknown index -1)."""
    return known and not spec.attributes and not spec.tags


def batch_groups(
    specs: Mapping[int, RequestSpec], known: Mapping[int, bool], max_batch: int
) -> list[list[int]]:
    """The keys of ``specs`` in batches :func:`run_batch` can answer, in arrival order: the
    :func:`batchable` requests by ``(k, scenario)``, one per user, at most ``max_batch``
    each; every other request alone.

    Example:
        >>> s = {n: RequestSpec(u, 10, 0) for n, u in enumerate(["a", "b", "a", "c"])}
        >>> batch_groups(s, {n: True for n in s}, 2)
        [[0, 1], [2, 3]]
    """
    groups: list[list[int]] = []
    open_groups: dict[tuple[int, str | None], list[tuple[list[int], set[str]]]] = {}
    for n, spec in specs.items():
        if not batchable(spec, known[n]):
            groups.append([n])
            continue
        candidates = open_groups.setdefault((spec.k, spec.scenario), [])
        for members, users in candidates:
            if len(members) < max_batch and spec.user_id not in users:
                members.append(n)
                users.add(spec.user_id)
                break
        else:
            group = [n]
            candidates.append((group, {spec.user_id}))
            groups.append(group)
    return groups


def run_batch(
    recommender: Funnel,
    specs: Sequence[RequestSpec],
    popularity: np.ndarray,
    context: RequestContext,
) -> list[Served]:
    """Several requests through one ``recommender.run``, one :class:`Served` each, as
    :func:`run_request` answers them one at a time: the funnel treats each query on its own
    (what ``served_lists_equal.py`` checks between offline batches and served requests), so
    only float rounding can differ (the ranker's matrix products see more rows).

    The requests must be :func:`batchable`, of distinct users, with the same ``k`` and
    scenario; ``context.history`` holds every user's rows.
    """
    first = specs[0]
    if len({s.user_id for s in specs}) < len(specs):
        raise ValueError("a batch holds one request per user (their rows are shared)")
    if any(s.k != first.k or s.scenario != first.scenario for s in specs):
        raise ValueError("a batch's requests share k and scenario")
    if first.scenario is not None:
        context = dataclasses.replace(context, scenario=first.scenario)
    user_ids = pl.Series("user_id", [s.user_id for s in specs], dtype=pl.String)
    times = np.array([s.timestamp for s in specs], dtype=np.int64)
    queries = recommender.queries(user_ids, times, context=context)
    result = recommender.run(queries, k=first.k, context=context)
    final = result.final  # sorted by query_id, then rank
    bounds = np.searchsorted(
        final["query_id"].to_numpy(), np.arange(len(specs) + 1, dtype=np.int64)
    )
    return [
        _served(
            final.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i])),
            queries,
            i,
            first.k,
            popularity,
            result.timings_s,
        )
        for i in range(len(specs))
    ]


def _served(
    ordered: pl.DataFrame,
    queries: Queries,
    row: int,
    k: int,
    popularity: np.ndarray,
    timings_s: Mapping[str, float],
) -> Served:
    """Query ``row``'s answer from its rows of ``Recommendation.final`` (by rank): the top
    ``k`` and the ranked pool, or the most popular unseen items when nothing was retrieved."""
    known = bool(queries.user_idx[row] >= 0)
    history_len = int(queries.history_len[row])
    if ordered.height == 0:
        ptr = queries.history_ptr
        seen = queries.history_item[int(ptr[row]) : int(ptr[row + 1])]
        top = fallback_items(popularity, seen, k)
        return Served(top, top, dict(timings_s), known, history_len, True)
    pool = select_columns(ordered, stage_columns(ordered))
    top = pool.head(int(np.searchsorted(pool["rank"].to_numpy(), k, side="right")))
    return Served(top, pool, dict(timings_s), known, history_len)


def k_limit(recommender: Funnel, service_max: int) -> tuple[int, str]:
    """The largest ``k`` a request may ask for and why: the service's maximum, or the
    re-ranker's pool when smaller (the re-ranker keeps at most ``rerank.pool`` items, so a
    larger ``k`` could only be cut silently)."""
    reranker = recommender.reranker
    if reranker is not None and reranker.config.pool < service_max:
        pool = reranker.config.pool
        return pool, f" (this artifact's re-ranker returns at most rerank.pool = {pool} items)"
    return service_max, ""


def check_request(
    recommender: Funnel,
    attribute_names: Sequence[str],
    k: int,
    attributes: Mapping[str, Any] | None,
    service_max: int,
) -> None:
    """Refuse what the funnel cannot answer as asked: ``k`` outside 1 .. :func:`k_limit`, or
    attribute names the artifact does not know (422 each, with the field).

    Raises:
        RequestError: the reason, for the response body.
    """
    max_k, why = k_limit(recommender, service_max)
    if not 1 <= k <= max_k:
        raise RequestError(422, f"k must be in 1..{max_k}{why}, got {k}", field="k")
    unknown = sorted(set(attributes or {}) - set(attribute_names))
    if unknown:
        known = ", ".join(attribute_names) or "none"
        raise RequestError(
            422,
            f"unknown user attribute(s) {unknown} (this artifact knows: {known})",
            field="attributes",
        )


def popularity_order(recommender: Funnel) -> np.ndarray:
    """Item indices by descending count of positives in the artifact's history."""
    items = recommender.history["item_idx"].to_numpy()
    counts = np.bincount(items[items >= 0], minlength=len(recommender.item_vocab))
    return np.argsort(-counts, kind="stable")


def response_columns(frame: pl.DataFrame, item_ids: list[Any]) -> dict[str, list]:
    """``frame``'s columns as lists for a JSON body: ``item_id`` (the external id of
    ``item_idx``) first, then the others; a float that is null, NaN or infinite is None.

    Example:
        >>> frame = pl.DataFrame({"item_idx": [1, 0], "score": [0.5, float("nan")]})
        >>> response_columns(frame, ["a", "b"])
        {'item_id': ['b', 'a'], 'score': [0.5, None]}
    """
    data = frame.to_dict(as_series=False)  # one call for every column
    out: dict[str, list] = {"item_id": [item_ids[i] for i in data.pop("item_idx")]}
    schema = column_types(frame)
    for name, values in data.items():
        if schema[name].is_float():
            # isfinite inline, not a helper per value: ~0.5 us a value on a 50-row pool.
            values = [v if v is not None and isfinite(v) else None for v in values]
        out[name] = values
    return out


def response_items(cols: Mapping[str, list]) -> list[dict[str, Any]]:
    """One dict per returned item (the response's ``items``) from :func:`response_columns`;
    a stage column the request did not produce reads None."""
    n = len(cols["item_id"])
    absent = [None] * n
    tasks = [c for c in cols if c.startswith("p_")]
    names = [t.removeprefix("p_") for t in tasks]
    per_item = zip(*(cols[t] for t in tasks), strict=True)
    probabilities = [dict(zip(names, p, strict=True)) for p in per_item]
    rows = zip(
        cols["item_id"],
        cols["rank"],
        cols["score"],
        cols["source"],
        cols["merged_rank"],
        cols.get("source_rank", absent),
        cols.get("recall_score", absent),
        cols.get("pre_rerank_rank", absent),
        probabilities if tasks else [{} for _ in range(n)],
        strict=True,
    )
    return [
        {
            "item_id": item_id,
            "rank": rank,
            "score": score,
            "source": source,
            "merged_rank": merged_rank,
            "source_rank": source_rank,
            "recall_score": recall_score,
            "pre_rerank_rank": pre_rerank_rank,
            "probabilities": probs,
        }
        for (
            item_id,
            rank,
            score,
            source,
            merged_rank,
            source_rank,
            recall_score,
            pre_rerank_rank,
            probs,
        ) in rows
    ]
