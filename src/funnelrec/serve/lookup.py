"""Per-request slices of the artifact's history, so one request reads a few hundred rows
instead of scanning the whole history.

Exact: ``Queries.from_history`` only reads the history rows of the queried users. The offline
replay (:mod:`funnelrec.serve.consistency`) runs the plain full-table path and checks it.
"""

from __future__ import annotations

import polars as pl

from funnelrec.features.sequence import RowIndex


class HistoryIndex:
    """The recommender's history (positives) by user."""

    def __init__(self, history: pl.DataFrame) -> None:
        by_user = RowIndex(history["user_idx"].to_numpy())
        # Sorted by user once, so a user's rows are a slice: a gather per request would hand
        # the frame to polars' thread pool, a wake-up that costs ~1 ms on a loaded box.
        self._sorted = history[by_user.order]
        self._ptr = by_user.ptr

    def for_user(self, user_idx: int) -> pl.DataFrame:
        """The user's rows in history order (none for an unknown user)."""
        if not 0 <= user_idx < self._ptr.shape[0] - 1:
            return self._sorted.clear()
        start = int(self._ptr[user_idx])
        return self._sorted.slice(start, int(self._ptr[user_idx + 1]) - start)
