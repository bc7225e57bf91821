"""Confidence intervals over queries: the percentile bootstrap of a mean, and of a paired
difference (two systems judged on the same queries)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def bootstrap_mean(
    values: ArrayLike, rng: np.random.Generator, *, n_boot: int = 1000, level: float = 0.95
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (one value per query).

    Example:
        >>> iv = bootstrap_mean(np.ones(50), np.random.default_rng(0))
        >>> (iv.mean, iv.low, iv.high, iv.n)
        (1.0, 1.0, 1.0, 50)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    picks = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(v.mean()), float(low), float(high), int(v.size))


def paired_difference(
    candidate: ArrayLike,
    baseline: ArrayLike,
    rng: np.random.Generator,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
) -> Interval:
    """Bootstrap interval of ``mean(candidate - baseline)`` over the same queries (resampling
    queries keeps each query's pair together, so per-query difficulty cancels out).

    Example:
        >>> iv = paired_difference([0.5, 0.6, 0.7], [0.4, 0.5, 0.6], np.random.default_rng(0))
        >>> round(iv.mean, 6), iv.low > 0
        (0.1, True)
    """
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, rng, n_boot=n_boot, level=level)
