"""metrics.json ``intervals``: percentile-bootstrap intervals over the held-out queries of every
list's recall@K and NDCG@K, and of the final list's paired difference against every other list.

All lists of a run are judged on the same queries, so one set of query resamples serves every
interval (:func:`~funnelrec.metrics.intervals.bootstrap_means`); the paired bootstrap of two
lists is the resampled mean of their per-query differences (per-query difficulty cancels out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from funnelrec.metrics.intervals import bootstrap_means, percentile_bounds
from funnelrec.metrics.topn import PerQueryValues

FINAL_LISTS = ("reranked", "ranked", "merged")
"""The list a run hands to the user: the first of these that the run produced."""

PerQuery = Mapping[str, PerQueryValues]
"""``{list: {metric@k: [n_queries] values}}``, rows aligned across lists."""


def final_list(names: Iterable[str]) -> str | None:
    """The final list among ``names`` (re-ranked, else ranked, else merged), None if none."""
    present = set(names)
    return next((name for name in FINAL_LISTS if name in present), None)


def paired_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    """The metrics the paired differences are reported for: NDCG@10 and Recall@50 when
    measured, else NDCG at the smallest K and recall at the largest (the head of the list, and
    how much of the truth the whole list finds)."""
    names = list(metrics)
    out = []
    for metric, preferred, fallback in (("ndcg", 10, 0), ("recall", 50, -1)):
        ks = sorted(int(m.split("@")[1]) for m in names if m.startswith(f"{metric}@"))
        if ks:
            out.append(f"{metric}@{preferred if preferred in ks else ks[fallback]}")
    return tuple(out)


def list_intervals(
    per_query: PerQuery, rng: np.random.Generator, *, level: float, n_boot: int
) -> dict[str, Any]:
    """The ``intervals`` block of metrics.json.

    Returns:
        ``{"level", "n_boot", "n_queries", "final", "lists": {list: {metric@k: [low, high]}},
        "paired": {other: {metric@k: {"mean", "low", "high"}}}}``; ``paired`` holds
        ``final - other`` for every other list, at :func:`paired_metrics` of the final list.
    """
    columns = [(name, metric) for name, rows in per_query.items() for metric in rows]
    if not columns:
        return {"level": level, "n_boot": n_boot, "n_queries": 0, "final": None}
    values = np.column_stack([per_query[name][metric] for name, metric in columns])
    index = {column: i for i, column in enumerate(columns)}
    final = final_list(per_query)
    # Each pair's per-query difference is a column of its own, resampled with the others:
    # a difference of two columns' resampled means is the same bootstrap mathematically, but
    # BLAS may sum two equal columns of one product in different orders (on some CPUs a list
    # against itself gave +-3e-16), and a list equal to another must read exactly 0.
    diffs: dict[tuple[str, str], np.ndarray] = {}
    if final is not None:
        for metric in paired_metrics(per_query[final]):
            for other in (o for o in per_query if o != final and (o, metric) in index):
                diffs[other, metric] = (
                    values[:, index[final, metric]] - values[:, index[other, metric]]
                )
    draws = bootstrap_means(np.column_stack([values, *diffs.values()]), rng, n_boot=n_boot)
    low, high = percentile_bounds(draws, level)
    lists: dict[str, dict[str, list[float]]] = {}
    for i, (name, metric) in enumerate(columns):
        lists.setdefault(name, {})[metric] = [float(low[i]), float(high[i])]
    paired: dict[str, dict[str, dict[str, float]]] = {}
    for at, ((other, metric), diff) in enumerate(diffs.items(), start=len(columns)):
        paired.setdefault(other, {})[metric] = {
            "mean": float(np.mean(diff)),
            "low": float(low[at]),
            "high": float(high[at]),
        }
    return {
        "level": level,
        "n_boot": n_boot,
        "n_queries": int(values.shape[0]),
        "final": final,
        "lists": lists,
        "paired": paired,
    }
