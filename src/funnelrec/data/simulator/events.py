"""Turn the kernel's per-slot arrays into canonical interaction rows."""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.kernel import DEPTH_CART, DEPTH_CLICK, DEPTH_ORDER, SlotArrays

EVENTS = ("impression", "click", "cart", "order")
ROW_COLUMNS = ("user_idx", "item_idx", "timestamp", "event_code", "session_idx", "position")

RowBlock = dict[str, NDArray]
"""One chunk's rows as arrays keyed by :data:`ROW_COLUMNS`."""


def slots_to_rows(
    slots: SlotArrays,
    slot_ptr: NDArray[np.int64],
    session_user: NDArray[np.int64],
    session_offset: int,
) -> RowBlock:
    """Expand one chunk's slots into impression/click/cart/order rows.

    Args:
        slots: the kernel output for ``M`` slots of ``K`` sessions.
        slot_ptr: ``[K + 1]`` slot offsets of the chunk's sessions, starting at 0.
        session_user: ``[K]`` user index of each session.
        session_offset: global index of the chunk's first session.

    Returns:
        ``[R]`` arrays: ``user_idx, item_idx`` (int32, 0-based), ``timestamp`` (int64),
        ``event_code`` (uint8, index into :data:`EVENTS`), ``session_idx`` (int64, global) and
        ``position`` (int32); impressions first, then clicks, carts and orders.
    """
    shown = np.flatnonzero(slots.item >= 0)
    session = np.searchsorted(slot_ptr, shown, side="right") - 1
    depth = slots.depth[shown]
    parts = [np.arange(shown.shape[0])]
    for level in (DEPTH_CLICK, DEPTH_CART, DEPTH_ORDER):
        parts.append(np.flatnonzero(depth >= level))
    take = np.concatenate(parts)
    slot = shown[take]
    ts = slots.ts[slot]
    lo = parts[0].shape[0]
    for level, delay in enumerate((slots.d_click, slots.d_cart, slots.d_order), start=1):
        hi = lo + parts[level].shape[0]
        ts[lo:hi] += delay[slot[lo:hi]]
        lo = hi
    sess = session[take]
    return {
        "user_idx": session_user[sess].astype(np.int32),
        "item_idx": slots.item[slot],
        "timestamp": ts,
        "event_code": np.repeat(np.arange(4, dtype=np.uint8), [len(q) for q in parts]),
        "session_idx": sess + session_offset,
        "position": slots.position[slot],
    }


def _time_order(cols: RowBlock) -> NDArray[np.int64]:
    """``[R]`` row order by (timestamp, user, event, position), a total order of the rows.

    Packs the four keys into one int64 when they fit in 63 bits (one argsort), else lexsorts.
    """
    ts = cols["timestamp"]
    if ts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    t0 = int(ts.min())
    widths = [
        int(ts.max() - t0).bit_length(),
        max(int(cols["user_idx"].max()).bit_length(), 1),
        2,
        max(int(cols["position"].max()).bit_length(), 1),
    ]
    if sum(widths) > 63:
        return np.lexsort((cols["position"], cols["event_code"], cols["user_idx"], ts))
    key = ts - t0
    for name, width in zip(("user_idx", "event_code", "position"), widths[1:], strict=True):
        key <<= width
        key |= cols[name].astype(np.int64)
    return np.argsort(key, kind="stable")


def finalize_interactions(blocks: list[RowBlock]) -> pl.DataFrame:
    """Canonical interactions from the chunks' rows (the blocks are emptied as they are read).

    Returns:
        ``user_id, item_id, timestamp`` (Int64, 1-based ids), ``event`` (String), ``value``
        (Float32, 1.0), ``session_id`` (Int64), ``position`` (Int32); sorted by timestamp,
        then user, event (impression, click, cart, order) and position.
    """
    cols: RowBlock = {}
    for name in ROW_COLUMNS:
        cols[name] = np.concatenate([b.pop(name) for b in blocks])
    order = _time_order(cols)
    n = order.shape[0]
    names = pl.Series("event", EVENTS, dtype=pl.String)
    return pl.DataFrame(
        [
            pl.Series("user_id", cols.pop("user_idx")[order].astype(np.int64) + 1),
            pl.Series("item_id", cols.pop("item_idx")[order].astype(np.int64) + 1),
            pl.Series("timestamp", cols.pop("timestamp")[order]),
            names.gather(pl.Series(cols.pop("event_code")[order].astype(np.uint32))),
            pl.Series("value", np.ones(n, dtype=np.float32)),
            pl.Series("session_id", cols.pop("session_idx")[order].astype(np.int64) + 1),
            pl.Series("position", cols.pop("position")[order].astype(np.int32)),
        ]
    )
