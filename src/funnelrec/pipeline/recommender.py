"""The funnel as one object: recall channels -> merge -> (rank -> re-rank in later stages).

``Recommender.recommend`` is the single entry point used by ``funnelrec run`` (offline
evaluation), ``funnelrec recommend`` and the service, so offline numbers are the numbers of the
code that serves.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.vocab import Vocabulary
from funnelrec.errors import MissingInputError
from funnelrec.features.user_attributes import UserAttributeEncoder
from funnelrec.recall.base import ChannelResult, Queries, Retriever
from funnelrec.recall.factory import build_retriever
from funnelrec.recall.merge import merge_channels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recommendation:
    """What one ``recommend`` call produced, stage by stage.

    Attributes:
        ranked: Ranked table ``query_id, item_id, rank, score, source``.
        candidates: the merged Candidates table (all merged candidates, not only the top k).
        channels: per-channel results, rows aligned with the queries.
        timings_s: wall time per stage for this call.
    """

    ranked: pl.DataFrame
    candidates: pl.DataFrame
    channels: dict[str, ChannelResult]
    timings_s: dict[str, float]


@dataclass(frozen=True)
class UserContext:
    """What the recommender knows about users besides their history.

    Attributes:
        encoder: attribute vocabularies (fitted on the training users).
        codes: ``[n_users, A]`` attribute codes of known users (0 = unknown).
        category_vocab: category string <-> index, for onboarding tags.
    """

    encoder: UserAttributeEncoder
    codes: NDArray[np.int32]
    category_vocab: Vocabulary

    @classmethod
    def from_dataset(cls, data: Dataset) -> UserContext:
        return cls(data.user_attr_encoder, data.user_attr, data.category_vocab)


class Recommender:
    """Fitted channels + the positives that make up each user's history + vocabularies."""

    def __init__(
        self,
        config: ExperimentConfig,
        channels: dict[str, Retriever],
        user_vocab: Vocabulary,
        item_vocab: Vocabulary,
        history: pl.DataFrame,
        users: UserContext,
    ) -> None:
        self.config = config
        self.channels = channels
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab
        self.history = history.select("user_idx", "item_idx", "timestamp")
        self.users = users
        self.skipped: dict[str, str] = {}
        # Quotas of channels that are not here (skipped at fit) are dropped, not errors.
        merge = config.recall.merge
        self.merge_config = merge.model_copy(
            update={"quotas": {n: q for n, q in merge.quotas.items() if n in channels}}
        )

    @classmethod
    def fit(
        cls, config: ExperimentConfig, data: Dataset, *, rng: np.random.Generator
    ) -> tuple[Recommender, dict[str, float]]:
        """Fit every configured channel on ``data``; returns the recommender and fit times."""
        channels: dict[str, Retriever] = {}
        timings: dict[str, float] = {}
        skipped: dict[str, str] = {}
        for name, channel_config in config.recall.channels.items():
            start = time.perf_counter()
            try:
                channels[name] = build_retriever(channel_config).fit(data, rng=rng)
            except MissingInputError as e:
                logger.warning("recall channel '%s' skipped: %s", name, e)
                skipped[name] = str(e)
                continue
            timings[f"fit.{name}"] = time.perf_counter() - start
        if not channels:
            raise MissingInputError(f"no recall channel could be fitted: {skipped}")
        recommender = cls(
            config,
            channels,
            data.user_vocab,
            data.item_vocab,
            data.positives,
            UserContext.from_dataset(data),
        )
        recommender.skipped = skipped
        return recommender, timings

    def queries(
        self,
        user_ids: pl.Series,
        timestamp: NDArray[np.int64] | int,
        *,
        attributes: pl.DataFrame | None = None,
        tags: list[list[str]] | None = None,
    ) -> Queries:
        """Requests for external user ids as of ``timestamp``.

        Args:
            user_ids: ``[B]`` external ids; unknown users get an empty history.
            timestamp: as-of time, one per query or one for all.
            attributes: optional user attributes (rows aligned with ``user_ids``, columns such
                as age, gender, region) used for users the model does not know.
            tags: optional onboarding categories per query (new users' chosen interests).
        """
        user_idx = self.user_vocab.encode(user_ids)
        ts = np.broadcast_to(np.asarray(timestamp, dtype=np.int64), user_idx.shape)
        queries = Queries.from_history(
            np.arange(user_idx.shape[0], dtype=np.int64), user_idx, ts, self.history
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
        return item_idx

    def retrieve(self, queries: Queries) -> tuple[dict[str, ChannelResult], dict[str, float]]:
        """Run every channel; each result is renamed to its channel key."""
        results: dict[str, ChannelResult] = {}
        timings: dict[str, float] = {}
        for name, channel in self.channels.items():
            start = time.perf_counter()
            result = channel.retrieve(queries)
            results[name] = dataclasses.replace(result, channel=name)
            timings[f"recall.{name}"] = time.perf_counter() - start
        return results, timings

    def recommend(self, queries: Queries, k: int) -> Recommendation:
        """Top-k per query through the funnel (recall -> merge so far)."""
        results, timings = self.retrieve(queries)
        start = time.perf_counter()
        candidates = merge_channels(list(results.values()), queries.query_id, self.merge_config)
        timings["merge"] = time.perf_counter() - start
        top = candidates.filter(pl.col("merged_rank") <= k)
        ranked = top.select(
            "query_id",
            pl.Series("item_id", self.item_vocab.decode(top["item_idx"].to_numpy())),
            pl.col("merged_rank").alias("rank"),
            pl.col("recall_score").alias("score"),
            "source",
        )
        return Recommendation(ranked, candidates, results, timings)
