"""Position-aware click models: naive, IPS, PAL, position-as-feature."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.data.simulator.exposure import simulate_exposure
from funnelrec.data.simulator.exposure_config import ExposureConfig
from funnelrec.metrics.rank import auc
from funnelrec.rank.position import Impressions, PositionModelConfig, fit_position_model
from funnelrec.rank.propensity import ips_weights

MODES = ("naive", "ips", "pal", "feature")


def _true_auc(curve: str) -> dict[str, float]:
    cfg = ExposureConfig(
        n_users=150, n_items=80, n_requests=2000, curve=curve, propensity_samples=16
    )
    log = simulate_exposure(cfg)
    k = cfg.slate_size
    pos = np.tile(np.arange(k), cfg.n_requests)
    users, items = np.repeat(log.users, k), log.slates.ravel()
    data = Impressions(users, items, pos, log.clicks.ravel(), ips_weights(pos, log.truth.curve))
    pu, pi = np.repeat(log.users, cfg.n_candidates), log.pools.ravel()
    rel = log.truth.relevance[pu, pi]
    labels = np.r_[np.ones(rel.size), np.zeros(rel.size)]
    out = {}
    for mode in MODES:
        model = fit_position_model(
            PositionModelConfig(mode=mode, epochs=2),
            cfg.n_users,
            cfg.n_items,
            k,
            data,
            rng=np.random.default_rng(0),
        )
        s = model.score(pu, pi)
        out[mode] = auc(labels, np.r_[s, s], np.r_[rel, 1.0 - rel])
    return out


def test_without_position_bias_debiased_models_agree_with_naive() -> None:
    aucs = _true_auc("none")
    assert aucs["naive"] > 0.6  # the models learn something
    for mode in MODES[1:]:
        assert abs(aucs[mode] - aucs["naive"]) < 0.03, aucs


def test_ips_needs_weights() -> None:
    data = Impressions(
        np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(3, np.int8)
    )
    with pytest.raises(ValueError, match="weight"):
        fit_position_model(
            PositionModelConfig(mode="ips"), 1, 1, 1, data, rng=np.random.default_rng(0)
        )


def test_pal_serving_ignores_position_and_training_uses_it() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    u, i, k = rng.integers(0, 4, n), rng.integers(0, 6, n), rng.integers(0, 3, n)
    y = (rng.random(n) < np.array([0.6, 0.3, 0.1])[k]).astype(np.int8)
    model = fit_position_model(
        PositionModelConfig(mode="pal", epochs=3), 4, 6, 3, Impressions(u, i, k, y), rng=rng
    )
    at = model.click_probability(np.zeros(3, np.int64), np.zeros(3, np.int64), np.arange(3))
    assert at[0] > at[1] > at[2]  # the position tower learned the curve
    assert model.score(np.array([0]), np.array([0])).shape == (1,)
