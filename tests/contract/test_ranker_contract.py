"""The neural and the GBDT rankers pass the ranker contract."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.pipeline.rank_samples import build_rank_data
from funnelrec.rank.ranker import Ranker
from funnelrec.testing import check_ranker

FAST = [
    "recall.channels.two_tower.train.epochs=1",
    "rank.train.loop.epochs=1",
    "rank.fusion.trials=3",
    "rank.train.health=false",
]


@pytest.mark.parametrize("kind", ["mmoe", "lightgbm"])
def test_ranker_passes_the_ranker_contract(kind: str, sim_dataset: Dataset) -> None:
    config = load_config(overrides=[*FAST, f"rank.model.kind={kind}"])
    data = build_rank_data(sim_dataset, config, np.random.default_rng(0))

    def fit() -> Ranker:
        return Ranker(config.rank, data.tasks).fit(sim_dataset, data.train, data.valid, data.log)

    samples = data.valid.drop([c for c in data.valid.columns if c.startswith("label_")])
    check_ranker(fit(), fit, samples.head(500), data.log)
