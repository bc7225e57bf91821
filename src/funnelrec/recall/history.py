"""The one rule for "a query's last N distinct history items", shared by the history channels.

ItemCF and the content channel both score a query from its most recent distinct items, the
``r``-th most recent (``r = 0`` newest) weighted by ``recency_decay ** r``; both must agree on
which items those are, so the rule lives here: walk the history newest first, keep each item at
its last occurrence, skip items the channel cannot use, and stop after ``history_len`` items.

Example:
    >>> import numpy as np
    >>> q = Queries(np.array([0]), np.array([0], np.int32), np.array([9]), np.array([0, 4]),
    ...     np.array([3, 1, 3, 2], np.int32), np.arange(4, dtype=np.int64))
    >>> recent = recent_items(q, 2, np.ones(4, dtype=bool))
    >>> recent.item.tolist(), recent.rank.tolist(), recent.pos.tolist()
    ([2, 3], [0, 1], [3, 2])
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from funnelrec.recall.base import Queries

__all__ = ["RecentItems", "recent_items"]


@dataclass(frozen=True, slots=True)
class RecentItems:
    """Each query's last distinct usable items, flat, sorted by query row then recency rank.

    Attributes:
        row: ``[M]`` int64 query row.
        item: ``[M]`` int64 item_idx.
        pos: ``[M]`` int64 index of the item's last occurrence in ``queries.history_*``
            (read its time as ``queries.history_time[pos]``).
        rank: ``[M]`` int64 recency rank within the row, 0 = newest.
    """

    row: NDArray[np.int64]
    item: NDArray[np.int64]
    pos: NDArray[np.int64]
    rank: NDArray[np.int64]


@numba.njit(cache=True)
def _recent(ptr, item, usable, entries, history_len, out):  # pragma: no cover - compiled
    """Fill ``out [4, H]`` (row, item, pos, rank) query by query; returns the entries kept."""
    m = 0
    for r in range(ptr.shape[0] - 1):
        lo, hi = ptr[r], ptr[r + 1]
        # The row's usable entries, newest first.
        pos = np.empty(hi - lo, dtype=np.int64)
        n = 0
        for p in range(hi - 1, lo - 1, -1):
            it = item[p]
            if it >= 0 and it < usable.shape[0] and usable[it] and entries[p]:
                pos[n] = p
                n += 1
        if n == 0:
            continue
        # An item counts at its newest entry: the first of its run in a stable sort by item
        # (a sort, not a catalogue-sized "seen" array: rows are short, catalogues are not).
        items = item[pos[:n]].astype(np.int64)
        by_item = np.argsort(items, kind="mergesort")
        newest = np.zeros(n, dtype=np.bool_)
        newest[by_item[0]] = True
        for t in range(1, n):
            newest[by_item[t]] = items[by_item[t]] != items[by_item[t - 1]]
        rank = 0
        for t in range(n):
            if rank >= history_len:
                break
            if newest[t]:
                out[0, m], out[1, m], out[2, m], out[3, m] = r, items[t], pos[t], rank
                rank += 1
                m += 1
    return m


def recent_items(
    queries: Queries,
    history_len: int,
    usable: NDArray[np.bool_],
    entries: NDArray[np.bool_] | None = None,
) -> RecentItems:
    """The last ``history_len`` distinct usable items of each query, newest first.

    One compiled pass over the histories (no per-query Python loop, no catalogue-sized
    scratch array): this runs a dozen times per served request across channels and evidence.

    Args:
        queries: the batch ``[B]`` (histories oldest first).
        history_len: items kept per query.
        usable: ``[N]`` bool, items that may be used; others, and ids outside ``[0, N)``
            (e.g. padding ``-1``, items unknown to the model), are skipped.
        entries: optional ``[H]`` bool over the history entries, False = skip the entry
            (e.g. every entry of a query whose user the model never saw).

    Returns:
        A :class:`RecentItems` of ``M <= B * history_len`` entries.
    """
    item = queries.history_item
    if entries is None:
        entries = np.ones(item.shape[0], dtype=bool)
    out = np.empty((4, item.shape[0]), dtype=np.int64)
    m = _recent(
        np.asarray(queries.history_ptr, dtype=np.int64),
        item,
        np.asarray(usable, dtype=np.bool_),
        np.asarray(entries, dtype=np.bool_),
        np.int64(history_len),
        out,
    )
    return RecentItems(out[0, :m], out[1, :m], out[2, :m], out[3, :m])
