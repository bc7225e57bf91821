"""Peeking every day: the naive fixed-horizon test inflates false positives, the mSPRT keeps
them at alpha and still finds a real effect."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from funnelrec.abtest.sequential import (
    always_valid_p_values,
    first_rejection,
    msprt_likelihood_ratio,
)
from funnelrec.abtest.stats import mean_effect

DAYS, USERS_PER_DAY, REPS = 14, 150, 600


def daily_looks(rng: np.random.Generator, lift: float):
    """The cumulative effect estimate after each day (new users arrive every day)."""
    a = rng.normal(size=(DAYS, USERS_PER_DAY))
    b = rng.normal(lift, 1.0, size=(DAYS, USERS_PER_DAY))
    return [mean_effect(a[: d + 1].ravel(), b[: d + 1].ravel()) for d in range(DAYS)]


def test_peeking_inflates_the_naive_test_but_not_the_msprt() -> None:
    rng = np.random.default_rng(0)
    naive, sequential = [], []
    for _ in range(REPS):
        looks = daily_looks(rng, 0.0)
        naive.append(any(look.p_value < 0.05 for look in looks))
        sequential.append(first_rejection(always_valid_p_values(looks, tau=0.1)) is not None)
    assert np.mean(naive) > 0.12  # ~4x alpha with 14 looks
    assert np.mean(sequential) <= 0.05


def test_msprt_finds_a_real_effect_and_its_p_values_only_go_down() -> None:
    rng = np.random.default_rng(1)
    found = []
    for _ in range(200):
        p = always_valid_p_values(daily_looks(rng, 0.15), tau=0.1)
        assert all(later <= earlier for earlier, later in itertools.pairwise(p))
        found.append(first_rejection(p) is not None)
    assert np.mean(found) > 0.8


def test_likelihood_ratio_is_one_over_large_variance_and_rejects_bad_input() -> None:
    assert msprt_likelihood_ratio(0.0, 1e12, 1.0) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="positive"):
        msprt_likelihood_ratio(0.1, 0.0, 1.0)
