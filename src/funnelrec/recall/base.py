"""The retriever protocol, the query batch every channel reads and the result it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.data.csr import take_rows
from funnelrec.data.dataset import Dataset


class RetrieverConfig(BaseModel):
    """Fields every channel has. Subclasses add ``kind: Literal[...]`` and their own knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="The channel kind (each subclass narrows it to a literal).")
    k: int = Field(200, gt=0, description="How many candidates this channel fetches per query.")
    exclude_seen: bool = Field(True, description="Never return an item in the query's history.")


@dataclass(frozen=True, slots=True)
class Queries:
    """A batch of recommendation requests with each user's past positives (CSR layout).

    Attributes:
        query_id: ``[B]`` int64.
        user_idx: ``[B]`` int32, -1 for a user the fitted model never saw.
        timestamp: ``[B]`` int64 as-of time; nothing after it may be read.
        history_ptr: ``[B + 1]`` int64 offsets into the history arrays.
        history_item: ``[H]`` int32 item_idx of past positives, oldest first per query.
        history_time: ``[H]`` int64 their timestamps.
        user_attr: ``[B, A]`` int32 user attribute codes (0 = unknown), or None when the
            recommender has no user attributes (see ``UserAttributeEncoder``).
        tags_ptr: ``[B + 1]`` int64 offsets of onboarding tags (None = no tags in the batch).
        tags_idx: ``[T]`` int32 category indices the user chose at onboarding (-1 = unknown).
    """

    query_id: NDArray[np.int64]
    user_idx: NDArray[np.int32]
    timestamp: NDArray[np.int64]
    history_ptr: NDArray[np.int64]
    history_item: NDArray[np.int32]
    history_time: NDArray[np.int64]
    user_attr: NDArray[np.int32] | None = None
    tags_ptr: NDArray[np.int64] | None = None
    tags_idx: NDArray[np.int32] | None = None

    def __len__(self) -> int:
        return int(self.query_id.shape[0])

    @property
    def history_len(self) -> NDArray[np.int64]:
        """``[B]`` number of history items per query."""
        return np.diff(self.history_ptr)

    def history_row(self) -> NDArray[np.int64]:
        """``[H]`` the query row each history entry belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.history_len)

    def take(self, rows: NDArray[np.integer]) -> Queries:
        """The sub-batch of the given rows, in that order."""
        rows64: NDArray[np.int64] = np.asarray(rows, dtype=np.int64)
        ptr, gather = take_rows(self.history_ptr, rows64)
        tags_ptr = tags_idx = None
        if self.tags_ptr is not None and self.tags_idx is not None:
            tags_ptr, tags_gather = take_rows(self.tags_ptr, rows64)
            tags_idx = self.tags_idx[tags_gather]
        return Queries(
            self.query_id[rows],
            self.user_idx[rows],
            self.timestamp[rows],
            ptr,
            self.history_item[gather],
            self.history_time[gather],
            None if self.user_attr is None else self.user_attr[rows],
            tags_ptr,
            tags_idx,
        )

    @classmethod
    def from_history(
        cls,
        query_id: NDArray[np.integer],
        user_idx: NDArray[np.integer],
        timestamp: NDArray[np.integer],
        positives: pl.DataFrame,
    ) -> Queries:
        """Attach to each query its user's positives with ``timestamp <= query timestamp``.

        Args:
            query_id, user_idx, timestamp: ``[B]`` arrays describing the requests.
            positives: interactions with ``user_idx``, ``item_idx``, ``timestamp`` (the data the
                model may know, e.g. the training split).
        """
        q = pl.DataFrame(
            {
                "row": np.arange(len(query_id), dtype=np.int64),
                "user_idx": np.asarray(user_idx, dtype=np.int32),
                "q_ts": np.asarray(timestamp, dtype=np.int64),
            }
        )
        hist = (
            q.join(
                positives.select("user_idx", "item_idx", "timestamp").filter(
                    pl.col("item_idx") >= 0
                ),
                on="user_idx",
                how="inner",
            )
            .filter(pl.col("timestamp") <= pl.col("q_ts"))
            .sort("row", "timestamp", maintain_order=True)
        )
        counts = np.bincount(hist["row"].to_numpy(), minlength=len(query_id))
        ptr = np.zeros(len(query_id) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        return cls(
            np.asarray(query_id, dtype=np.int64),
            np.asarray(user_idx, dtype=np.int32),
            np.asarray(timestamp, dtype=np.int64),
            ptr,
            hist["item_idx"].to_numpy().astype(np.int32),
            hist["timestamp"].to_numpy().astype(np.int64),
        )


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """One channel's candidates for a batch of queries.

    Attributes:
        channel: the channel name.
        item_idx: ``[B, k]`` int32, -1 = padding.
        score: ``[B, k]`` float32, -inf = padding; rows sorted by descending score.
    """

    channel: str
    item_idx: NDArray[np.int32]
    score: NDArray[np.float32]


class Retriever(Protocol):
    """A recall channel: fit on a Dataset, return top-k candidates per query.

    Everything the pipeline calls is declared here, so a channel is usable by the funnel,
    the service and the artifact store without any attribute probing:

    * ``supports_cold_users``: serves queries with no history.
    * ``supports_new_items``: ``add_items(items, item_idx)`` makes items ingested after
      training retrievable (others raise ``NotImplementedError``).
    * ``similarity_vectors()``: item vectors the re-ranker may measure similarity with, or None.
    * ``state()`` / ``from_state(config, state)``: fitted arrays, saved without pickle.
    """

    supports_cold_users: ClassVar[bool]
    supports_new_items: ClassVar[bool]

    @property
    def config(self) -> RetrieverConfig:
        """The channel's frozen config (read-only: channels narrow it to their own type)."""
        ...

    def fit(self, data: Dataset, *, rng: np.random.Generator) -> Self: ...

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult: ...

    def add_items(self, items: pl.DataFrame, item_idx: NDArray[np.int32]) -> None: ...

    def similarity_vectors(self) -> NDArray[np.float32] | None: ...

    def state(self) -> dict[str, NDArray[Any]]:
        """Fitted arrays, saved without pickle and fed back to ``from_state``."""
        ...

    @classmethod
    def from_state(cls, config: Any, state: dict[str, NDArray[Any]]) -> Self:
        """The fitted retriever ``state()`` described."""
        ...
