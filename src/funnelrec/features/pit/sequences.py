"""Behaviour-sequence features: each sample's user's last L events before the sample time."""

from __future__ import annotations

from typing import Self

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.behaviours import RaggedSequences, SequenceArrays
from funnelrec.features.pit.config import PointInTimeConfig
from funnelrec.features.pit.log import SEQ_FLAG, EventRules, LogArrays, relative_times
from funnelrec.features.pit.prepared import PreparedLog
from funnelrec.features.pit.state import FittedState
from funnelrec.features.sequence import KeyedEvents


def sequences(
    config: PointInTimeConfig,
    state: FittedState,
    samples: pl.DataFrame,
    log: pl.DataFrame | LogArrays,
    t0: int | None = None,
) -> RaggedSequences:
    """The user's last L sequence events (``seq_events``, default the positive events) on
    known items, most recent first; ties in time keep log order (a later row is more recent).

    Args:
        config: the feature settings (``seq_len`` = L, ``seq_events``).
        state: the fitted state (positive rule, item vocabulary, categories).
        samples: ``[N]`` samples (``user_idx, timestamp``).
        log: ``[E]`` events (``user_idx, item_idx, timestamp, event``), or their arrays under
            the features' event rules.
        t0: the reference time of relative times (None = the earliest time).

    Returns:
        The samples' windows over the log's sequence events, stored once
        (:class:`~funnelrec.features.behaviours.RaggedSequences`): item ids (index + 1),
        category ids (index + 1, 0 = none), ``log1p`` gaps in seconds to the sample time.
    """
    n, length = samples.height, config.seq_len
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RaggedSequences(empty, empty, empty, empty, empty, empty, length)
    if isinstance(log, pl.DataFrame):
        log = LogArrays.of(log, EventRules.of(config, state.positive_events))
    _, s_t, l_t = relative_times(samples, log, t0)
    l_item = log.item
    keep = log.flags[SEQ_FLAG] & (l_item >= 0) & (l_item < state.n_items)  # 0 stays padding only
    ev = KeyedEvents.build(log.user, l_t, keep)
    user = samples["user_idx"].to_numpy().astype(np.int64)
    q = ev.query(user, s_t)
    return RaggedSequences(
        item=l_item[ev.rows].astype(np.int64) + 1,
        category=state.category_of(l_item[ev.rows]).astype(np.int64) + 1,
        time=l_t[ev.rows].astype(np.int64),
        end=q.end,
        count=np.minimum(q.end - q.start, length),
        sample_time=s_t.astype(np.int64),
        length=length,
    )


class DeferredSequences:
    """The sequences of a request's samples over a prepared log, computed at first use.

    A served request whose model reads only sparse and dense inputs (the ONNX path) never
    asks for them, and computing them costs ~0.1 ms; models that read them get exactly
    :func:`sequences` over the samples' users' rows, as the general path computes them.
    """

    def __init__(
        self,
        config: PointInTimeConfig,
        state: FittedState,
        samples: pl.DataFrame,
        prepared: PreparedLog,
        rules: EventRules,
    ) -> None:
        self._args: tuple | None = (config, state, samples, prepared, rules)
        self._block: RaggedSequences | None = None
        self._n = samples.height
        self.length = config.seq_len

    @classmethod
    def _computed_as(cls, block: RaggedSequences) -> Self:
        """An instance around sequences already computed."""
        out = cls.__new__(cls)
        out._args, out._block, out._n, out.length = None, block, len(block), block.length
        return out

    def __len__(self) -> int:
        return self._n

    @property
    def computed(self) -> RaggedSequences:
        """The sequences themselves (computed at the first call)."""
        if self._block is None:
            assert self._args is not None
            config, state, samples, prepared, rules = self._args
            users = samples.get_column("user_idx").to_numpy().astype(np.int64)
            events = prepared.user_arrays(users, rules)
            self._block = sequences(config, state, samples, events, prepared.t0)
            self._args = None  # the samples and the log are no longer needed
        return self._block

    def take(self, rows: NDArray[np.integer]) -> Self:
        return self._computed_as(self.computed.take(rows))

    def dense(self, rows: NDArray[np.integer] | None = None) -> SequenceArrays:
        return self.computed.dense(rows)

    def shortened(self, length: int) -> Self:
        return self._computed_as(self.computed.shortened(length))
