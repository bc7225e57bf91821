"""Every ranking model kind passes the ranker contract (:func:`funnelrec.testing.check_ranker`)."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.pipeline.rank_samples import RankData, build_rank_data
from funnelrec.rank.ranker import Ranker
from funnelrec.testing import check_ranker

FAST = [
    "recall.channels.two_tower.train.epochs=1",
    "rank.train.loop.epochs=1",
    "rank.fusion.trials=3",
    "rank.train.health=false",
]
KINDS = [
    "deepfm",
    "dcn_v2",
    "din",
    "shared_bottom",
    "mmoe",
    "ple",
    "esmm",
    "sim_hard",
    "sim_soft",
    "eta",
    "sdim",
    "twin",
    "star",
    "lightgbm",
]


@pytest.fixture(scope="module")
def rank_data(sim_dataset: Dataset) -> RankData:
    """Samples do not depend on the model kind: built once."""
    return build_rank_data(sim_dataset, load_config(overrides=FAST), np.random.default_rng(0))


@pytest.mark.parametrize("kind", KINDS)
def test_ranker_passes_the_ranker_contract(
    kind: str, sim_dataset: Dataset, rank_data: RankData
) -> None:
    config = load_config(overrides=[*FAST, f"rank.model.kind={kind}"])
    data = rank_data

    def fit() -> Ranker:
        return Ranker(config.rank, data.tasks).fit(sim_dataset, data.train, data.valid, data.log)

    samples = data.valid.drop([c for c in data.valid.columns if c.startswith("label_")])
    check_ranker(fit(), fit, samples.head(500), data.log)
