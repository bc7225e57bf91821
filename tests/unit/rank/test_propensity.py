"""Propensity curves (randomisation, EM, regression-EM) and clipped IPS weights."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp

from funnelrec.data.simulator.exposure import exposure_interactions, simulate_exposure
from funnelrec.data.simulator.exposure_config import ExposureConfig
from funnelrec.rank.propensity import (
    curve_by_em,
    curve_from_randomisation,
    ips_weights,
    positioned_impressions,
    snips_normalise,
)


def _pbm_log(n: int, curve: np.ndarray, seed: int = 0):
    """Impressions with per-item relevance, items placed uniformly at random positions."""
    rng = np.random.default_rng(seed)
    rel = rng.uniform(0.1, 0.9, size=50)
    item = rng.integers(0, 50, n)
    pos = rng.integers(0, curve.size, n)
    click = rng.random(n) < curve[pos] * rel[item]
    return pos, click, item


def test_randomisation_recovers_the_curve() -> None:
    curve = np.array([1.0, 0.7, 0.5, 0.4])
    pos, click, _ = _pbm_log(60_000, curve)
    np.testing.assert_allclose(curve_from_randomisation(pos, click, 4), curve, atol=0.03)


def test_em_recovers_the_curve() -> None:
    curve = np.array([1.0, 0.7, 0.5, 0.4])
    pos, click, item = _pbm_log(60_000, curve)
    np.testing.assert_allclose(curve_by_em(pos, click, item, 4), curve, atol=0.05)


def test_regression_em_with_features() -> None:
    curve = np.array([1.0, 0.6, 0.4])
    pos, click, item = _pbm_log(20_000, curve)
    x = sp.csr_matrix((np.ones(item.size), (np.arange(item.size), item)))
    est = curve_by_em(pos, click, item, 3, features=x, iterations=8)
    np.testing.assert_allclose(est, curve, atol=0.06)


def test_without_position_bias_every_estimate_is_flat() -> None:
    """Bias off: the debiased curves agree with the naive (flat) one within noise."""
    log = simulate_exposure(
        ExposureConfig(curve="none", n_requests=6000, random_share=0.5, propensity_samples=16)
    )
    k = log.slates.shape[1]
    pos = np.tile(np.arange(k), log.slates.shape[0])
    click, rnd = log.clicks.ravel(), np.repeat(log.is_random, k)
    flat = np.ones(k)
    np.testing.assert_allclose(curve_from_randomisation(pos[rnd], click[rnd], k), flat, atol=0.12)
    weights = ips_weights(pos, curve_from_randomisation(pos[rnd], click[rnd], k))
    assert weights.max() / weights.min() < 1.3


def test_ips_weights_are_clipped_and_snips_has_mean_one() -> None:
    w = ips_weights([0, 1, 2], [1.0, 0.2, 0.001], clip=0.05)
    assert w.tolist() == [1.0, 5.0, 20.0]
    assert np.isclose(snips_normalise(w).mean(), 1.0)


def test_full_random_exposure_ips_weights_are_equal() -> None:
    log = simulate_exposure(
        ExposureConfig(n_users=80, n_items=50, n_requests=300, random_share=1.0)
    )
    w = 1.0 / log.propensity
    assert np.allclose(w, w.flat[0])


def test_positioned_impressions_joins_clicks() -> None:
    log = simulate_exposure(ExposureConfig(n_users=30, n_items=40, n_requests=50))
    shown = positioned_impressions(exposure_interactions(log))
    assert shown.height == log.slates.size
    assert shown["clicked"].sum() == int(log.clicks.sum())
    assert "is_rand" in shown.columns
    assert shown.filter(pl.col("clicked") > 1).height == 0
