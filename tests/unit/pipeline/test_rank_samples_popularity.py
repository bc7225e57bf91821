"""rank.samples.popularity_beta puts popularity weights on the ranker's training and
validation samples (and nothing when 0)."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.pipeline.rank_samples import build_rank_data


@pytest.fixture(scope="module")
def sim_dataset() -> Dataset:
    sim = simulate(SimulatorConfig.for_interactions(20_000, seed=5))
    return Dataset.build(sim.interactions, sim.items, sim.users)


def test_rank_samples_carry_the_weights_when_asked(sim_dataset: Dataset) -> None:
    config = load_config(overrides=["rank.samples.popularity_beta=0.5"])
    data = build_rank_data(sim_dataset, config, np.random.default_rng(0))
    for part in (data.train, data.valid):
        for task in data.tasks:
            assert f"weight_{task}" in part.columns
    weights = data.train["weight_click"].to_numpy()
    assert np.isclose(weights.mean(), 1.0, atol=1e-3) and weights.std() > 0
    plain = build_rank_data(sim_dataset, load_config(), np.random.default_rng(0))
    assert not any(c.startswith("weight_") for c in plain.train.columns)
