"""Turn the kernel's per-slot arrays into canonical interaction rows."""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.kernel import DEPTH_CART, DEPTH_CLICK, DEPTH_ORDER, SlotArrays

EVENTS = ("impression", "click", "cart", "order")
_EVENT_NAMES = pl.Series("event", EVENTS, dtype=pl.String)


def slots_to_rows(
    slots: SlotArrays,
    slot_ptr: NDArray[np.int64],
    session_user: NDArray[np.int64],
    session_offset: int,
) -> pl.DataFrame:
    """Expand one chunk's slots into impression/click/cart/order rows.

    Args:
        slots: the kernel output for ``M`` slots of ``K`` sessions.
        slot_ptr: ``[K + 1]`` slot offsets of the chunk's sessions, starting at 0.
        session_user: ``[K]`` user index of each session.
        session_offset: global index of the chunk's first session.

    Returns:
        Rows with ``user_idx, item_idx`` (int32, 0-based), ``timestamp`` (int64),
        ``event_code`` (uint8, index into :data:`EVENTS`), ``session_idx`` (int64, global)
        and ``position`` (int32), in slot order with funnel events after the impressions.
    """
    shown = np.flatnonzero(slots.item >= 0)
    session = np.searchsorted(slot_ptr, shown, side="right") - 1
    depth = slots.depth[shown]
    parts = [np.arange(shown.shape[0])]
    for level in (DEPTH_CLICK, DEPTH_CART, DEPTH_ORDER):
        parts.append(np.flatnonzero(depth >= level))
    take = np.concatenate(parts)
    slot = shown[take]
    ts = slots.ts[slot].copy()
    code = np.repeat(np.arange(4, dtype=np.uint8), [len(q) for q in parts])
    offsets = (slots.d_click, slots.d_cart, slots.d_order)
    lo = parts[0].shape[0]
    for level, delay in zip((1, 2, 3), offsets, strict=True):
        hi = lo + parts[level].shape[0]
        ts[lo:hi] += delay[slot[lo:hi]]
        lo = hi
    sess = session[take]
    return pl.DataFrame(
        {
            "user_idx": session_user[sess].astype(np.int32),
            "item_idx": slots.item[slot],
            "timestamp": ts,
            "event_code": code,
            "session_idx": sess + session_offset,
            "position": slots.position[slot],
        }
    )


def finalize_interactions(rows: pl.DataFrame) -> pl.DataFrame:
    """Canonical interactions: 1-based ids, event names, value 1.0, sorted by time and user.

    Returns:
        ``user_id, item_id, timestamp`` (Int64), ``event`` (String), ``value`` (Float32),
        ``session_id`` (Int64), ``position`` (Int32).
    """
    rows = rows.sort("timestamp", "user_idx", "event_code", "position")  # a total order
    event = _EVENT_NAMES.gather(rows["event_code"].cast(pl.UInt32))
    return pl.DataFrame(
        {
            "user_id": rows["user_idx"].cast(pl.Int64) + 1,
            "item_id": rows["item_idx"].cast(pl.Int64) + 1,
            "timestamp": rows["timestamp"],
            "event": event,
            "value": pl.Series("value", np.ones(rows.height, dtype=np.float32)),
            "session_id": rows["session_idx"].cast(pl.Int64) + 1,
            "position": rows["position"].cast(pl.Int32),
        }
    )
