"""Objective trade-off: what a fusion weighting buys on each objective, and what it costs in
long-term engagement.

For every fusion weighting of the same ranker's per-task probabilities the top ``k`` of each
query is judged twice:

* on the logged outcomes of the test exposures: click NDCG@k, like NDCG@k, watch-time NDCG@k
  and completion rate@k (:mod:`funnelrec.metrics.watch`);
* by the simulator's ground truth when the data is simulated with watch time on
  (:class:`~funnelrec.data.simulator.watch.WatchTruth`): the expected clicks and seconds
  watched of the list and the users' **next-day return probability**
  (:func:`~funnelrec.data.simulator.retention.expected_return`). Offline click metrics
  cannot see this; a weighting that wins clicks and loses returns is the case "a like
  objective was added and retention dropped".

:func:`objective_tradeoff` returns the JSON-ready ``objectives`` block of ``metrics.json``
that ``funnelrec report`` renders (:mod:`funnelrec.eval.objectives_report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from funnelrec.arrays import unique_sorted
from funnelrec.data.simulator.retention import expected_return
from funnelrec.data.simulator.watch import WatchTruth
from funnelrec.metrics.rank import grouped_ndcg, query_positions
from funnelrec.metrics.watch import completion_rate_at_k, watch_time_ndcg
from funnelrec.rank.fusion import FusionConfig, fuse

__all__ = ["LoggedOutcomes", "objective_tradeoff", "top_k_lists"]


@dataclass(frozen=True, slots=True)
class LoggedOutcomes:
    """What the log says happened after each test exposure (``N`` rows).

    Attributes:
        group: ``[N]`` int64 query of each row (the list it competes in).
        click: ``[N]`` 1 where the exposure was clicked (or played, in a feed).
        play_s: ``[N]`` seconds played (0 without a play).
        completed: ``[N]`` 1 where the play completed the video.
        like: ``[N]`` 1 where the exposure was liked; None when the log has no likes.
    """

    group: NDArray[np.int64]
    click: NDArray[np.float64]
    play_s: NDArray[np.float64]
    completed: NDArray[np.float64]
    like: NDArray[np.float64] | None = None


def top_k_lists(
    group: NDArray[np.int64], scores: NDArray[np.float64], values: NDArray[np.int64], k: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each query's top ``k`` ``values`` by descending score.

    Returns:
        ``(queries [Q], lists [Q, k])``: the query ids in ascending order and their values in
        list order, -1 where a query has fewer than ``k`` rows.

    Example:
        >>> q, lists = top_k_lists(np.array([5, 5, 9]), np.array([0.1, 0.9, 0.3]),
        ...                        np.array([10, 11, 12]), k=2)
        >>> q.tolist(), lists.tolist()
        ([5, 9], [[11, 10], [12, -1]])
    """
    queries, code = np.unique(group, return_inverse=True)
    position = query_positions(group, scores)
    keep = position < k
    lists = np.full((queries.shape[0], k), -1, dtype=np.int64)
    lists[code[keep], position[keep]] = values[keep]
    return queries, lists


def _logged(scores: NDArray[np.float64], outcomes: LoggedOutcomes, k: int) -> dict[str, float]:
    g = outcomes.group
    out = {
        f"click_ndcg@{k}": grouped_ndcg(outcomes.click, scores, g, k),
        f"watch_time_ndcg@{k}": watch_time_ndcg(outcomes.play_s, scores, g, k),
        f"completion@{k}": completion_rate_at_k(outcomes.completed, scores, g, k),
    }
    if outcomes.like is not None:
        out[f"like_ndcg@{k}"] = grouped_ndcg(outcomes.like, scores, g, k)
    return out


def _simulated(
    truth: WatchTruth,
    scores: NDArray[np.float64],
    group: NDArray[np.int64],
    user_id: NDArray[np.int64],
    item_id: NDArray[np.int64],
    k: int,
) -> dict[str, float]:
    """Expected clicks, seconds watched and next-day return of each query's top ``k`` (the
    simulator's ids are 1-based indices)."""
    _, lists = top_k_lists(group, scores, item_id - 1, k)
    _, users = top_k_lists(group, np.zeros_like(scores), user_id - 1, 1)
    user = users[:, 0]
    valid = lists >= 0
    items = np.where(valid, lists, 0)
    rows = np.broadcast_to(user[:, None], items.shape)
    positions = np.broadcast_to(np.arange(k), items.shape)
    p_click = np.where(valid, truth.click_probability(rows, items, positions), 0.0)
    seconds = truth.mean_fraction(rows, items) * truth.duration[items]
    return {
        f"sim_clicks@{k}": float(p_click.sum(axis=1).mean()),
        f"sim_watch_s@{k}": float((p_click * seconds).sum(axis=1).mean()),
        "sim_next_day_return": float(expected_return(truth, user, lists).mean()),
    }


def objective_tradeoff(
    probs: Mapping[str, NDArray[np.float64]],
    weightings: Mapping[str, FusionConfig],
    outcomes: LoggedOutcomes,
    *,
    k: int = 10,
    truth: WatchTruth | None = None,
    user_id: NDArray[np.int64] | None = None,
    item_id: NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """Per-objective metrics (and, with ``truth``, simulated engagement) of each weighting.

    Args:
        probs: ``{task: [N]}`` the ranker's probabilities on the test exposures.
        weightings: ``{name: FusionConfig}``, e.g. with and without a like weight.
        outcomes: the logged outcomes of the same rows.
        k: list length judged.
        truth: the simulator's watch truth (simulated data only).
        user_id / item_id: ``[N]`` external (simulator) ids of the rows, with ``truth``.

    Returns:
        ``{"k", "queries", "simulated": bool, "weightings": [{"name", "kind", "weights",
        <metric>: value, ...}]}``, JSON-ready.

    Raises:
        ValueError: ``truth`` without ``user_id``/``item_id``, or a weighting names a task
            ``probs`` lacks.
    """
    if truth is not None and (user_id is None or item_id is None):
        raise ValueError("simulated engagement needs the rows' user_id and item_id")
    rows = []
    for name, fusion in weightings.items():
        scores = fuse(probs, fusion)
        row: dict[str, Any] = {"name": name, "kind": fusion.kind, "weights": fusion.weights}
        row.update(_logged(scores, outcomes, k))
        if truth is not None and user_id is not None and item_id is not None:
            row.update(_simulated(truth, scores, outcomes.group, user_id, item_id, k))
        rows.append(row)
    return {
        "k": k,
        "queries": int(unique_sorted(outcomes.group).shape[0]),
        "simulated": truth is not None,
        "weightings": rows,
    }
