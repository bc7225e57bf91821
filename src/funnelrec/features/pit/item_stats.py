"""Item-keyed dense statistics: the target item's activity across all users, and its age."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from funnelrec.features.pit.prepared import MergedEvents
from funnelrec.features.pit.stats import Column, StatInputs, side_columns
from funnelrec.features.sequence import KeyedEvents


def item_columns(x: StatInputs) -> list[Column]:
    """``i_pos_<w>``, ``i_pos_all``, ``i_recency``, ``i_first_age``, ``i_trend`` (+
    ``i_imp_all``, ``i_ctr``)."""

    def events(kind: str) -> KeyedEvents | MergedEvents:
        prepared = x.prepared
        if prepared is None:
            return KeyedEvents.build(x.l_item, x.l_t, x.flags[kind])
        # The item index covers the whole prepared log; only the extra events, which come
        # last in ``x``'s log, need indexing per request.
        if prepared.extra is None:
            return prepared.item_events[kind]
        start = x.l_item.shape[0] - prepared.extra.height
        extra = KeyedEvents.build(x.l_item[start:], x.l_t[start:], x.flags[kind][start:])
        return MergedEvents(prepared.item_events[kind], extra)

    cols, _ = side_columns(x, x.item, events, lifetime=True)
    return cols


def item_age_column(x: StatInputs, created_at: NDArray[np.int64]) -> Column:
    """``i_age``: ``log1p`` seconds since the item's creation (0 when unknown or later).

    Args:
        x: the inputs.
        created_at: ``[n_items]`` fitted creation times (unix s, <= 0 = unknown).
    """
    created = np.zeros(x.item.shape[0], dtype=np.int64)
    known = (x.item >= 0) & (x.item < x.state.n_items)
    created[known] = created_at[x.item[known]]
    age = np.where(created > 0, np.maximum(x.s_abs - created, 0), 0)
    return np.log1p(age.astype(np.float64))
