"""User-keyed dense statistics: the user's own activity, the user's activity in the target
item's category, and the user's earlier events on the target item itself."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from funnelrec.features.pit.stats import Column, StatInputs, side_columns, window_columns
from funnelrec.features.sequence import KeyedEvents, dense_keys


def user_columns(x: StatInputs) -> tuple[list[Column], NDArray[np.int64]]:
    """``u_pos_<w>``, ``u_pos_all``, ``u_recency`` (+ ``u_imp_all``, ``u_ctr``), and ``[N]``
    the user's all-time positives (the denominator of ``uc_share``)."""

    def events(kind: str) -> KeyedEvents:
        return KeyedEvents.build(x.l_user, x.l_t, x.flags[kind])

    return side_columns(x, x.user, events)


def user_category_columns(x: StatInputs, user_positives: NDArray[np.int64]) -> list[Column]:
    """``uc_pos_<w>``, ``uc_pos_all``, ``uc_recency`` and ``uc_share``: the user's positives
    on items of the target item's category, the time since the last one, and their share of
    the user's positives."""
    state = x.state
    s_cat = state.category_of(x.item)
    l_cat = state.category_of(x.l_item)
    # (user, category) pairs as one int64 key, ranked densely over the pairs samples ask for.
    s_rank, l_rank = dense_keys(
        (x.user << 32) | np.maximum(s_cat, 0),
        (x.l_user << 32) | np.maximum(l_cat, 0),
        (x.user >= 0) & (s_cat >= 0),
        x.flags["pos"] & (x.l_user >= 0) & (l_cat >= 0),
    )
    uc = KeyedEvents.build(l_rank, x.l_t)
    q = uc.query(s_rank, x.s_t)
    cols = window_columns(x, uc, q, recency=True)
    n_uc = uc.count_before(q)
    cols.append(np.where(user_positives > 0, n_uc / np.maximum(user_positives, 1), 0.0))
    return cols


def user_item_columns(x: StatInputs) -> list[Column]:
    """``ui_pos_all`` (+ ``ui_imp_all``): the user's earlier positives (impressions) of the
    target item."""
    s_rank, l_rank = dense_keys(
        (x.user << 32) | np.maximum(x.item, 0),
        (x.l_user << 32) | np.maximum(x.l_item, 0),
        (x.user >= 0) & (x.item >= 0),
        (x.l_user >= 0) & (x.l_item >= 0),
    )
    ui = KeyedEvents.build(l_rank, x.l_t, x.flags["pos"])
    cols = [np.log1p(ui.count_before(ui.query(s_rank, x.s_t)))]
    if x.state.has_impressions:
        ui_imp = KeyedEvents.build(l_rank, x.l_t, x.flags["imp"])
        cols.append(np.log1p(ui_imp.count_before(ui_imp.query(s_rank, x.s_t))))
    return cols
