"""The event log as point-in-time features read it: required columns, the rows a request can
read, per-event flags (positive, impression, CTR event) and times relative to a reference."""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.events import positive_expr
from funnelrec.features.pit.config import IMPRESSION
from funnelrec.features.sequence import TIME_MASK

FLAG_KINDS = ("pos", "imp", "ctr")
"""Event flags of :func:`event_flags`: positive, impression, the CTR event."""


def require_columns(df: pl.DataFrame, columns: tuple[str, ...], table: str) -> None:
    """Raise ``ValueError`` naming the first of ``columns`` missing from ``df``."""
    for col in columns:
        if col not in df.columns:
            raise ValueError(
                f"{table}: missing column '{col}' (found {', '.join(df.columns) or 'none'})"
            )


def event_flags(
    log: pl.DataFrame, positive_events: tuple[str, ...] | None, ctr_event: str
) -> dict[str, NDArray[np.bool_]]:
    """Per-event flags of ``log`` ``[E]``, keyed by :data:`FLAG_KINDS`.

    Args:
        log: ``[E]`` events with an ``event`` column.
        positive_events: the positive rule (:func:`funnelrec.data.events.positive_expr`).
        ctr_event: the event whose rate over impressions is CTR.

    Returns:
        ``{"pos": [E], "imp": [E], "ctr": [E]}`` bool arrays.
    """
    flags = log.select(
        positive_expr(positive_events).alias("pos"),
        (pl.col("event") == IMPRESSION).alias("imp"),
        (pl.col("event") == ctr_event).alias("ctr"),
    )
    return {name: flags[name].to_numpy() for name in FLAG_KINDS}


def relative_times(
    samples: pl.DataFrame, log: pl.DataFrame, t0: int | None = None
) -> tuple[int, NDArray[np.int64], NDArray[np.int64]]:
    """Reference time and times relative to it (lookups store 32-bit relative times).

    Args:
        samples: ``[N]`` samples, N > 0, with ``timestamp``.
        log: ``[E]`` events with ``timestamp``.
        t0: the reference time; None = the earliest sample or event time.

    Returns:
        ``(t0, sample times [N], log times [E])``, int64 seconds since ``t0``.

    Raises:
        ValueError: the times span more than 2**32 s from ``t0``.
    """
    s_ts = samples["timestamp"].to_numpy().astype(np.int64)
    l_ts = log["timestamp"].to_numpy().astype(np.int64)
    lo, hi = int(s_ts.min()), int(s_ts.max())
    if l_ts.size:
        lo, hi = min(lo, int(l_ts.min())), max(hi, int(l_ts.max()))
    t0 = lo if t0 is None else t0
    if hi - t0 > TIME_MASK:
        raise ValueError(f"timestamps span {hi - t0} s, more than the 2**32 s supported")
    return t0, s_ts - t0, l_ts - t0


def relevant_events(log: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """The log rows any feature of ``samples`` can read: events of their users or of their
    items (user, user x category, user x item and sequence features read the user's rows; item
    features the item's). Exact, and it turns a single request over a million-row log from
    sorting the whole log into sorting a few thousand rows."""
    if log.height == 0 or samples.height == 0:
        return log
    s_user = samples["user_idx"].to_numpy().astype(np.int64)
    s_item = samples["item_idx"].to_numpy().astype(np.int64)
    l_user = log["user_idx"].to_numpy().astype(np.int64)
    l_item = log["item_idx"].to_numpy().astype(np.int64)
    keep = _marked(l_user, s_user) | _marked(l_item, s_item)
    if keep.all():
        return log
    return log.filter(pl.Series(keep))


def _marked(values: NDArray[np.int64], wanted: NDArray[np.int64]) -> NDArray[np.bool_]:
    """``values`` that occur in ``wanted`` (non-negative ids only), by a lookup table."""
    wanted = wanted[wanted >= 0]
    if wanted.size == 0:
        return np.zeros(values.shape[0], dtype=bool)
    size = int(max(wanted.max(), values.max(initial=0))) + 1
    table = np.zeros(size, dtype=bool)
    table[wanted] = True
    return np.where(values >= 0, table[np.maximum(values, 0)], False)
