"""The ranker with semantic-id item fields (``rank.semantic_ids``): the fields are read,
saved and restored, and an item the fields never saw scores through the unknown value."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.rank.config import RankConfig
from funnelrec.rank.ranker import Ranker
from funnelrec.rank.samples import SampleConfig, impression_samples

SEMANTIC = {
    "ids": {"kind": "rq_kmeans", "levels": 2, "codebook_size": 8},
    "encoder": {"kind": "hashing", "dim": 32},
    "prefixes": [1, 2],
}


@pytest.fixture(scope="module")
def setup() -> tuple[Dataset, pl.DataFrame, pl.DataFrame]:
    sim = simulate(SimulatorConfig.for_interactions(12_000, seed=5))
    data = Dataset.build(sim.interactions, sim.items, sim.users)
    samples = impression_samples(data.interactions, SampleConfig())
    cut = int(samples["query_id"].quantile(0.8) or 0)
    return data, samples.filter(pl.col("query_id") <= cut), samples.filter(pl.col("query_id") > cut)


def test_semantic_id_fields_are_read_saved_and_unknown_items_read_zero(setup) -> None:
    data, train, valid = setup
    config = RankConfig.model_validate(
        {
            "model": {"kind": "deepfm"},
            "train": {"loop": {"epochs": 1}, "health": False},
            "fusion": {"formula": {"weights": {"click": 1.0}}},
            "semantic_ids": SEMANTIC,
        }
    )
    ranker = Ranker(config, ("click",)).fit(data, train, valid, data.interactions)
    assert ranker.spec.sparse_names[-2:] == ("sid_1", "sid_2")
    assert ranker.semantic is not None and (ranker.semantic.values[:, 0] > 0).mean() > 0.9
    scored = ranker.score(valid, data.interactions)
    restored = Ranker.from_state(config, ranker.state())  # served through ONNX (rank/lean.py)
    again = restored.score(valid, data.interactions)["score"].to_numpy()
    np.testing.assert_allclose(again, scored["score"].to_numpy(), rtol=1e-5, atol=1e-6)
    # an item index past the fitted catalogue (added after training) reads 0, not an error
    new_items = valid.head(3).with_columns(pl.lit(10**6).alias("item_idx"))
    x = ranker._transform(new_items, data.interactions)
    assert (x.sparse[:, -2:] == 0).all()
