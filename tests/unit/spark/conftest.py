"""One local Spark session for the Spark back-end tests (skipped with the reason when Java is
absent), and a small simulated log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.spark.options import SparkOptions
from funnelrec.spark.session import java_available

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

NO_JAVA = (
    "Spark needs Java 17+ (java on PATH or JAVA_HOME): apt-get install openjdk-17-jre-headless"
)
TEST_OPTIONS = SparkOptions(master="local[2]", shuffle_partitions=2)
"""Two cores (CI's), one shuffle partition per core: a few thousand rows need no more."""


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    if not java_available():
        pytest.skip(NO_JAVA)
    from funnelrec.spark.session import start_session

    session = start_session(TEST_OPTIONS)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sim_data() -> Dataset:
    """A simulated log (about 3,000 positives over 2,000 items)."""
    sim = simulate(SimulatorConfig.for_interactions(20_000, seed=3))
    return Dataset.build(sim.interactions, sim.items)
