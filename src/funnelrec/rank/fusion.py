"""Score fusion: turn per-task probabilities into one ranking score, and tune it offline.

Fusion is its own stage after the ranker: the ranker outputs calibrated ``p_<task>`` (with a
list objective, ranking scores in ``[0, 1]``: the formulas and the search only need values
in that range); a :class:`FusionConfig` maps them to the ``score`` a list is sorted by.

* ``weighted_sum``:  ``score = sum_t w_t * p_t``
* ``power_product``: ``score = prod_t p_t ** w_t``, computed as ``exp(sum_t w_t log p_t)``
  with ``p_t`` floored at ``eps`` so that a zero probability does not produce ``-inf``/NaN.

Both are invariant (as rankings) to scaling every weight by the same positive constant, so
:func:`search_fusion` searches weights on the simplex (summing to 1) and returns them
normalised. It maximises a :class:`FusionTarget` on validation data: per-query NDCG@k of a
business "value" label (``sum_t value_weights[t] * label_t``, e.g. click 1, cart 3, order 10)
or GAUC of "any valued event" (``value > 0``).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from funnelrec.metrics.rank import gauc, grouped_ndcg

__all__ = [
    "FusionConfig",
    "FusionSearchResult",
    "FusionTarget",
    "fuse",
    "fusion_value",
    "search_fusion",
]

logger = logging.getLogger(__name__)


class FusionConfig(BaseModel):
    """How per-task probabilities combine into one score.

    Tasks present in the probabilities but absent from ``weights`` do not contribute; a
    weight naming a task the probabilities lack is an error (at :func:`fuse` time).

    Example:
        >>> FusionConfig(kind="power_product", weights={"click": 1.0, "order": 0.5}).kind
        'power_product'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["weighted_sum", "power_product"] = "weighted_sum"
    weights: dict[str, float] = Field(min_length=1)
    eps: float = Field(1e-12, gt=0, lt=1, description="Probability floor for power_product.")

    @field_validator("weights")
    @classmethod
    def _finite(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {t: w for t, w in weights.items() if not math.isfinite(w)}
        if bad:
            raise ValueError(f"fusion weights must be finite, got {bad}")
        return weights


class FusionTarget(BaseModel):
    """The validation metric :func:`search_fusion` maximises.

    ``metric="ndcg"``: mean per-query NDCG@``k`` with linear gains
    ``value = sum_t value_weights[t] * label_t`` (queries with no value are left out).
    ``metric="gauc"``: impression-weighted GAUC of the binary label ``value > 0``
    (single-class queries are left out).

    Example:
        >>> FusionTarget(metric="ndcg", k=10, value_weights={"click": 1, "cart": 3, "order": 10}).k
        10
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fusion_target"] = "fusion_target"
    metric: Literal["ndcg", "gauc"] = "ndcg"
    k: int = Field(10, ge=1, description="NDCG cut-off (ignored for gauc).")
    value_weights: dict[str, float] = Field(min_length=1)

    @field_validator("value_weights")
    @classmethod
    def _non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {t: w for t, w in weights.items() if not (math.isfinite(w) and w >= 0)}
        if bad:
            raise ValueError(f"value_weights must be finite and >= 0, got {bad}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError("at least one value weight must be positive")
        return weights

    @property
    def name(self) -> str:
        """The metric's display name, e.g. ``ndcg@10`` or ``gauc``."""
        return f"ndcg@{self.k}" if self.metric == "ndcg" else "gauc"


@dataclass(frozen=True, slots=True)
class FusionSearchResult:
    """Outcome of :func:`search_fusion`.

    Attributes:
        best: the best config found (weights normalised to sum 1).
        best_value: its target metric on the validation data.
        baseline_value: the metric of uniform weights (always trial 0).
        trials: one row per trial: ``trial`` (int), ``w_<task>`` (float) per task, and
            ``value`` (the target metric, float).
    """

    best: FusionConfig
    best_value: float
    baseline_value: float
    trials: pl.DataFrame


def _as_arrays(probs: Mapping[str, ArrayLike]) -> tuple[dict[str, NDArray[np.float64]], int]:
    arrays = {t: np.asarray(p, dtype=np.float64) for t, p in probs.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) > 1 or any(len(s) != 1 for s in shapes):
        raise ValueError(f"probs must be 1-D arrays of one length, got shapes {shapes}")
    n = next(iter(shapes))[0] if shapes else 0
    return arrays, n


def fuse(probs: Mapping[str, ArrayLike], config: FusionConfig) -> NDArray[np.float64]:
    """The fused score per row.

    Args:
        probs: task -> ``[N]`` probabilities.
        config: the fusion formula and weights.

    Returns:
        ``[N]`` float64 scores (higher = better).

    Raises:
        ValueError: when ``config.weights`` names a task missing from ``probs``.

    Example:
        >>> p = {"click": np.array([0.5, 0.2]), "order": np.array([0.1, 0.4])}
        >>> fuse(p, FusionConfig(kind="weighted_sum", weights={"click": 1, "order": 2})).tolist()
        [0.7, 1.0]
        >>> fuse(p, FusionConfig(kind="power_product", weights={"click": 1, "order": 0.5})).round(4)
        array([0.1581, 0.1265])
    """
    unknown = sorted(set(config.weights) - set(probs))
    if unknown:
        raise ValueError(
            f"fusion weights name unknown tasks {unknown}; probabilities are for {sorted(probs)}"
        )
    arrays, n = _as_arrays({t: probs[t] for t in config.weights})
    if config.kind == "weighted_sum":
        score = np.zeros(n, dtype=np.float64)
        for task, w in config.weights.items():
            score += w * arrays[task]
        return score
    log_score = np.zeros(n, dtype=np.float64)
    for task, w in config.weights.items():
        if w != 0.0:
            log_score += w * np.log(np.clip(arrays[task], config.eps, 1.0))
    return np.exp(log_score)


def fusion_value(
    labels: Mapping[str, ArrayLike], value_weights: Mapping[str, float]
) -> NDArray[np.float64]:
    """The business value per row: ``sum_t value_weights[t] * labels[t]`` (``[N]`` float64).

    Example:
        >>> fusion_value({"click": np.array([1, 1, 0]), "order": np.array([0, 1, 0])},
        ...              {"click": 1.0, "order": 10.0}).tolist()
        [1.0, 11.0, 0.0]
    """
    unknown = sorted(set(value_weights) - set(labels))
    if unknown:
        raise ValueError(
            f"value_weights name unknown tasks {unknown}; labels are for {sorted(labels)}"
        )
    arrays, n = _as_arrays({t: labels[t] for t in value_weights})
    value = np.zeros(n, dtype=np.float64)
    for task, w in value_weights.items():
        value += w * arrays[task]
    return value


def _candidates(
    n_tasks: int, n_trials: int, rng: np.random.Generator, method: Literal["grid", "random"]
) -> NDArray[np.float64]:
    """``[M, T]`` weight vectors on the simplex; row 0 is uniform, rows are distinct."""
    uniform = np.full((1, n_tasks), 1.0 / n_tasks)
    if method == "random":
        rest = rng.dirichlet(np.ones(n_tasks), size=max(n_trials - 1, 0))
        return np.concatenate([uniform, rest])
    # Grid: m levels per task with m ** T <= n_trials (at least 2), all-zero dropped, rows
    # normalised and de-duplicated (directions, since scale does not change the ranking).
    m = 2
    while (m + 1) ** n_tasks <= n_trials:
        m += 1
    levels = np.linspace(0.0, 1.0, m)
    grid = np.array(list(itertools.product(levels, repeat=n_tasks)), dtype=np.float64)
    grid = grid[grid.sum(axis=1) > 0]
    grid /= grid.sum(axis=1, keepdims=True)
    grid = np.unique(np.round(grid, 12), axis=0)
    is_uniform = np.all(np.isclose(grid, uniform), axis=1)
    return np.concatenate([uniform, grid[~is_uniform]])


def search_fusion(
    probs: Mapping[str, ArrayLike],
    labels: Mapping[str, ArrayLike],
    group: ArrayLike,
    target: FusionTarget,
    *,
    n_trials: int,
    rng: np.random.Generator,
    method: Literal["grid", "random"] = "random",
    kind: Literal["weighted_sum", "power_product"] = "power_product",
) -> FusionSearchResult:
    """Find fusion weights that maximise ``target`` on validation data.

    Trial 0 is always uniform weights (the baseline); ties keep the earliest trial, so the
    search never reports a result worse than uniform.

    Args:
        probs: task -> ``[N]`` validation probabilities; every task gets a weight.
        labels: task -> ``[N]`` validation labels (at least the tasks of
            ``target.value_weights``).
        group: ``[N]`` query ids.
        target: the metric to maximise.
        n_trials: number of weight vectors for ``random`` (uniform included); for ``grid``
            the per-task resolution ``m`` is the largest with ``m ** T <= n_trials`` (at least
            2), and the distinct normalised grid points are tried.
        rng: the random generator (``random`` only; ``grid`` is deterministic).
        method: ``random`` samples Dirichlet(1) points of the simplex; ``grid`` a lattice.
        kind: which fusion formula to tune.

    Returns:
        :class:`FusionSearchResult` with the best config and every trial.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> p = {"click": rng.random(40), "order": rng.random(40)}
        >>> y = {"click": (p["click"] > 0.5).astype(float), "order": (p["order"] > 0.8) * 1.0}
        >>> r = search_fusion(p, y, np.arange(40) // 8, FusionTarget(value_weights={"order": 1}),
        ...                   n_trials=20, rng=rng)
        >>> r.best.weights["order"] > r.best.weights["click"], r.trials.height
        (True, 20)
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    tasks = tuple(probs)
    arrays, value, g = _validation_arrays(probs, labels, group, target)
    binary = (value > 0).astype(np.int8)
    candidates = _candidates(len(tasks), n_trials, rng, method)
    values = np.array(
        [
            _trial_value(_weights(kind, tasks, w), arrays, value, binary, g, target)
            for w in candidates
        ],
        dtype=np.float64,
    )
    if np.isnan(values).all():
        raise ValueError(
            f"{target.name} is undefined on this data (no query has "
            f"{'any value' if target.metric == 'ndcg' else 'both classes'})"
        )
    best_i = int(np.nanargmax(values))
    logger.info(
        "fusion search (%s, %s, %d trials): best %s %.5f vs uniform %.5f",
        kind,
        method,
        len(candidates),
        target.name,
        values[best_i],
        values[0],
    )
    trials = pl.DataFrame(
        {
            "trial": np.arange(len(candidates), dtype=np.int64),
            **{f"w_{t}": candidates[:, j] for j, t in enumerate(tasks)},
            "value": values,
        }
    )
    best = _weights(kind, tasks, candidates[best_i])
    return FusionSearchResult(best, float(values[best_i]), float(values[0]), trials)


def _validation_arrays(
    probs: Mapping[str, ArrayLike],
    labels: Mapping[str, ArrayLike],
    group: ArrayLike,
    target: FusionTarget,
) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.float64], NDArray[Any]]:
    """Check the validation inputs agree in length.

    Returns:
        ``(probs task -> [N] float64, value [N] float64, group [N])``.
    """
    if not probs:
        raise ValueError("probs is empty")
    arrays, n = _as_arrays(probs)
    value = fusion_value(labels, target.value_weights)
    if value.shape[0] != n:
        raise ValueError(f"labels have {value.shape[0]} rows, probs have {n}")
    g = np.asarray(group)
    if g.shape != (n,):
        raise ValueError(f"group has shape {g.shape}, expected ({n},)")
    return arrays, value, g


def _weights(
    kind: Literal["weighted_sum", "power_product"],
    tasks: tuple[str, ...],
    weights: NDArray[np.float64],
) -> FusionConfig:
    """The fusion config of one candidate weight vector ``[T]`` (in ``tasks`` order)."""
    return FusionConfig(kind=kind, weights=dict(zip(tasks, weights.tolist(), strict=True)))


def _trial_value(
    config: FusionConfig,
    arrays: Mapping[str, NDArray[np.float64]],
    value: NDArray[np.float64],
    binary: NDArray[np.int8],
    group: NDArray[Any],
    target: FusionTarget,
) -> float:
    """``target`` of the scores ``config`` fuses (NaN when undefined on this data)."""
    score = fuse(arrays, config)
    if target.metric == "ndcg":
        return grouped_ndcg(value, score, group, target.k)
    return gauc(binary, score, group).value
