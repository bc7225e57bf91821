"""Confidence intervals over queries: the percentile bootstrap of a mean, and of a paired
difference (two systems judged on the same queries); :func:`bootstrap_means` draws the same
resamples for many columns at once (every list and metric of a run)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


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
    low, high = percentile_bounds(bootstrap_means(v[:, None], rng, n_boot=n_boot), level)
    return Interval(float(v.mean()), float(low[0]), float(high[0]), int(v.size))


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


RESAMPLE_BLOCK = 1 << 22
"""Cells of one block of resamples (``[resamples, n]``, 32 MB per int64 or float64 copy):
bounds the memory of :func:`bootstrap_means` however many queries there are."""


def bootstrap_means(
    columns: ArrayLike, rng: np.random.Generator, *, n_boot: int = 1000
) -> NDArray[np.float64]:
    """``[n_boot, m]`` column means of ``columns`` ``[n, m]`` (one row per query) under
    ``n_boot`` resamples of its rows with replacement.

    Every column sees the same resamples, so one call serves every list and metric of a run
    (and a column of per-query differences, the paired bootstrap; ``draws[:, i] - draws[:,
    j]`` is the same mathematically, but BLAS may sum two columns in different orders).
    Each resample is a row of draw counts, so all columns cost one matrix product.

    Example:
        >>> draws = bootstrap_means(np.array([[1.0, 1.0], [3.0, 3.0]]), np.random.default_rng(0))
        >>> draws.shape, bool(np.all(draws[:, 0] == draws[:, 1]))
        ((1000, 2), True)
    """
    x = np.asarray(columns, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"columns must be [n, m], got shape {x.shape}")
    n = x.shape[0]
    out = np.full((n_boot, x.shape[1]), np.nan)
    if n == 0:
        return out
    step = max(1, RESAMPLE_BLOCK // n)
    for lo in range(0, n_boot, step):
        rows = min(step, n_boot - lo)
        picks = rng.integers(0, n, size=(rows, n))
        offsets = (np.arange(rows)[:, None] * n + picks).ravel()
        counts = np.bincount(offsets, minlength=rows * n).reshape(rows, n)
        out[lo : lo + rows] = counts.astype(np.float64) @ x / n
    return out


def percentile_bounds(
    draws: ArrayLike, level: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The percentile interval ``(low [m], high [m])`` of each column of bootstrap ``draws``."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(np.asarray(draws, dtype=np.float64), [tail, 100.0 - tail], axis=0)
    return low, high
