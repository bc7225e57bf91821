"""Per-request slices of the artifact's tables, so one request reads a few hundred rows instead
of scanning the whole history and rank log.

Both are exact: ``Queries.from_history`` only reads the history rows of the queried users, and
the ranker's point-in-time features only read the log rows of the samples' users and items
(``funnelrec.features.pit._relevant_events``). Handing them exactly those rows, in the original
order, gives bit-identical queries and features; the offline replay
(:mod:`funnelrec.serve.consistency`) runs the plain full-table path and checks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.vocab import UNKNOWN, Vocabulary
from funnelrec.rank.ranker import Ranker


class RowIndex:
    """Row numbers of a table grouped by a non-negative integer key (CSR), original order kept
    within a key.

    Example:
        >>> idx = RowIndex(np.array([2, 0, 2, -1, 0]))
        >>> idx.rows(np.array([0, 2])).tolist(), idx.rows(np.array([7])).tolist()
        ([1, 4, 0, 2], [])
    """

    def __init__(self, keys: NDArray[np.integer]) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        valid = keys >= 0
        size = int(keys.max(initial=-1)) + 1
        self.order = np.flatnonzero(valid)[np.argsort(keys[valid], kind="stable")]
        counts = np.bincount(keys[valid], minlength=size)
        self.ptr = np.zeros(size + 1, dtype=np.int64)
        np.cumsum(counts, out=self.ptr[1:])

    def rows(self, wanted: NDArray[np.integer]) -> NDArray[np.int64]:
        """Rows of the ``wanted`` keys (unknown and negative keys give none), key by key."""
        wanted = np.asarray(wanted, dtype=np.int64)
        wanted = wanted[(wanted >= 0) & (wanted < self.ptr.shape[0] - 1)]
        starts = self.ptr[wanted]
        lens = self.ptr[wanted + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        offsets = np.zeros(wanted.shape[0], dtype=np.int64)
        np.cumsum(lens[:-1], out=offsets[1:])
        gather = np.repeat(starts - offsets, lens) + np.arange(total)
        return self.order[gather]


class HistoryIndex:
    """The recommender's history (positives) by user."""

    def __init__(self, history: pl.DataFrame) -> None:
        self.history = history
        self._by_user = RowIndex(history["user_idx"].to_numpy())

    def for_user(self, user_idx: int) -> pl.DataFrame:
        """The user's rows in history order (none for an unknown user)."""
        rows = self._by_user.rows(np.array([user_idx]))
        return self.history[rows] if rows.size else self.history.clear()


class LogIndex:
    """The ranker's log by user and by item.

    The per-request copy gathers tens of thousands of rows for popular candidates, so the
    ``event`` column is held as Categorical (a gather of strings costs ~3x more); the values,
    and so every feature, are the same.
    """

    def __init__(self, log: pl.DataFrame) -> None:
        self.log = log.with_columns(pl.col("event").cast(pl.Categorical))
        self._by_user = RowIndex(log["user_idx"].to_numpy())
        self._by_item = RowIndex(log["item_idx"].to_numpy())

    def relevant(self, users: NDArray[np.integer], items: NDArray[np.integer]) -> pl.DataFrame:
        """The log rows of any of ``users`` or ``items``, in log order."""
        rows = np.concatenate(
            [self._by_user.rows(np.unique(users)), self._by_item.rows(np.unique(items))]
        )
        if rows.size == 0:
            return self.log.clear()
        mark = np.zeros(self.log.height, dtype=bool)
        mark[rows] = True
        return self.log[np.flatnonzero(mark)]


class IndexedRanker:
    """The recommender's :class:`Ranker`, handed only the log rows its features read.

    ``Recommender._rank`` calls ``ranker.score(samples, recommender.rank_log)``; in a request
    view the view's ``rank_log`` holds only the events recorded after training (the store's),
    and this wrapper prepends the artifact log's rows of the samples' users and items, exactly
    what ``ranker.score(samples, concat([artifact_log, store_events]))`` reads. Everything else
    is the wrapped ranker's.
    """

    def __init__(self, ranker: Ranker, index: LogIndex) -> None:
        self._ranker = ranker
        self._index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ranker, name)

    def score(self, samples: pl.DataFrame, log: pl.DataFrame) -> pl.DataFrame:
        base = self._index.relevant(samples["user_idx"].to_numpy(), samples["item_idx"].to_numpy())
        if log.height == 0:
            return self._ranker.score(samples, base)
        extra = log.select(base.columns).with_columns(pl.col("event").cast(pl.Categorical))
        return self._ranker.score(samples, pl.concat([base, extra]))


class DictVocabulary:
    """A :class:`Vocabulary` whose ``encode`` looks ids up in a dict built once.

    ``Vocabulary.encode`` builds a hash table of every id per call (1.7 ms for one user
    against 20k on the demo); a request encodes one id. Same normalisation (cast through
    String to the vocabulary's dtype), same exact matching, same -1 for unknown and null.
    """

    def __init__(self, vocab: Vocabulary) -> None:
        self._vocab = vocab
        self._index = {v: i for i, v in enumerate(vocab.ids.to_list())}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vocab, name)

    def __len__(self) -> int:
        return len(self._vocab)

    def encode(self, ids: pl.Series) -> NDArray[np.int32]:
        if ids.dtype != self._vocab.dtype:
            ids = ids.cast(pl.String).cast(self._vocab.dtype, strict=False)
        index = self._index
        return np.array([index.get(v, UNKNOWN) for v in ids.to_list()], dtype=np.int32)
