"""A small simulated world with the watch ground truth."""

from __future__ import annotations

import pytest

from funnelrec.data.simulator import SimulatedData, SimulatorConfig, simulate
from funnelrec.data.simulator.watch_config import WatchConfig


@pytest.fixture(scope="package")
def world() -> SimulatedData:
    config = SimulatorConfig.for_interactions(20_000, seed=3)
    return simulate(config.model_copy(update={"watch": WatchConfig(enabled=True)}))
