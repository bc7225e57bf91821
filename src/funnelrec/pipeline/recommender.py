"""The funnel as one object: recall channels -> merge -> (rank -> re-rank in later stages).

``Recommender.recommend`` is the single entry point used by ``funnelrec run`` (offline
evaluation), ``funnelrec recommend`` and the service, so offline numbers are the numbers of the
code that serves.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.vocab import Vocabulary
from funnelrec.recall.base import ChannelResult, Queries, Retriever
from funnelrec.recall.factory import build_retriever
from funnelrec.recall.merge import merge_channels


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


class Recommender:
    """Fitted channels + the positives that make up each user's history + vocabularies."""

    def __init__(
        self,
        config: ExperimentConfig,
        channels: dict[str, Retriever],
        user_vocab: Vocabulary,
        item_vocab: Vocabulary,
        history: pl.DataFrame,
    ) -> None:
        self.config = config
        self.channels = channels
        self.user_vocab = user_vocab
        self.item_vocab = item_vocab
        self.history = history.select("user_idx", "item_idx", "timestamp")

    @classmethod
    def fit(
        cls, config: ExperimentConfig, data: Dataset, *, rng: np.random.Generator
    ) -> tuple[Recommender, dict[str, float]]:
        """Fit every configured channel on ``data``; returns the recommender and fit times."""
        channels: dict[str, Retriever] = {}
        timings: dict[str, float] = {}
        for name, channel_config in config.recall.channels.items():
            start = time.perf_counter()
            channels[name] = build_retriever(channel_config).fit(data, rng=rng)
            timings[f"fit.{name}"] = time.perf_counter() - start
        return cls(config, channels, data.user_vocab, data.item_vocab, data.positives), timings

    def queries(self, user_ids: pl.Series, timestamp: np.ndarray | int) -> Queries:
        """Requests for external user ids as of ``timestamp`` (unknown users: empty history)."""
        user_idx = self.user_vocab.encode(user_ids)
        ts = np.broadcast_to(np.asarray(timestamp, dtype=np.int64), user_idx.shape)
        return Queries.from_history(
            np.arange(user_idx.shape[0], dtype=np.int64), user_idx, ts, self.history
        )

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
        candidates = merge_channels(
            list(results.values()), queries.query_id, self.config.recall.merge
        )
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
