"""Per-request slices of the artifact's tables, so one request reads a few hundred rows instead
of scanning the whole history and rank log.

Both are exact: ``Queries.from_history`` only reads the history rows of the queried users, and
the ranker's point-in-time features read a prepared index of the log that gives the features
of the whole log (``funnelrec.features.pit.PreparedLog``). The offline replay
(:mod:`funnelrec.serve.consistency`) runs the plain full-table path and checks it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.vocab import UNKNOWN, Vocabulary
from funnelrec.features.pit import PreparedLog
from funnelrec.features.sequence import RowIndex
from funnelrec.rank.ranker import Ranker


class HistoryIndex:
    """The recommender's history (positives) by user."""

    def __init__(self, history: pl.DataFrame) -> None:
        self.history = history
        self._by_user = RowIndex(history["user_idx"].to_numpy())

    def for_user(self, user_idx: int) -> pl.DataFrame:
        """The user's rows in history order (none for an unknown user)."""
        rows = self._by_user.rows(np.array([user_idx]))
        return self.history[rows] if rows.size else self.history.clear()


class IndexedRanker:
    """The recommender's :class:`Ranker`, reading the artifact's log through a
    :class:`~funnelrec.features.pit.PreparedLog` built once at load.

    ``Recommender._rank`` calls ``ranker.score(samples, recommender.rank_log)``; in a request
    view the view's ``rank_log`` holds only the events recorded after training (the store's),
    and this wrapper scores with ``prepared.with_extra(those events)``: exactly the features of
    ``ranker.score(samples, concat([artifact_log, store_events]))`` (tested in
    ``tests/unit/features/test_pit.py``), but a request only searches the sorted item index
    and reads its user's rows instead of sorting every event of every candidate item.
    Everything else is the wrapped ranker's.
    """

    def __init__(self, ranker: Ranker, prepared: PreparedLog) -> None:
        self._ranker = ranker
        self._prepared = prepared

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ranker, name)

    def score(self, samples: pl.DataFrame, log: pl.DataFrame) -> pl.DataFrame:
        return self._ranker.score(samples, self._prepared.with_extra(log))


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
