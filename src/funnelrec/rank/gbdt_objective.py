"""What the LightGBM boosters optimise: binary log-loss per sample, or LambdaMART per query.

``objective="binary"`` fits each task's probability and early-stops on validation log-loss.

``objective="lambdarank"`` fits each task's *order within a query* (LambdaMART: gradients of
pairwise swaps weighted by their NDCG change) and early-stops on validation NDCG@k. LightGBM
reads a query as a run of consecutive rows (its ``group`` is the run lengths), while
``RankFeatures.group`` is a query id per row in any order, so :func:`query_groups` sorts the
rows by query id (stable: within a query the rows keep their order) and returns the gathered
rows with the run lengths. Queries whose samples all share one label (no positive, or no
negative) have no pair to order: they contribute neither gradient nor information, so they
are left out of training (less work when positives are rare) and out of validation (LightGBM
counts a query without a positive as NDCG 1, which would only dilute the early-stopping
metric).

A lambdarank booster's raw output is a score on an arbitrary scale, shift-invariant within a
query. :func:`output_scores` maps it into ``(0, 1)`` with a sigmoid, so the ranker's
``p_<task>`` columns keep their range and order and fusion still works on them; the values
are ranking scores, **not** calibrated probabilities.

Example:
    >>> groups = query_groups(np.array([7, 3, 7, 3, 5]), np.array([1.0, 0.0, 0.0, 1.0, 0.0]))
    >>> groups.rows.tolist(), groups.sizes.tolist(), groups.n_dropped
    ([1, 3, 0, 2], [2, 2], 1)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from funnelrec.rank.gbdt_config import LightGBMConfig, Objective

if TYPE_CHECKING:  # LightGBM loads only when a dataset is built (not when serving)
    import lightgbm as lgb

__all__ = [
    "Objective",
    "QueryGroups",
    "make_dataset",
    "metric_key",
    "objective_params",
    "output_scores",
    "query_groups",
]

logger = logging.getLogger(__name__)


def objective_params(config: LightGBMConfig) -> dict[str, object]:
    """LightGBM's objective and early-stopping metric parameters for ``config.objective``.

    Example:
        >>> objective_params(LightGBMConfig(objective="lambdarank"))["eval_at"]
        [10]
    """
    if config.objective == "binary":
        return {"objective": "binary", "metric": "binary_logloss"}
    return {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [config.ndcg_eval_at],
        "lambdarank_truncation_level": config.lambdarank_truncation_level,
        "lambdarank_norm": config.lambdarank_norm,
    }


def metric_key(config: LightGBMConfig) -> str:
    """The name LightGBM reports the early-stopping metric under (``booster.best_score``).

    Example:
        >>> metric_key(LightGBMConfig()), metric_key(LightGBMConfig(objective="lambdarank"))
        ('binary_logloss', 'ndcg@10')
    """
    if config.objective == "binary":
        return "binary_logloss"
    return f"ndcg@{config.ndcg_eval_at}"


@dataclass(frozen=True, slots=True)
class QueryGroups:
    """Rows of the queries worth training on, in the layout LightGBM's ``group`` expects.

    Attributes:
        rows: ``[M]`` indices into the original rows, grouped by query id (ascending) and in
            their original order within a query; gather features and labels with it.
        sizes: ``[Q]`` rows per kept query, in the order of ``rows`` (sums to ``M``).
        n_dropped: queries left out because all their labels are equal.
    """

    rows: NDArray[np.int64]
    sizes: NDArray[np.int64]
    n_dropped: int


def query_groups(group: ArrayLike, labels: ArrayLike) -> QueryGroups:
    """Sort rows into consecutive query runs and keep the queries with two label values.

    Args:
        group: ``[N]`` integer query id per row, in any order.
        labels: ``[N]`` relevance labels (0/1 here).

    Returns:
        :class:`QueryGroups` (empty when no query has both a positive and a negative).

    Raises:
        ValueError: ``group`` and ``labels`` differ in length.
    """
    query = np.asarray(group)
    y = np.asarray(labels, dtype=np.float64)
    if query.shape != y.shape or query.ndim != 1:
        raise ValueError(f"group {query.shape} and labels {y.shape} must be the same 1-D shape")
    order = np.argsort(query, kind="stable")
    _, starts, sizes = np.unique(query[order], return_index=True, return_counts=True)
    sorted_y = y[order]
    low = np.minimum.reduceat(sorted_y, starts) if starts.size else sorted_y[:0]
    high = np.maximum.reduceat(sorted_y, starts) if starts.size else sorted_y[:0]
    keep = high > low
    row_kept = np.repeat(keep, sizes)
    return QueryGroups(
        rows=order[row_kept].astype(np.int64, copy=False),
        sizes=sizes[keep].astype(np.int64, copy=False),
        n_dropped=int((~keep).sum()),
    )


def make_dataset(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    group: NDArray[np.int64],
    objective: Objective,
    *,
    feature_names: Sequence[str],
    categorical: Sequence[int],
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset | None:
    """Design-matrix rows and one task's labels as the LightGBM Dataset ``objective`` needs.

    Args:
        x: ``[N, P]`` design matrix.
        y: ``[N]`` labels of the task.
        group: ``[N]`` query id per row (read by lambdarank only).
        objective: binary (rows as they are) or lambdarank (rows gathered by
            :func:`query_groups`, single-label queries left out).
        feature_names / categorical: column names and categorical column indices.
        reference: the training Dataset, for a validation one (shares its bin edges).

    Returns:
        The Dataset, or None for lambdarank when no query has two label values.
    """
    import lightgbm as lgb

    names = list(feature_names)
    cats = list(categorical)
    if objective == "binary":
        return lgb.Dataset(
            x, label=y, reference=reference, feature_name=names, categorical_feature=cats
        )
    queries = query_groups(group, y)
    if queries.sizes.size == 0:
        return None
    logger.debug(
        "lambdarank: %d queries, %d single-label ones left out",
        queries.sizes.size,
        queries.n_dropped,
    )
    return lgb.Dataset(
        x[queries.rows],
        label=y[queries.rows],
        group=queries.sizes,
        reference=reference,
        feature_name=names,
        categorical_feature=cats,
    )


def output_scores(raw: ArrayLike, objective: Objective) -> NDArray[np.float64]:
    """A booster's predictions as the ranker's ``[N]`` values in ``[0, 1]``.

    Binary boosters already predict probabilities; lambdarank boosters predict raw ranking
    scores, which get a sigmoid (monotone, so the order within a query is unchanged).

    Args:
        raw: ``[N]`` ``Booster.predict`` output.
        objective: the objective the booster was trained with.

    Returns:
        ``[N]`` float64 in ``[0, 1]``.

    Example:
        >>> output_scores([-1.0, 0.0, 2.0], "lambdarank").round(3)
        array([0.269, 0.5  , 0.881])
    """
    values = np.asarray(raw, dtype=np.float64)
    if objective == "binary":
        return values
    return np.asarray(expit(values), dtype=np.float64)
