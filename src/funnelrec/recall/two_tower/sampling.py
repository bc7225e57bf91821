"""Negative sampling for the two-tower: logQ, uniform, same-category and mined hard negatives.

Every sampler takes an explicit ``np.random.Generator``; nothing touches a global RNG.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from funnelrec.index.base import VectorIndex
from funnelrec.recall.two_tower.config import HardNegativeConfig


def item_log_q(counts: NDArray[np.integer], batch_size: int, n_uniform: int) -> NDArray[np.float32]:
    """``[N]`` log of each item's expected count among one row's sampled candidates.

    With ``p_j = counts_j / sum(counts)`` (the share of training examples whose positive is
    ``j``), a batch of ``B`` examples holds ``j`` ``B * p_j`` times in expectation and ``U``
    uniform draws over ``N`` items hold it ``U / N`` times: ``Q(j) = B * p_j + U / N``.
    Items that can never be sampled get ``log(1e-12)`` instead of ``-inf``.

    Example:
        >>> [round(float(x), 4) for x in item_log_q(np.array([3, 1]), batch_size=4, n_uniform=0)]
        [1.0986, 0.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.shape[0]
    total = counts.sum()
    p = counts / total if total > 0 else np.zeros(n)
    q = batch_size * p + (n_uniform / n if n else 0.0)
    return np.log(np.maximum(q, 1e-12)).astype(np.float32)


def uniform_negatives(n_items: int, n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``[n]`` items drawn uniformly with replacement from ``0..n_items-1``.

    Example:
        >>> uniform_negatives(10, 3, np.random.default_rng(0)).shape
        (3,)
    """
    if n_items <= 0:
        return np.full(n, -1, dtype=np.int64)
    return rng.integers(0, n_items, size=n, dtype=np.int64)


def category_negatives(
    pos_item: NDArray[np.integer],
    item_category: NDArray[np.integer],
    n: int,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """``[B, n]`` random items of each positive's category (other than the positive itself).

    Args:
        pos_item: ``[B]`` positive items.
        item_category: ``[N]`` category code per item (``<= 0`` = unknown: no negatives).
        n: negatives per row.
        rng: the generator.

    Returns:
        ``[B, n]`` int64, ``-1`` where the positive has no category or is alone in it.

    Example:
        >>> category_negatives(np.array([0]), np.array([1, 1, 2]), 2, np.random.default_rng(0))
        array([[1, 1]])
    """
    pos_item = np.asarray(pos_item, dtype=np.int64)
    cats = np.asarray(item_category, dtype=np.int64)
    b = pos_item.shape[0]
    out = np.full((b, n), -1, dtype=np.int64)
    if n == 0 or b == 0:
        return out
    order = np.argsort(cats, kind="stable")
    sorted_cats = cats[order]
    cat = cats[pos_item]
    start = np.searchsorted(sorted_cats, cat, side="left")
    size = np.searchsorted(sorted_cats, cat, side="right") - start
    ok = (cat > 0) & (size > 1)
    # Uniform over the category minus the positive: draw one of its first size - 1 slots...
    draws = np.floor(rng.random((b, n)) * np.maximum(size - 1, 1)[:, None]).astype(np.int64)
    picked = order[np.minimum(start[:, None] + draws, order.shape[0] - 1)]
    # Where the draw hit the positive itself, take the last item of the category instead
    # (the slot "size - 1" that the draw range left out).
    last = order[np.minimum(start + size - 1, order.shape[0] - 1)]
    picked = np.where(picked == pos_item[:, None], last[:, None], picked)
    out[ok] = picked[ok]
    return out


def n_hard_per_example(config: HardNegativeConfig, batch_size: int, n_uniform: int) -> int:
    """Hard negatives per example: ``round((batch_size - 1 + n_uniform) / easy_hard_ratio)``,
    at least 1.

    Example:
        >>> n_hard_per_example(HardNegativeConfig(), 1024, 0)
        10
    """
    return max(1, round((batch_size - 1 + n_uniform) / config.easy_hard_ratio))


def mining_window(config: HardNegativeConfig, mining_round: int) -> tuple[int, int]:
    """The 1-based rank window of mining round ``mining_round`` (0 = first).

    Without a curriculum it is ``rank_window``; with ``curriculum_start`` the window keeps the
    width of ``rank_window`` and its first rank moves linearly from ``curriculum_start`` to
    ``rank_window[0]`` over ``curriculum_rounds`` rounds.

    Example:
        >>> cfg = HardNegativeConfig(rank_window=(101, 500), curriculum_start=901,
        ...                          curriculum_rounds=2)
        >>> [mining_window(cfg, r) for r in range(3)]
        [(901, 1300), (501, 900), (101, 500)]
    """
    lo, hi = config.rank_window
    if config.curriculum_start is None:
        return lo, hi
    t = min(1.0, mining_round / config.curriculum_rounds)
    start = round(config.curriculum_start + t * (lo - config.curriculum_start))
    return start, start + (hi - lo)


def mine_hard_negatives(
    user_vectors: NDArray[np.float32],
    index: VectorIndex,
    exclude_ptr: NDArray[np.int64],
    exclude_idx: NDArray[np.integer],
    window: tuple[int, int],
) -> NDArray[np.int32]:
    """Items each user's vector ranks inside ``window``, after removing the user's positives.

    Args:
        user_vectors: ``[U, D]`` query vectors.
        index: an index over the current item vectors (the model's own index).
        exclude_ptr: ``[U + 1]`` CSR offsets of the items never to return per user (its
            positives: they are not negatives).
        exclude_idx: ``[X]`` those items.
        window: 1-based inclusive ranks ``(lo, hi)`` counted after exclusion.

    Returns:
        ``[U, hi - lo + 1]`` int32 items in rank order, left-aligned, ``-1`` padding (when the
        corpus is too small for the window).
    """
    lo, hi = window
    n_users = user_vectors.shape[0]
    width = hi - lo + 1
    out = np.full((n_users, width), -1, dtype=np.int32)
    n_index = len(index)
    if n_users == 0 or n_index == 0:
        return out
    counts = np.diff(exclude_ptr)
    k = int(min(n_index, hi + int(counts.max(initial=0))))
    _, ids = index.search(np.ascontiguousarray(user_vectors, dtype=np.float32), k)
    stride = np.int64(max(int(ids.max(initial=0)), int(np.max(exclude_idx, initial=0))) + 2)
    rows = np.arange(n_users, dtype=np.int64)
    excl_keys = np.repeat(rows, counts) * stride + np.asarray(exclude_idx, dtype=np.int64)
    keys = rows[:, None] * stride + ids
    keep = (ids >= 0) & ~np.isin(keys, excl_keys)
    rank = np.cumsum(keep, axis=1)  # 1-based rank among kept items
    keep &= (rank >= lo) & (rank <= hi)
    # Left-align the kept items of each row, preserving rank order.
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    taken = np.take_along_axis(ids, order, axis=1)
    valid = np.take_along_axis(keep, order, axis=1)
    out[:, : taken.shape[1]] = np.where(valid, taken, -1).astype(np.int32)
    return out


def sample_windows(
    windows: NDArray[np.int32],
    rows: NDArray[np.integer],
    n: int,
    rng: np.random.Generator,
) -> NDArray[np.int64]:
    """``[B, n]`` items drawn uniformly (with replacement) from the mined window of each row.

    Args:
        windows: ``[U, W]`` left-aligned mined items (-1 padding), see
            :func:`mine_hard_negatives`.
        rows: ``[B]`` the window row of each example.
        n: draws per example.
        rng: the generator.

    Returns:
        ``[B, n]`` int64; ``-1`` where a window is empty.
    """
    sub = windows[np.asarray(rows, dtype=np.int64)]
    size = (sub >= 0).sum(axis=1)
    draws = np.floor(rng.random((sub.shape[0], n)) * np.maximum(size, 1)[:, None])
    picked = np.take_along_axis(sub, draws.astype(np.int64), axis=1).astype(np.int64)
    picked[size == 0] = -1
    return picked


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal non-negative integers (earlier ones larger).

    Example:
        >>> split_evenly(5, 2)
        [3, 2]
    """
    base = total // parts
    return [base + (1 if i < total - base * parts else 0) for i in range(parts)]
