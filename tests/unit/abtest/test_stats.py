"""Calibration of the A/B statistics on synthetic per-user data with a known truth: AA false
positives at alpha, interval coverage, the delta method against the naive binomial interval,
CUPED's variance reduction, the sample-ratio check."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.abtest.stats import (
    cuped,
    mean_effect,
    ratio_effect,
    sample_ratio,
    users_per_arm,
)

REPS = 2000  # experiments per calibration: the rate's standard error is ~0.5 points


def skewed_users(rng: np.random.Generator, n: int, lift: float = 0.0) -> np.ndarray:
    """Per-user watch minutes: heavy-tailed (lognormal), as engagement metrics are."""
    return rng.lognormal(mean=1.0, sigma=1.0, size=n) * (1.0 + lift)


def test_aa_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(0)
    rejected = [
        mean_effect(skewed_users(rng, 800), skewed_users(rng, 800)).significant()
        for _ in range(REPS)
    ]
    assert 0.03 <= np.mean(rejected) <= 0.07


def test_interval_covers_a_planted_effect_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    base = np.exp(1.0 + 0.5)  # E[lognormal(1, 1)]
    truth = base * 0.05
    covered = []
    for _ in range(REPS):
        e = mean_effect(skewed_users(rng, 800), skewed_users(rng, 800, lift=0.05))
        covered.append(e.low <= truth <= e.high)
    assert 0.93 <= np.mean(covered) <= 0.97


def clicks_and_views(rng: np.random.Generator, n: int, ctr_lift: float = 0.0):
    """Users with their own click rate (so one user's views are correlated) and views."""
    views = rng.poisson(20, n) + 1
    rate = np.clip(rng.beta(2, 18, n) * (1 + ctr_lift), 0, 1)
    return rng.binomial(views, rate), views


def test_delta_method_covers_where_the_per_view_interval_does_not() -> None:
    rng = np.random.default_rng(2)
    delta, naive = [], []
    for _ in range(600):
        a, b = clicks_and_views(rng, 500), clicks_and_views(rng, 500)
        e = ratio_effect(a, b)
        delta.append(e.significant())
        # The naive interval treats every view as an independent Bernoulli trial.
        p_a, p_b = a[0].sum() / a[1].sum(), b[0].sum() / b[1].sum()
        se = np.sqrt(p_a * (1 - p_a) / a[1].sum() + p_b * (1 - p_b) / b[1].sum())
        naive.append(abs(p_b - p_a) > 1.96 * se)
    assert 0.03 <= np.mean(delta) <= 0.075
    assert np.mean(naive) > 0.10  # user-level correlation makes it overconfident


def test_cuped_shrinks_the_variance_by_one_minus_rho_squared_and_keeps_the_effect() -> None:
    rng = np.random.default_rng(3)
    n, rho = 20_000, 0.7
    pre = rng.normal(size=n)
    arm = rng.random(n) < 0.5
    post = rho * pre + np.sqrt(1 - rho**2) * rng.normal(size=n) + 0.05 * arm
    adjusted = cuped(post, pre)
    measured = adjusted.var() / post.var()
    predicted = 1 - np.corrcoef(post, pre)[0, 1] ** 2
    assert measured == pytest.approx(predicted, abs=0.01)
    raw, fixed = mean_effect(post[~arm], post[arm]), mean_effect(adjusted[~arm], adjusted[arm])
    assert fixed.se < 0.75 * raw.se
    assert fixed.low <= 0.05 <= fixed.high


def test_sample_ratio_mismatch_flags_a_52_48_split_and_rarely_a_fair_one() -> None:
    assert sample_ratio([5200, 4800], [0.5, 0.5]).mismatch
    rng = np.random.default_rng(4)
    fair = [sample_ratio(rng.multinomial(10_000, [0.5, 0.5]), [1, 1]).mismatch for _ in range(500)]
    assert np.mean(fair) < 0.01
    uneven = sample_ratio([2000, 6000, 2000], [1, 3, 1])
    assert not uneven.mismatch and uneven.counts == (2000, 6000, 2000)


def test_users_per_arm_gives_the_power_it_promises() -> None:
    rng = np.random.default_rng(5)
    n = users_per_arm(sd=1.0, effect=0.2)
    hits = [
        mean_effect(rng.normal(size=n), rng.normal(0.2, 1.0, n)).significant() for _ in range(800)
    ]
    assert 0.75 <= np.mean(hits) <= 0.85


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mean_effect([1.0], [1.0, 2.0]), "at least 2 users"),
        (lambda: mean_effect([1.0, float("nan")], [1.0, 2.0]), "finite"),
        (lambda: ratio_effect(([1, 2], [0, 0]), ([1, 2], [3, 4])), "denominator"),
        (lambda: ratio_effect(([1, 2, 3], [1, 2]), ([1, 2], [3, 4])), "shape"),
        (lambda: sample_ratio([10], [1]), "two arms"),
        (lambda: users_per_arm(1.0, 0.0), "non-zero"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
