"""Every channel works alone, with the funnel's output shape: ``Channel().fit(ds).recommend``."""

from __future__ import annotations

import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.recall.registry import CHANNEL_CONFIGS
from funnelrec.recall.sasrec import SASRecConfig
from funnelrec.recall.two_tower import TwoTowerConfig

CONFIGS = {cls().kind: cls() for cls in CHANNEL_CONFIGS}
CONFIGS["two_tower"] = TwoTowerConfig(train={"epochs": 1})
CONFIGS["sasrec"] = SASRecConfig(train={"epochs": 2})


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_channel_alone_returns_external_ids(kind: str, sim_dataset: Dataset) -> None:
    config = CONFIGS[kind]
    channel = config.retriever_class()(config).fit(sim_dataset)
    users = sim_dataset.user_vocab.ids.head(4).to_list()
    top = channel.recommend(users, k=5)
    assert top.columns == ["user_id", "item_id", "rank", "score", "source"]
    sizes = top.group_by("user_id").len()["len"].to_list()  # onboarding: none without tags
    assert all(size <= 5 for size in sizes)
    known = set(sim_dataset.item_vocab.ids.to_list())
    assert set(top["item_id"].to_list()) <= known
    assert top.filter(pl.col("rank") == 1).height <= len(users)


def test_a_channel_restored_from_state_says_how_to_serve(sim_dataset: Dataset) -> None:
    popular = CONFIGS["popular"]
    fitted = popular.retriever_class()(popular).fit(sim_dataset)
    restored = popular.retriever_class().from_state(popular, fitted.state())
    with pytest.raises(RuntimeError, match="fit"):
        restored.recommend([1], k=3)
