"""The logged-exposure simulator: shapes, the planted curve, propensities, exploration."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.data.simulator.exposure import exposure_interactions, simulate_exposure
from funnelrec.data.simulator.exposure_config import ExposureConfig

SMALL = {"n_users": 100, "n_items": 60, "n_requests": 600, "propensity_samples": 32}


def test_same_seed_same_log() -> None:
    a = simulate_exposure(ExposureConfig(**SMALL))
    b = simulate_exposure(ExposureConfig(**SMALL))
    assert np.array_equal(a.slates, b.slates) and np.array_equal(a.clicks, b.clicks)


def test_slates_come_from_pools_without_repeats() -> None:
    log = simulate_exposure(ExposureConfig(**SMALL))
    for pool, slate in zip(log.pools[:50], log.slates[:50], strict=True):
        assert set(slate) <= set(pool) and len(set(slate)) == slate.size


def test_full_random_exposure_gives_equal_propensities() -> None:
    log = simulate_exposure(ExposureConfig(**SMALL, random_share=1.0))
    assert log.is_random.all()
    np.testing.assert_allclose(log.propensity, 1.0 / 20)


def test_curves() -> None:
    assert ExposureConfig(curve="none").curve_values().tolist() == [1.0] * 6
    exp = ExposureConfig(curve="exponential", strength=0.5).curve_values()
    np.testing.assert_allclose(exp[1] / exp[0], np.exp(-0.5))


def test_exploration_shows_new_items_with_logged_propensity() -> None:
    cfg = ExposureConfig(**SMALL, n_new_items=10, explore_epsilon=0.2)
    log = simulate_exposure(cfg)
    new = log.slates >= cfg.n_items
    assert new[:, :-1].sum() == 0 and new[:, -1].sum() == log.explored.sum() > 0
    np.testing.assert_allclose(log.propensity[new], 0.2 / 10)


def test_exploration_needs_new_items() -> None:
    with pytest.raises(ValueError, match="n_new_items"):
        ExposureConfig(explore_epsilon=0.1)


def test_interactions_are_canonical() -> None:
    log = simulate_exposure(ExposureConfig(**SMALL))
    frame = exposure_interactions(log)
    clicks = frame.filter(pl.col("event") == "click")
    assert clicks.height == int(log.clicks.sum())
    assert set(frame["is_rand"].unique()) <= {0, 1}
    assert frame["position"].max() == 5
