"""Off-policy estimates against the exposure simulator's on-policy truth."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.data.simulator.exposure import simulate_exposure
from funnelrec.data.simulator.exposure_config import ExposureConfig
from funnelrec.eval.ope import ope_estimates, top_slates


@pytest.fixture(scope="module")
def flat_random_log():
    cfg = ExposureConfig(
        n_users=200,
        n_items=100,
        n_requests=8_000,
        curve="none",
        random_share=1.0,
        n_candidates=8,
        slate_size=3,
    )
    return simulate_exposure(cfg)


def test_estimates_match_the_truth_without_position_bias(flat_random_log) -> None:
    log = flat_random_log
    rel = log.truth.relevance[log.users[:, None], log.pools]
    target = top_slates(log.pools, rel, 3)  # the best policy
    truth = log.truth.expected_clicks(log.users, target)
    q_t = log.truth.relevance[log.users[:, None], target]
    q_l = log.truth.relevance[log.users[:, None], log.slates]
    est = ope_estimates(log.slates, log.clicks, log.propensity, target, q_target=q_t, q_logged=q_l)
    for name in ("ips", "snips", "dr", "dm"):
        assert est[name] == pytest.approx(truth, rel=0.1), (name, est, truth)


def test_dr_needs_both_direct_model_arrays() -> None:
    a = np.zeros((2, 2), np.int64)
    with pytest.raises(ValueError, match="both"):
        ope_estimates(a, a, np.ones((2, 2)), a, q_target=np.zeros((2, 2)))
