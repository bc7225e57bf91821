"""Popularity-bias re-weighting of the ranker's training samples (issue 15 item 3).

A ranker trained on logged exposures learns that popular items get clicked, partly because
they were shown more and in better places, and ranks them higher again: the feedback loop
that narrows recommendations. Down-weighting each sample by its item's popularity,
``w = (1 + n_i)^-beta`` with ``n_i`` the item's positives in the training log and the weights
normalised to mean 1, lets the long tail count more in the loss (the inverse-propensity idea
with popularity as the propensity proxy; ``beta = 1`` is full inverse popularity). It rides on
the per-sample ``weight_<task>`` columns the loss already reads (multiplying a duration task's
own weights), so the neural rankers honour it; LightGBM does not read sample weights.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.rank.duration import weight_column


def item_popularity(positives: pl.DataFrame, n_items: int) -> np.ndarray:
    """``[n_items]`` count of positives per item index (negative indices ignored)."""
    items = positives["item_idx"].to_numpy().astype(np.int64)
    items = items[(items >= 0) & (items < n_items)]
    return np.bincount(items, minlength=n_items).astype(np.float64)


def popularity_weighted(
    samples: pl.DataFrame, popularity: np.ndarray, beta: float, tasks: tuple[str, ...]
) -> pl.DataFrame:
    """``samples`` with every task's ``weight_<task>`` multiplied by ``(1 + n_i)^-beta`` (mean
    1 over these samples); items past ``popularity`` count as unseen (``n_i = 0``).

    Example:
        >>> s = pl.DataFrame({"item_idx": [0, 0, 1], "label_click": [1.0, 0.0, 1.0]})
        >>> out = popularity_weighted(s, np.array([8.0, 0.0]), 1.0, ("click",))
        >>> [round(w, 3) for w in out["weight_click"].to_list()]
        [0.273, 0.273, 2.455]
    """
    if beta == 0 or samples.height == 0:
        return samples
    items = samples["item_idx"].to_numpy().astype(np.int64)
    counts = np.zeros(items.shape[0])
    known = (items >= 0) & (items < popularity.shape[0])
    counts[known] = popularity[items[known]]
    weight = (1.0 + counts) ** -beta
    weight /= weight.mean()
    columns = []
    for task in tasks:
        name = weight_column(task)
        base = samples[name].to_numpy() if name in samples.columns else 1.0
        columns.append(pl.Series(name, (base * weight).astype(np.float32)))
    return samples.with_columns(columns)


__all__ = ["item_popularity", "popularity_weighted"]
