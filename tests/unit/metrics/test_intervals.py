"""Bootstrap intervals over queries: one value per query, resampled with replacement."""

import numpy as np
import pytest

from funnelrec.metrics.intervals import (
    bootstrap_mean,
    bootstrap_means,
    paired_difference,
    percentile_bounds,
)


def _values(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).binomial(1, 0.3, size=n).astype(np.float64)


def test_interval_contains_the_mean() -> None:
    values = np.column_stack([_values(300), np.random.default_rng(1).random(300)])
    draws = bootstrap_means(values, np.random.default_rng(0))
    low, high = percentile_bounds(draws)
    assert draws.shape == (1000, 2)
    assert np.all(low <= values.mean(axis=0)) and np.all(values.mean(axis=0) <= high)
    assert np.all(low < high)


def test_interval_shrinks_with_more_queries() -> None:
    widths = []
    for n in (100, 10_000):
        draws = bootstrap_means(_values(n)[:, None], np.random.default_rng(0))
        low, high = percentile_bounds(draws)
        widths.append(float(high[0] - low[0]))
    # the standard error falls as 1/sqrt(n): 100x the queries, about a tenth of the width
    assert widths[1] < widths[0] / 5


def test_agrees_with_the_single_column_bootstrap() -> None:
    values = _values(500)
    low, high = percentile_bounds(bootstrap_means(values[:, None], np.random.default_rng(0)))
    single = bootstrap_mean(values, np.random.default_rng(1))
    assert low[0] == pytest.approx(single.low, abs=0.015)
    assert high[0] == pytest.approx(single.high, abs=0.015)


def test_columns_share_resamples_so_differences_are_paired() -> None:
    a = np.random.default_rng(0).random(400)
    b = a - 0.01  # always a little worse: the paired interval is exactly 0.01
    draws = bootstrap_means(np.column_stack([a, b, a]), np.random.default_rng(0))
    low, high = percentile_bounds(draws[:, 0] - draws[:, 1])
    assert low == pytest.approx(0.01) and high == pytest.approx(0.01)
    assert np.all(draws[:, 0] == draws[:, 2])
    # the unpaired intervals of a and b overlap almost entirely
    lows, highs = percentile_bounds(draws)
    assert lows[0] < highs[1]


def test_bounded_memory_blocks_give_the_same_shape() -> None:
    # More queries than one block of resamples holds: drawn over several blocks.
    values = _values(50_000)[:, None]
    draws = bootstrap_means(values, np.random.default_rng(0), n_boot=200)
    assert draws.shape == (200, 1) and np.isfinite(draws).all()
    assert abs(float(draws.mean()) - float(values.mean())) < 0.005


def test_no_queries_gives_nan() -> None:
    assert np.isnan(bootstrap_means(np.zeros((0, 3)), np.random.default_rng(0))).all()


def test_paired_difference_of_a_list_with_itself_is_zero() -> None:
    values = _values(200)
    iv = paired_difference(values, values, np.random.default_rng(0))
    assert (iv.mean, iv.low, iv.high) == (0.0, 0.0, 0.0)
