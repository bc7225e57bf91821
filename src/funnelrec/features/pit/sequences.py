"""Behaviour-sequence features: each sample's user's last L events before the sample time."""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit.config import PointInTimeConfig
from funnelrec.features.pit.log import SEQ_FLAG, EventRules, LogArrays, relative_times
from funnelrec.features.pit.state import FittedState
from funnelrec.features.sequence import KeyedEvents

_SEQ_CHUNK = 1 << 18
"""Samples per lookup batch: bounds the flat ``[chunk * L]`` temporaries."""


def sequences(
    config: PointInTimeConfig,
    state: FittedState,
    samples: pl.DataFrame,
    log: pl.DataFrame | LogArrays,
    t0: int | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
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
        ``[N, L]`` item ids (index + 1), ``[N, L]`` category ids (index + 1, 0 = none) and
        ``[N, L]`` float32 ``log1p`` gaps in seconds to the sample time; 0 = padding.
    """
    n, length = samples.height, config.seq_len
    seq_item = np.zeros((n, length), dtype=np.int64)
    seq_cat = np.zeros((n, length), dtype=np.int64)
    seq_gap = np.zeros((n, length), dtype=np.float32)
    if n == 0:
        return seq_item, seq_cat, seq_gap
    if isinstance(log, pl.DataFrame):
        log = LogArrays.of(log, EventRules.of(config, state.positive_events))
    _, s_t, l_t = relative_times(samples, log, t0)
    l_user, l_item = log.user, log.item
    keep = log.flags[SEQ_FLAG] & (l_item >= 0) & (l_item < state.n_items)  # 0 stays padding only
    ev = KeyedEvents.build(l_user, l_t, keep)
    # Pre-gather in (user, time) order: each sample's last events are then contiguous.
    item_sorted = l_item[ev.rows] + 1
    cat_sorted = state.category_of(l_item[ev.rows]) + 1
    t_sorted = l_t[ev.rows]
    user = samples["user_idx"].to_numpy().astype(np.int64)
    flat_item, flat_cat, flat_gap = seq_item.ravel(), seq_cat.ravel(), seq_gap.ravel()
    for lo in range(0, n, _SEQ_CHUNK):
        hi = min(lo + _SEQ_CHUNK, n)
        sample, slot, pos = ev.last_positions(ev.query(user[lo:hi], s_t[lo:hi]), length)
        at = (sample + lo) * length + slot
        flat_item[at] = item_sorted[pos]
        flat_cat[at] = cat_sorted[pos]
        flat_gap[at] = np.log1p((s_t[lo:hi][sample] - t_sorted[pos]).astype(np.float64))
    return seq_item, seq_cat, seq_gap
