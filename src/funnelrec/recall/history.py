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


def recent_items(
    queries: Queries,
    history_len: int,
    usable: NDArray[np.bool_],
    entries: NDArray[np.bool_] | None = None,
) -> RecentItems:
    """The last ``history_len`` distinct usable items of each query, newest first.

    Vectorised over the whole batch: two ``lexsort`` passes, no Python loop over queries.

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
    rows = queries.history_row()
    item = queries.history_item.astype(np.int64)
    pos = np.arange(item.shape[0], dtype=np.int64)
    inside = (item >= 0) & (item < usable.shape[0])
    keep = inside.copy()
    keep[inside] = usable[item[inside]]
    if entries is not None:
        keep &= entries
    rows, item, pos = rows[keep], item[keep], pos[keep]
    # Newest first per (row, item): the first entry of each pair is its last occurrence.
    order = np.lexsort((-pos, item, rows))
    rows, item, pos = rows[order], item[order], pos[order]
    first = np.ones(rows.shape[0], dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (item[1:] != item[:-1])
    rows, item, pos = rows[first], item[first], pos[first]
    order = np.lexsort((-pos, rows))
    rows, item, pos = rows[order], item[order], pos[order]
    # rows is sorted, so an entry's rank is its offset from the first entry of its row.
    rank = np.arange(rows.shape[0], dtype=np.int64) - np.searchsorted(rows, rows, side="left")
    keep = rank < history_len
    return RecentItems(rows[keep], item[keep], pos[keep], rank[keep])
