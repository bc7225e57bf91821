"""Small simulated data shared by the conformance suites."""

from __future__ import annotations

import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate


@pytest.fixture(scope="package")
def sim_dataset() -> Dataset:
    sim = simulate(SimulatorConfig.for_interactions(20_000, seed=5))
    return Dataset.build(sim.interactions, sim.items, sim.users)
