"""The retriever protocol, the query batch every channel reads and the result it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.data.csr import gather_ranges, take_rows
from funnelrec.data.dataset import Dataset
from funnelrec.data.vocab import Vocabulary, id_series


class RetrieverConfig(BaseModel):
    """Fields every channel has. Subclasses add ``kind: Literal[...]`` and their own knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="The channel kind (each subclass narrows it to a literal).")
    k: int = Field(200, gt=0, description="How many candidates this channel fetches per query.")
    exclude_seen: bool = Field(True, description="Never return an item in the query's history.")

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel class this config builds (each channel's config names its class)."""
        raise NotImplementedError(f"{type(self).__name__} names no retriever class")


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
        users = np.asarray(user_idx, dtype=np.int64)
        times = np.asarray(timestamp, dtype=np.int64)
        log_item = positives["item_idx"].to_numpy()
        known = log_item >= 0
        log_user = positives["user_idx"].to_numpy()[known].astype(np.int64)
        log_time = positives["timestamp"].to_numpy()[known].astype(np.int64)
        if users.shape[0] == 1:  # a served request: its user's rows up to its time, by time
            picked = np.flatnonzero((log_user == users[0]) & (log_time <= times[0]))
            picked = picked[np.argsort(log_time[picked], kind="stable")]
            ptr = np.array([0, picked.shape[0]], dtype=np.int64)
        else:
            ptr, picked = _history_rows(users, times, log_user, log_time)
        return cls(
            np.asarray(query_id, dtype=np.int64),
            users.astype(np.int32),
            times,
            ptr,
            log_item[known][picked].astype(np.int32),
            log_time[picked],
        )


def _history_rows(
    users: NDArray[np.int64],
    times: NDArray[np.int64],
    log_user: NDArray[np.int64],
    log_time: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(ptr [B + 1], rows)``: each query's log rows of its user up to its time, by time
    then log order.

    NumPy, not a join: on the small batches of evaluation and the guards a polars join +
    sort costs ~1 ms of fixed overhead. Each (user, time) pair becomes one
    sortable int64 key (times replaced by their dense rank, so no overflow); a query's
    history is then the key range [user's first, (user, query time)]."""
    ranks = np.unique(np.concatenate([log_time, times]), return_inverse=True)[1]
    span = np.int64(ranks.max(initial=0)) + 1
    log_key = log_user * span + ranks[: log_time.shape[0]]
    order = np.argsort(log_key, kind="stable")
    sorted_key = log_key[order]
    lo = np.searchsorted(sorted_key, users * span, side="left")
    hi = np.searchsorted(sorted_key, users * span + ranks[log_time.shape[0] :], side="right")
    ptr, gather = gather_ranges(lo, np.maximum(hi - lo, 0))
    return ptr, order[gather]


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


@runtime_checkable
class WarmStartable(Protocol):
    """A channel whose next fit can begin from an earlier fit of the same kind on a subset of
    its data (``fit_funnel`` fits recall before the ranking window first, then on all of the
    training data): ``start_from(earlier)`` says whether it will."""

    def start_from(self, earlier: Retriever) -> bool: ...


@dataclass(frozen=True)
class _FittedOn:
    """What a channel fitted on a Dataset keeps for :meth:`RetrieverBase.recommend`
    (references to the Dataset's own tables, no copies)."""

    user_vocab: Vocabulary
    item_vocab: Vocabulary
    positives: pl.DataFrame
    as_of: int


class RetrieverBase:
    """The template every channel extends (RecTools / scikit-learn style): ``fit`` returns
    self and keeps what standalone ``recommend`` needs; channels implement ``_fit`` and
    ``retrieve``, and override the defaults below when they can do more.

    Example:
        >>> import polars as pl
        >>> import funnelrec as fr
        >>> ds = fr.Dataset.from_frame(pl.DataFrame(
        ...     {"user_id": [1, 1, 2, 3], "item_id": [7, 8, 7, 9], "timestamp": [1, 2, 3, 4]}))
        >>> fr.Popular().fit(ds).recommend([2], k=2)["item_id"].to_list()
        [9, 8]
    """

    supports_cold_users: ClassVar[bool] = False
    supports_new_items: ClassVar[bool] = False
    config: RetrieverConfig
    _fitted_on: _FittedOn | None = None

    def __init__(self, config: Any = None) -> None:  # each channel takes its own config type
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: Any, state: dict[str, NDArray[Any]]) -> Self:
        """The fitted channel ``state()`` described."""
        raise NotImplementedError

    def state(self) -> dict[str, NDArray[Any]]:
        """Fitted arrays, saved without pickle and fed back to :meth:`from_state`."""
        raise NotImplementedError

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        raise NotImplementedError

    def fit(self, data: Dataset, *, rng: np.random.Generator | None = None) -> Self:
        """Fit on ``data`` (randomness from ``rng``, default seeded with 0); returns self."""
        self._fit(data, rng=rng if rng is not None else np.random.default_rng(0))
        self._fitted_on = _FittedOn(data.user_vocab, data.item_vocab, data.positives, data.as_of)
        return self

    def add_items(self, items: pl.DataFrame, item_idx: NDArray[np.int32]) -> None:
        """Make items ingested after fitting retrievable (channels with
        ``supports_new_items`` override this)."""
        raise NotImplementedError(f"{type(self).__name__} cannot add items after fitting")

    def similarity_vectors(self) -> NDArray[np.float32] | None:
        """Item vectors the re-ranker may measure similarity with (None: this channel has
        none)."""
        return None

    def recommend(
        self, users: Sequence[Any] | pl.Series, k: int = 10, *, timestamp: int | None = None
    ) -> pl.DataFrame:
        """This channel alone, for external user ids: ``user_id, item_id, rank, score,
        source`` (best first; fewer than ``k`` rows when the channel has fewer items).

        Args:
            users: ``[B]`` external ids; unknown ones get what the channel does for users
                without history (possibly nothing).
            k: items per user.
            timestamp: as-of time (unix s); default one second after the fitted data.

        Raises:
            RuntimeError: the channel was restored from state, not fitted on a Dataset (use
                ``Recommender.load`` for saved funnels).
        """
        if self._fitted_on is None:
            raise RuntimeError(
                f"{type(self).__name__}.recommend needs a channel fitted with fit(dataset)"
            )
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        data = self._fitted_on
        ids = id_series(users)
        user_idx = data.user_vocab.encode(ids)
        when = data.as_of if timestamp is None else int(timestamp)
        queries = Queries.from_history(
            np.arange(ids.len(), dtype=np.int64),
            user_idx,
            np.full(ids.len(), when, dtype=np.int64),
            data.positives,
        )
        result = self.retrieve(queries, k)
        rows, cols = np.nonzero(result.item_idx >= 0)
        return pl.DataFrame(
            {
                "user_id": ids.gather(rows),
                "item_id": data.item_vocab.decode(result.item_idx[rows, cols]),
                "rank": (cols + 1).astype(np.int32),
                "score": result.score[rows, cols],
                "source": [result.channel] * rows.shape[0],
            }
        )
