"""Textbook pure-Python ItemCF: the oracle for tests and the slow baseline for benchmarks.

Deliberately naive (Python loops over users, ``dict[item][item] += w``), computing the pair weight
straight from the formula in :mod:`funnelrec.recall.itemcf` with ``**`` on every pair. Never use
it on large data; it exists to be obviously correct.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.recall.base import Queries
from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.itemcf.kernel import MIN_SIM


def textbook_cooccurrence(data: Dataset, config: ItemCFConfig) -> dict[int, dict[int, float]]:
    """Normalised similarities ``sim[i][j]`` for every co-occurring pair (no top-K cut).

    Args:
        data: the Dataset; its ``positives`` are used.
        config: the ItemCF configuration.

    Returns:
        ``{i: {j: sim(i, j)}}`` with only similarities ``>= MIN_SIM`` (smallest normal float32).
    """
    pos = data.positives
    users = pos["user_idx"].to_list()
    items = pos["item_idx"].to_list()
    times = pos["timestamp"].to_list()
    last: dict[int, dict[int, int]] = defaultdict(dict)
    for u, i, t in zip(users, items, times, strict=True):
        if u < 0 or i < 0:
            continue
        if i not in last[u] or t > last[u][i]:
            last[u][i] = t
    created = data.item_created_at if config.created_half_life_s is not None else None

    counts: dict[int, int] = defaultdict(int)
    c: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for seen in last.values():
        seq = sorted(seen.items(), key=lambda it: (it[1], it[0]))
        n = len(seq)
        act = 1.0 / math.log(1 + n) if config.user_activity_penalty else 1.0
        for p in range(n):
            counts[seq[p][0]] += 1
            for q in range(n):
                if q == p or (config.window is not None and abs(p - q) > config.window):
                    continue
                (i, tp), (j, tq) = seq[p], seq[q]
                w = act
                if config.time_decay == "exponential":
                    w *= 0.5 ** (abs(tp - tq) / config.time_half_life_s)
                w *= config.position_decay ** (abs(p - q) - 1)
                w *= config.forward_weight if q > p else config.backward_weight
                if created is not None and config.created_half_life_s is not None:
                    gap = abs(int(created[i]) - int(created[j]))
                    w *= 0.5 ** (gap / config.created_half_life_s)
                if config.pair_half_life_s is not None:
                    age = max(data.as_of - max(tp, tq), 0)
                    w *= 0.5 ** (age / config.pair_half_life_s)
                c[i][j] += w

    sim: dict[int, dict[int, float]] = {}
    for i, row in c.items():
        out = {}
        for j, cij in row.items():
            s = cij / (counts[i] ** config.alpha * counts[j] ** (1 - config.alpha))
            if s >= MIN_SIM:
                out[j] = s
        sim[i] = out
    return sim


def textbook_itemcf(
    data: Dataset, config: ItemCFConfig
) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    """Top-``neighbors`` similar items per item, the textbook way.

    Returns:
        ``(neighbor_idx [n_items, K] int32 with -1 padding, neighbor_sim [n_items, K] float64
        with 0 padding)``, each row by descending similarity as stored (float32), ties by
        smaller item index.
    """
    sim = textbook_cooccurrence(data, config)
    k = config.neighbors
    idx = np.full((data.n_items, k), -1, dtype=np.int32)
    val = np.zeros((data.n_items, k), dtype=np.float64)
    for i, row in sim.items():
        best = sorted(row.items(), key=lambda jv: (-np.float32(jv[1]), jv[0]))[:k]
        for r, (j, s) in enumerate(best):
            idx[i, r] = j
            val[i, r] = s
    return idx, val


def textbook_scores(
    queries: Queries,
    neighbor_idx: NDArray[np.int32],
    neighbor_sim: NDArray[np.floating],
    config: ItemCFConfig,
) -> list[dict[int, float]]:
    """Retrieval scores per query, looping over histories (seen items not yet excluded).

    Returns:
        One ``{item: score}`` per query, over items reached from its recent history.
    """
    n_items = neighbor_idx.shape[0]
    out: list[dict[int, float]] = []
    for b in range(len(queries)):
        scores: dict[int, float] = defaultdict(float)
        if queries.user_idx[b] >= 0:
            lo, hi = int(queries.history_ptr[b]), int(queries.history_ptr[b + 1])
            taken: list[int] = []
            for h in range(hi - 1, lo - 1, -1):
                i = int(queries.history_item[h])
                if not 0 <= i < n_items or i in taken:
                    continue
                r = len(taken)
                if r >= config.history_len:
                    break
                taken.append(i)
                w = config.recency_decay**r
                if config.history_half_life_s is not None:
                    age = max(int(queries.timestamp[b]) - int(queries.history_time[h]), 0)
                    w *= 0.5 ** (age / config.history_half_life_s)
                for j, s in zip(neighbor_idx[i], neighbor_sim[i], strict=True):
                    if j >= 0:
                        scores[int(j)] += w * float(s)
        out.append(dict(scores))
    return out
