"""Every recall channel of the registry passes the retriever contract
(:func:`funnelrec.testing.check_retriever`)."""

from __future__ import annotations

import pytest

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.recall.als import ALSConfig
from funnelrec.recall.ease import EASEConfig
from funnelrec.recall.prefix_prior import PrefixPriorConfig
from funnelrec.recall.registry import build_retriever
from funnelrec.recall.sasrec import SASRecConfig
from funnelrec.recall.swing import SwingConfig
from funnelrec.recall.two_tower import TwoTowerConfig
from funnelrec.testing import check_retriever

CHANNELS = dict(ExperimentConfig().recall.channels)
CHANNELS["two_tower"] = TwoTowerConfig(train={"epochs": 1})  # one epoch keeps it quick
CHANNELS["content_all"] = CHANNELS["content"].model_copy(update={"pool": "all"})
# Opt-in: the content channel with its semantic-id prefix prior (docs/recall.md).
CHANNELS["content_prefix"] = CHANNELS["content"].model_copy(
    update={"prefix_prior": PrefixPriorConfig()}
)
CHANNELS["ease"] = EASEConfig()  # baselines, outside the default channel set
CHANNELS["als"] = ALSConfig()
CHANNELS["sasrec"] = SASRecConfig(train={"epochs": 2})  # opt-in channel; two epochs: quick
CHANNELS["swing"] = SwingConfig()  # opt-in i2i channel


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_channel_passes_the_retriever_contract(name: str, sim_dataset: Dataset) -> None:
    config = CHANNELS[name]
    check_retriever(lambda: build_retriever(config), sim_dataset)


def test_the_contract_catches_a_broken_retriever(sim_dataset: Dataset) -> None:
    """A retriever that returns seen items fails the suite: the suite can fail."""
    config = CHANNELS["popular"].model_copy(update={"exclude_seen": True})

    class Leaky(type(build_retriever(config))):  # type: ignore[misc]
        def retrieve(self, queries, k=None):  # type: ignore[no-untyped-def]
            result = super().retrieve(queries, k)
            if len(queries) and queries.history_len[0] > 0:
                result.item_idx[0, 0] = queries.history_item[queries.history_ptr[0]]
            return result

    with pytest.raises(AssertionError, match="seen items"):
        check_retriever(lambda: Leaky(config), sim_dataset)
