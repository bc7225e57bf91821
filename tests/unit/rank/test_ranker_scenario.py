"""The ranker with the scenario field: STAR and ``rank.scenario_feature`` end to end on a
small simulated log with scenarios, persistence, and samples without a scenario column."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.scenario_config import ScenarioConfig
from funnelrec.features.scenario import SCENARIO_FIELD
from funnelrec.rank.config import RankConfig
from funnelrec.rank.ranker import Ranker
from funnelrec.rank.samples import SampleConfig, impression_samples


@pytest.fixture(scope="module")
def setup() -> tuple[Dataset, pl.DataFrame, pl.DataFrame]:
    config = SimulatorConfig.for_interactions(12_000, seed=4)
    sim = simulate(config.model_copy(update={"scenarios": ScenarioConfig.preset()}))
    data = Dataset.build(sim.interactions, sim.items, sim.users)
    samples = impression_samples(data.interactions, SampleConfig())
    cut = int(samples["query_id"].quantile(0.8) or 0)
    return data, samples.filter(pl.col("query_id") <= cut), samples.filter(pl.col("query_id") > cut)


def _config(model: dict, **extra: object) -> RankConfig:
    return RankConfig.model_validate(
        {
            "model": model,
            "train": {"loop": {"epochs": 1}, "health": False},
            "fusion": {"formula": {"weights": {"click": 1.0}}},
            **extra,
        }
    )


@pytest.mark.parametrize(
    "config",
    [
        _config({"kind": "star", "star": {"hidden": [16]}, "tower": {"hidden": [8]}}),
        _config({"kind": "shared_bottom", "bottom": {"hidden": [16]}}, scenario_feature=True),
    ],
    ids=["star", "shared_bottom+id"],
)
def test_scenario_field_is_read_and_saved(setup, config: RankConfig) -> None:
    data, train, valid = setup
    ranker = Ranker(config, ("click", "cart", "order")).fit(data, train, valid, data.interactions)
    assert ranker.spec.sparse_names[-1] == SCENARIO_FIELD
    assert ranker.scenarios is not None and ranker.scenarios.names == ("detail", "feed", "search")
    scored = ranker.score(valid, data.interactions)
    assert np.isfinite(scored["score"].to_numpy()).all()
    restored = Ranker.from_state(config, ranker.state())  # served through ONNX (rank/lean.py)
    again = restored.score(valid, data.interactions)["score"].to_numpy()
    np.testing.assert_allclose(again, scored["score"].to_numpy(), rtol=1e-5, atol=1e-6)
    # a request without the column scores through the unknown scenario, no error
    plain = ranker.score(valid.drop("scenario"), data.interactions)["score"].to_numpy()
    assert np.isfinite(plain).all()


def test_star_fits_samples_without_a_scenario_column(setup) -> None:
    data, train, valid = setup
    config = _config({"kind": "star", "star": {"hidden": [8]}, "auxiliary": None})
    ranker = Ranker(config, ("click",)).fit(
        data, train.drop("scenario"), valid.drop("scenario"), data.interactions
    )
    assert ranker.scenarios is not None and ranker.scenarios.cardinality == 1
    assert np.isfinite(ranker.score(valid, data.interactions)["p_click"].to_numpy()).all()
