"""Per-request slices of the artifact's history, so one request reads a few hundred rows
instead of scanning the whole history.

Exact: ``Queries.from_history`` only reads the history rows of the queried users. The offline
replay (:mod:`funnelrec.serve.consistency`) runs the plain full-table path and checks it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.features.sequence import RowIndex


class HistoryIndex:
    """The recommender's history (positives) by user."""

    def __init__(self, history: pl.DataFrame) -> None:
        self.history = history
        self._by_user = RowIndex(history["user_idx"].to_numpy())

    def for_user(self, user_idx: int) -> pl.DataFrame:
        """The user's rows in history order (none for an unknown user)."""
        rows = self._by_user.rows(np.array([user_idx]))
        return self.history[rows] if rows.size else self.history.clear()
