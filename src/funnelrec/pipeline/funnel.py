"""The funnel as one object: recall channels -> merge -> rank -> re-rank.

:meth:`Funnel.run` is the single entry point used by ``funnelrec run`` (offline evaluation),
``funnelrec recommend``, the golden self-check and the service, so offline numbers are the
numbers of the code that serves. :meth:`Funnel.recommend` is the same call for external user
ids, returning a DataFrame. The public :class:`~funnelrec.pipeline.recommender.Recommender`
adds the constructors (``fit``, ``load``) and ``save`` on top.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.frames import rows_at, rows_where, select_columns
from funnelrec.data.vocab import Vocabulary, id_series
from funnelrec.errors import MissingInputError
from funnelrec.features.pit.evidence import without_evidence
from funnelrec.pipeline.context import ItemContext, RequestContext, UserContext
from funnelrec.pipeline.rank_order import query_rows, slot_order
from funnelrec.rank.base import RankerProtocol
from funnelrec.rank.prerank import PreRanker
from funnelrec.recall.base import ChannelResult, Queries, Retriever
from funnelrec.recall.evidence import add_evidence
from funnelrec.recall.merge import (
    CHANNEL_NAME_COLUMNS,
    MergeConfig,
    merge_channels,
    merge_relevance,
)
from funnelrec.rerank.base import ItemSide, ListReranker, Reranker
from funnelrec.schema import CANDIDATES, RANKED, check_schema

if TYPE_CHECKING:
    from funnelrec.features.pit import PreparedLog
    from funnelrec.pipeline.fit import FitReport

logger = logging.getLogger(__name__)

RANKED_COLUMNS = ("user_id", "item_id", "rank", "score", "source")


def _latest_timestamp(frame: pl.DataFrame) -> int:
    """The largest ``timestamp`` of ``frame`` (0 when empty)."""
    value = frame["timestamp"].max() if frame.height else None
    return 0 if value is None else int(cast(int, value))


def consumed_items(queries: Queries) -> dict[int, set[int]]:
    """Each query's history items: what the rules' consumed-item filter drops."""
    ptr, items = queries.history_ptr, queries.history_item
    return {
        int(qid): set(items[ptr[row] : ptr[row + 1]].tolist())
        for row, qid in enumerate(queries.query_id)
    }


@dataclass(frozen=True)
class Recommendation:
    """What one :meth:`Funnel.run` call produced, stage by stage.

    Attributes:
        ranked: Ranked table ``query_id, item_id, rank, score, source`` (top k per query).
        final: the ordered table the top k was cut from (sorted by ``query_id``, then
            ``rank``), with every stage column (``item_idx,
            source, source_rank, recall_score, merged_rank, [p_<task>..., score], [pre_rerank_
            rank], rank``): the re-ranked list, else the ranked one, else the merge order.
        candidates: the merged Candidates table (all merged candidates, not only the top k).
        channels: per-channel results, rows aligned with the queries.
        timings_s: wall time per stage for this call.
        scored: with a ranker, the Scores table of the ranked candidates (``query_id,
            item_idx, source, merged_rank, ..., p_<task>, score, rank``); else None. With a
            pre-ranker it has ``prerank_score`` too, and the candidates it cut follow the
            ranked ones with null ``p_<task>`` and ``score``.
        reranked: with a re-ranker, the re-ranked list (the scored columns plus
            ``pre_rerank_rank``; ``rank`` is the final position); else None.
    """

    ranked: pl.DataFrame
    final: pl.DataFrame
    candidates: pl.DataFrame
    channels: dict[str, ChannelResult]
    timings_s: dict[str, float]
    scored: pl.DataFrame | None = None
    reranked: pl.DataFrame | None = None


class Funnel:
    """Fitted channels, ranker and re-ranker + each user's history + vocabularies.

    Built by :func:`~funnelrec.pipeline.fit.fit_funnel` (what ``funnelrec run``, ``funnelrec
    train`` and ``Recommender.fit`` call) or loaded from an artifact.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        channels: dict[str, Retriever],
        user_vocab: Vocabulary,
        item_vocab: Vocabulary,
        history: pl.DataFrame,
        users: UserContext,
        items: ItemContext | None = None,
        *,
        skipped: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.channels = channels
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab
        self.history = history.select("user_idx", "item_idx", "timestamp")
        self.users = users
        self.items = items if items is not None else ItemContext(None, None)
        # method 'none' still applies the business rules.
        self.reranker: Reranker | None = ListReranker(config.rerank)
        self._item_side: ItemSide | None = None
        self.skipped: dict[str, str] = dict(skipped or {})
        self.ranker: RankerProtocol | None = None
        self.preranker: PreRanker | None = None
        self.rank_log: pl.DataFrame | None = None
        self.fit_report: FitReport | None = None
        # Quotas of channels that are not here (skipped at fit) are dropped, not errors.
        self.merge_config: MergeConfig
        self.use_merge(config.recall.merge)

    def use_merge(self, merge: MergeConfig) -> None:
        """Merge with ``merge`` from now on, and save it with the config."""
        recall = self.config.recall.model_copy(update={"merge": merge})
        self.config = self.config.model_copy(update={"recall": recall})
        self.merge_config = merge.model_copy(
            update={
                "quotas": {n: q for n, q in merge.quotas.items() if n in self.channels},
                "weights": {n: w for n, w in merge.weights.items() if n in self.channels},
            }
        )

    def use_channel(self, name: str, channel: Retriever) -> None:
        """Serve channel ``name`` with ``channel`` from now on, and save its config."""
        channels = {**self.config.recall.channels, name: channel.config}
        recall = self.config.recall.model_copy(update={"channels": channels})
        self.config = self.config.model_copy(update={"recall": recall})
        self.channels[name] = channel
        self._item_side = None

    def set_ranker(self, ranker: RankerProtocol, log: pl.DataFrame) -> None:
        """Rank merged candidates with ``ranker``; its features read ``log`` (``user_idx,
        item_idx, timestamp, event``), point in time."""
        self.ranker = ranker
        self.rank_log = log.select("user_idx", "item_idx", "timestamp", "event")

    def set_preranker(self, preranker: PreRanker | None) -> None:
        """Let ``preranker`` choose the ``keep`` candidates the ranker scores (None: the
        ranker scores every candidate it judges)."""
        self.preranker = preranker

    @property
    def as_of(self) -> int:
        """The funnel's as-of time: one second after the last event it knows (history or the
        ranker's log). Requests without a time are answered as of it."""
        latest = _latest_timestamp(self.history)
        if self.rank_log is not None:
            latest = max(latest, _latest_timestamp(self.rank_log))
        return latest + 1

    # ------------------------------------------------------------------ queries
    def queries(
        self,
        user_ids: pl.Series,
        timestamp: NDArray[np.int64] | np.integer | int,
        *,
        attributes: pl.DataFrame | None = None,
        tags: list[list[str]] | None = None,
        context: RequestContext | None = None,
    ) -> Queries:
        """Requests for external user ids as of ``timestamp``.

        Args:
            user_ids: ``[B]`` external ids; unknown users get an empty history.
            timestamp: as-of time, one per query or one for all.
            attributes: optional user attributes (rows aligned with ``user_ids``, columns such
                as age, gender, region) used for users the model does not know.
            tags: optional onboarding categories per query (new users' chosen interests).
            context: a request's own history rows (serving); default the whole history.
        """
        user_idx = self.user_vocab.encode(user_ids)
        ts = np.broadcast_to(np.asarray(timestamp, dtype=np.int64), user_idx.shape)
        history = self.history
        if context is not None and context.history is not None:
            history = context.history
        queries = Queries.from_history(
            np.arange(user_idx.shape[0], dtype=np.int64), user_idx, ts, history
        )
        codes = np.zeros((user_idx.shape[0], self.users.codes.shape[1]), dtype=np.int32)
        known = user_idx >= 0
        codes[known] = self.users.codes[user_idx[known]]
        if attributes is not None and self.users.encoder.columns:
            given = self.users.encoder.encode(attributes)
            codes[~known] = given[~known]
        tags_ptr = tags_idx = None
        if tags is not None:
            if len(tags) != user_idx.shape[0]:
                raise ValueError(f"{len(tags)} tag lists for {user_idx.shape[0]} users")
            tags_ptr = np.zeros(len(tags) + 1, dtype=np.int64)
            np.cumsum([len(t) for t in tags], out=tags_ptr[1:])
            flat = pl.Series([tag for row in tags for tag in row], dtype=pl.String)
            tags_idx = self.users.category_vocab.encode(flat)
        return dataclasses.replace(queries, user_attr=codes, tags_ptr=tags_ptr, tags_idx=tags_idx)

    def ingest_items(self, items: pl.DataFrame) -> NDArray[np.int32]:
        """Make items that appeared after training retrievable (by the channels that can).

        Known ids are skipped. Returns the new items' indices.
        """
        if "item_id" not in items.columns:
            raise ValueError("ingested items need an item_id column")
        ids = items["item_id"].cast(self.item_vocab.dtype, strict=False)
        unknown = pl.Series(self.item_vocab.encode(ids) < 0)
        new = items.filter(unknown & ids.is_not_null())
        new = new.unique("item_id", keep="first", maintain_order=True)
        if new.height == 0:
            return np.zeros(0, dtype=np.int32)
        start = len(self.item_vocab)
        self.item_vocab = Vocabulary(
            pl.concat([self.item_vocab.ids, new["item_id"].cast(self.item_vocab.dtype)])
        )
        item_idx = np.arange(start, start + new.height, dtype=np.int32)
        for channel in self.channels.values():
            if channel.supports_new_items:
                channel.add_items(new, item_idx)
        self.items = self.items.extended(new, new.height, self.users.category_vocab)
        self._item_side = None
        return item_idx

    # ------------------------------------------------------------------ the funnel
    def recommend(
        self,
        users: Sequence[Any] | pl.Series,
        k: int = 10,
        *,
        timestamp: int | None = None,
        attributes: pl.DataFrame | None = None,
        tags: list[list[str]] | None = None,
        scenario: str | None = None,
    ) -> pl.DataFrame:
        """Top-``k`` items for external user ids, through the whole funnel.

        Args:
            users: ``[B]`` external user ids; users the model never saw take the cold-start
                path (popularity, demographic groups from ``attributes``, onboarding ``tags``).
            k: items per user.
            timestamp: as-of time (unix s); default :attr:`as_of`.
            attributes: optional rows aligned with ``users`` (``age``, ``gender``, ...).
            tags: optional onboarding categories per user.
            scenario: where the requests come from, for a scenario-aware ranker
                (:class:`~funnelrec.pipeline.context.RequestContext`); None = unknown.

        Returns:
            ``user_id, item_id, rank, score, source``, ``k`` rows per user when the catalogue
            allows, best first, ids as the input tables spelled them.
        """
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        ids = id_series(users)
        when = self.as_of if timestamp is None else int(timestamp)
        queries = self.queries(ids, when, attributes=attributes, tags=tags)
        context = None if scenario is None else RequestContext(scenario=scenario)
        ranked = self.run(queries, k=k, context=context).ranked
        order = pl.DataFrame({"query_id": np.arange(ids.len(), dtype=np.int64), "user_id": ids})
        return ranked.join(order, on="query_id").sort("query_id", "rank").select(RANKED_COLUMNS)

    def run(
        self, queries: Queries, k: int, *, context: RequestContext | None = None
    ) -> Recommendation:
        """Top-k per query through the funnel: recall -> merge -> rank (when a ranker is
        set; it scores the first ``max(rank.serve.score_k, k)`` merged candidates) ->
        re-rank (MMR or DPP over the ``rerank.pool`` best, then the business rules; the final
        list has ``min(k, what the rules let through)`` items).

        Args:
            queries: the requests (:meth:`queries`).
            k: items per query.
            context: per-request serving state (:class:`RequestContext`); None = offline.
        """
        context = context or RequestContext()
        results, candidates, timings = self.candidates(queries, context=context)
        scored = None
        if self.ranker is None or not context.use_ranker:
            merged = candidates["merged_rank"]
            relevance = merge_relevance(merged.to_numpy(), self.merge_config.rrf_k)
            ordered = candidates.hstack(
                [pl.Series("score", relevance, dtype=pl.Float32), merged.alias("rank")]
            )
        else:
            start = time.perf_counter()
            ordered = scored = self._rank(queries, candidates, k, context, timings)
            timings["rank"] = time.perf_counter() - start
        reranked = None
        if self.reranker is not None:
            start = time.perf_counter()
            side = self.item_side()  # first: it may switch the re-ranker to rules only
            ordered = reranked = self.reranker.rerank(
                ordered,
                k,
                side,
                consumed=consumed_items(queries),
                now=queries.timestamp,
            )
            timings["rerank"] = time.perf_counter() - start
        top = rows_where(ordered, ordered["rank"].to_numpy() <= k)
        ranked = pl.DataFrame(
            [
                top["query_id"],
                pl.Series("item_id", self.item_vocab.decode(top["item_idx"].to_numpy())),
                top["rank"],
                top["score"],
                top["source"],
            ]
        )
        check_schema(ranked, RANKED, source="Funnel.run")
        return Recommendation(ranked, ordered, candidates, results, timings, scored, reranked)

    def retrieve(
        self, queries: Queries, *, context: RequestContext | None = None
    ) -> tuple[dict[str, ChannelResult], dict[str, float]]:
        """Run every channel (through ``context.channels`` when given); each result is renamed
        to its channel key."""
        policy = None if context is None else context.channels
        results: dict[str, ChannelResult] = {}
        timings: dict[str, float] = {}
        for name, channel in self.channels.items():
            start = time.perf_counter()
            if policy is None:
                result = channel.retrieve(queries)
            else:
                result = policy.retrieve(name, channel, queries)
            # Renamed only when needed: dataclasses.replace costs ~5 us a call.
            results[name] = (
                result if result.channel == name else dataclasses.replace(result, channel=name)
            )
            timings[f"recall.{name}"] = time.perf_counter() - start
        return results, timings

    def candidates(
        self,
        queries: Queries,
        *,
        context: RequestContext | None = None,
        evidence: bool | None = None,
    ) -> tuple[dict[str, ChannelResult], pl.DataFrame, dict[str, float]]:
        """The recall half of the funnel: every channel's result, the merged Candidates table
        and the stage timings (what ranking samples are built from, without ranking).

        ``evidence`` adds the recall-evidence columns the ranker reads
        (:mod:`funnelrec.recall.evidence`); default: when a ranker is set and
        ``rank.features.recall_evidence`` is on."""
        results, timings = self.retrieve(queries, context=context)
        start = time.perf_counter()
        candidates = merge_channels(list(results.values()), queries.query_id, self.merge_config)
        check_schema(candidates, CANDIDATES, source="merge")  # the recall -> rank boundary
        timings["merge"] = time.perf_counter() - start
        if evidence is None:
            evidence = self.ranker is not None and self.config.rank.features.recall_evidence
        if evidence:
            start = time.perf_counter()
            candidates = add_evidence(candidates, results, queries, self.channels)
            timings["evidence"] = time.perf_counter() - start
        return results, candidates, timings

    def item_side(self) -> ItemSide:
        """What the re-ranker knows about items: vectors for similarity (``rerank.similarity``:
        the two-tower item tower, else content embeddings), categories, creation times."""
        if self._item_side is None:
            side = ItemSide(self._similarity_vectors(), self.items.category, self.items.created_at)
            if side.embeddings is None and side.category is None and self.reranker is not None:
                self._rules_only()
            self._item_side = side
        return self._item_side

    def _rules_only(self) -> None:
        """Nothing to measure diversity with (no item vectors, no categories): MMR/DPP cannot
        run, so the re-ranker applies the business rules alone, and says so."""
        config = self.config.rerank
        if config.method == "rules":
            return
        reason = f"rerank.method '{config.method}' needs item vectors or categories; rules only"
        logger.warning(reason)
        self.skipped["rerank.diversity"] = reason
        self.reranker = ListReranker(config.model_copy(update={"method": "rules"}))

    def _similarity_vectors(self) -> NDArray[np.float32] | None:
        source = self.config.rerank.similarity
        if source == "category":
            return None
        order = ("two_tower", "content") if source == "auto" else (source,)
        for kind in order:
            for channel in self.channels.values():
                if channel.config.kind == kind:
                    vectors = channel.similarity_vectors()
                    if vectors is not None:
                        return vectors
        if source != "auto":
            raise MissingInputError(
                f"rerank.similarity = '{source}' but no '{source}' recall channel was fitted"
            )
        return None

    def _rank(
        self,
        queries: Queries,
        candidates: pl.DataFrame,
        k: int,
        context: RequestContext,
        timings: dict[str, float],
    ) -> pl.DataFrame:
        """Score the candidates the ranker can judge and order them by score; the others keep
        their recall position.

        The ranker's features are behavioural, so for a user with no history it would only
        re-sort by item statistics and throw away what the cold-start channels know (tags,
        demographics), and it has never seen items published after training. Measured on
        the simulator demo, ranking those cut cold-user Recall@10 from 0.059 to 0.029 and
        cold-item Recall@50 from 0.129 to 0: they keep the merge order, and the scored items
        fill the remaining slots in score order.

        With a pre-ranker, the ranker scores only the ``rank.prerank.keep`` judged candidates
        it picks; the rest take the slots after them in the pre-ranker's order (kept, not
        dropped: a caller asking for more than ``keep`` items, the re-ranker's pool and the
        evaluation's Recall@100/200 still see them, and they cost no ranker time).
        """
        assert self.ranker is not None and self.rank_log is not None
        log: pl.DataFrame | PreparedLog = self.rank_log
        if context.rank_log is not None:
            log = context.rank_log
        # Score rank.serve.score_k candidates, or more when the caller asks for more.
        depth = max(self.ranker.config.serve.score_k, k)
        pool = rows_where(candidates, candidates["merged_rank"].to_numpy() <= depth)
        # The request columns and the judged mask in NumPy: on a served request's few hundred
        # rows each polars join/filter/sort costs ~0.1-0.3 ms, more than the work itself.
        row = query_rows(queries.query_id, pool["query_id"].to_numpy())
        warm = queries.history_len[row] > 0
        judged = warm & (pool["item_idx"].to_numpy() < self.ranker.known_items)
        request_columns = [
            pl.Series("user_idx", queries.user_idx[row].astype(np.int32)),
            pl.Series("timestamp", queries.timestamp[row].astype(np.int64)),
        ]
        if context.scenario is not None:  # what a scenario-aware ranker reads
            request_columns.append(pl.Series("scenario", [context.scenario] * pool.height))
        pool = pool.hstack(request_columns)
        # What the pre-ranker and the ranker read: without the channel names, whose string
        # and list-of-string columns cost more to gather than the ~35 float columns together.
        scoring = select_columns(pool, [c for c in pool.columns if c not in CHANNEL_NAME_COLUMNS])
        judged_at = np.flatnonzero(judged)
        kept_at, pre_score = judged_at, None
        if self.preranker is not None:
            start = time.perf_counter()
            kept, _, score = self.preranker.select(scoring, judged_at)
            kept_at = judged_at[kept]
            pre_score = np.full(pool.height, np.nan, dtype=np.float32)
            pre_score[judged_at] = score
            timings["rank.prerank"] = time.perf_counter() - start
        scored = self.ranker.score(rows_at(scoring, kept_at), log)
        return slot_order(without_evidence(pool), judged, kept_at, scored, pre_score)
