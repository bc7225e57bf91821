"""Business rules on a re-ranked list: consumed filter, de-duplication, freshness, category cap.

The rules run after diversification (MMR/DPP), on a list that is already in its intended order.
They never reorder beyond what a rule needs: items only move when a rule moves them.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

import numba
import numpy as np
from numpy.typing import NDArray

from funnelrec.rerank.config import RulesConfig

Consumed = AbstractSet[int] | NDArray[np.bool_] | None


def eligible(
    order: NDArray[np.integer],
    item: NDArray[np.integer],
    consumed: Consumed,
    config: RulesConfig,
) -> NDArray[np.int64]:
    """``order`` without consumed items and without repeated item ids (the first one stays).

    Which of the two filters run follows ``config.filter_consumed`` and ``config.dedupe``.

    Args:
        order: ``[L]`` positions into ``item``, best first.
        item: ``[M]`` item ids.
        consumed: item ids the user consumed, or a ``[M]`` bool mask by position, or None.
        config: the rules.

    Returns:
        ``[<= L]`` int64 positions, a subsequence of ``order``.

    Example:
        >>> eligible(np.array([2, 0, 1]), np.array([7, 8, 7]), {8}, RulesConfig()).tolist()
        [2]
    """
    seq = np.asarray(order, dtype=np.int64)
    item = np.asarray(item)
    taken = _NO_ITEMS
    if config.filter_consumed and consumed is not None:
        if isinstance(consumed, np.ndarray):
            if consumed.shape != item.shape:
                raise ValueError(
                    f"a consumed mask must be [M] = {item.shape}, got shape {consumed.shape}"
                )
            seq = seq[~consumed.astype(bool)[seq]]
        elif len(consumed):
            taken = np.fromiter(consumed, dtype=np.int64, count=len(consumed))
    if not seq.size or (taken.size == 0 and not config.dedupe):
        return seq
    return seq[_eligible_mask(item[seq].astype(np.int64), taken, config.dedupe)]


_NO_ITEMS = np.zeros(0, dtype=np.int64)


@numba.njit(cache=True)
def _eligible_mask(
    items: NDArray[np.int64], taken: NDArray[np.int64], dedupe: bool
) -> NDArray[np.bool_]:
    """``[L]``: the item is not in ``taken`` and (with ``dedupe``) is its first occurrence.

    One compiled pass: ``np.isin`` plus ``np.unique`` are ~15 NumPy calls per query. A
    consumed item goes with all its copies, so de-duplicating before or after the filter
    keeps the same rows.
    """
    keep = np.ones(items.shape[0], dtype=np.bool_)
    if taken.shape[0]:
        sorted_taken = np.sort(taken)
        at = np.searchsorted(sorted_taken, items)
        for i in range(items.shape[0]):
            if at[i] < sorted_taken.shape[0] and sorted_taken[at[i]] == items[i]:
                keep[i] = False
    if dedupe:
        order = np.argsort(items, kind="mergesort")  # stable: a run starts at its first row
        for r in range(1, order.shape[0]):
            if items[order[r]] == items[order[r - 1]]:
                keep[order[r]] = False
    return keep


def apply_rules(
    order: NDArray[np.integer],
    item: NDArray[np.integer],
    category: NDArray[np.integer],
    fresh: NDArray[np.bool_],
    consumed: Consumed,
    k: int,
    config: RulesConfig,
) -> NDArray[np.int64]:
    """Apply the business rules to a re-ranked list and cut it to at most ``k`` items.

    Steps, in this order:

    1. drop consumed items (``config.filter_consumed``);
    2. drop repeated item ids, keeping the first (``config.dedupe``);
    3. freshness: with ``b = round(config.freshness_boost)``, the fresh item at list index ``p``
       is placed just before the item at index ``p - b`` (the top, when ``p < b``): it passes up
       to ``b`` of the items above it. All fresh items move the same distance, so they keep their
       mutual order, and only non-fresh items are passed over;
    4. category cap (``config.max_per_category = m``, ``config.category_window = w``): walk the
       list and take the next item unless it would put more than ``m`` items of one category in
       some window of ``w`` consecutive output positions. A skipped item is deferred; at every
       later slot the first deferred item that fits now is taken before the walk goes on. An
       unknown category (negative) never counts. When nothing left fits, the list ends there,
       shorter than ``k``: a rule is never broken to fill a slot.

    Args:
        order: ``[L]`` positions into the ``[M]`` arrays, best first (e.g. MMR/DPP output).
        item: ``[M]`` item ids.
        category: ``[M]`` category codes, negative = unknown.
        fresh: ``[M]`` bool, True for a fresh item.
        consumed: item ids the user consumed, or a ``[M]`` bool mask by position, or None.
        k: the longest list to return, ``>= 0``.
        config: the rules.

    Returns:
        ``[<= k]`` int64 positions (values of ``order``) in output order.

    Example:
        >>> rules = RulesConfig(max_per_category=1, category_window=2)
        >>> apply_rules(
        ...     np.arange(4), np.arange(4), np.array([0, 0, 1, 1]), np.zeros(4, bool), None, 4,
        ...     rules,
        ... ).tolist()
        [0, 2, 1, 3]
    """
    item = np.asarray(item)
    category = np.asarray(category)
    fresh = np.asarray(fresh, dtype=bool)
    seq = np.asarray(order, dtype=np.int64)
    if item.ndim != 1:
        raise ValueError(f"item must be a 1-D [M] array, got shape {item.shape}")
    n_items = item.shape[0]
    if category.shape != (n_items,) or fresh.shape != (n_items,):
        raise ValueError(
            f"item, category and fresh must all be [M] = [{n_items}], got "
            f"{item.shape}, {category.shape} and {fresh.shape}"
        )
    if seq.ndim != 1 or (seq.size and (seq.min() < 0 or seq.max() >= n_items)):
        raise ValueError(f"order must be a 1-D array of positions in [0, {n_items})")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")

    seq = eligible(seq, item, consumed, config)
    boost = round(config.freshness_boost)
    if boost > 0 and seq.size and fresh[seq].any():
        # Sort key p - b - 0.5 puts a fresh item just above the item b places higher.
        key = np.arange(seq.size) - np.where(fresh[seq], boost + 0.5, 0.0)
        seq = seq[np.argsort(key, kind="stable")]

    m, w = config.max_per_category, config.category_window
    if m is None or m >= w:  # no window of w positions can hold more than m items
        return seq[:k]
    return seq[_category_walk(category[seq].tolist(), k, m, w)]


def _category_walk(cats: list[int], k: int, m: int, w: int) -> NDArray[np.int64]:
    """Indices into ``cats`` in output order under the at-most-``m``-per-``w`` cap.

    Appending at output position ``t`` only creates the window ``[t - w + 1, t]``, so it is
    enough that the item's category appears fewer than ``m`` times among the last ``w - 1``
    outputs. Plain Python on a list of at most the pool size (~100): the walk is sequential and
    this costs a few microseconds per request.
    """
    out: list[int] = []
    out_cat: list[int] = []
    recent: dict[int, int] = {}  # category -> count among the last w - 1 outputs
    deferred: list[int] = []
    nxt = 0
    while len(out) < k:
        chosen = -1
        for d, idx in enumerate(deferred):
            c = cats[idx]
            if c < 0 or recent.get(c, 0) < m:
                chosen = idx
                del deferred[d]
                break
        while chosen < 0 and nxt < len(cats):
            c = cats[nxt]
            if c < 0 or recent.get(c, 0) < m:
                chosen = nxt
            else:
                deferred.append(nxt)
            nxt += 1
        if chosen < 0:
            break  # nothing left fits: end the list rather than break the rule
        c = cats[chosen]
        out.append(chosen)
        out_cat.append(c)
        if c >= 0:
            recent[c] = recent.get(c, 0) + 1
        leaving = len(out) - w  # output position that drops out of the next slot's window
        if leaving >= 0 and out_cat[leaving] >= 0:
            recent[out_cat[leaving]] -= 1
    return np.asarray(out, dtype=np.int64)
