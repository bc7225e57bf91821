"""The ranking seam: what the funnel, the service and the evaluation call on a ranker.

:class:`~funnelrec.rank.ranker.Ranker` (features + neural or GBDT model + fusion) is the
implementation; anything with these members can take its place in a funnel, and
:func:`funnelrec.testing.check_ranker` is its contract.
"""

from __future__ import annotations

from typing import Any, Protocol

import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit import PreparedLog
from funnelrec.rank.config import RankConfig
from funnelrec.rank.fusion import FusionConfig


class RankerProtocol(Protocol):
    """Scores merged candidates with per-task probabilities and one fused score."""

    tasks: tuple[str, ...]
    fusion_config: FusionConfig  # how p_<task> become one score (the guards may reset it)

    @property
    def config(self) -> RankConfig:
        """The ranking stage's configuration (``serve.score_k``: candidates scored)."""
        ...

    @property
    def known_items(self) -> int:
        """Items the ranker was fitted with (indices below this); later items keep their
        recall position."""
        ...

    def score(self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog) -> pl.DataFrame:
        """``samples`` (``query_id, user_idx, item_idx, timestamp``) + ``p_<task>`` + ``score``;
        features read ``log`` point in time."""
        ...

    def predict(
        self, samples: pl.DataFrame, log: pl.DataFrame | PreparedLog
    ) -> dict[str, NDArray[Any]]:
        """``{task: probability [N]}``."""
        ...

    def prepare(self, log: pl.DataFrame) -> PreparedLog:
        """``log`` indexed once for many small requests (the same features, faster)."""
        ...

    def state(self) -> dict[str, NDArray[Any]]:
        """Arrays only, restored by the implementation's ``from_state``."""
        ...
