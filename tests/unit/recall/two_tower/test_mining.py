"""One fit's hard negatives: the schedule, the mined windows and the draws."""

from __future__ import annotations

import numpy as np
from torch import nn

from funnelrec.recall.two_tower import HardNegativeConfig, TwoTowerConfig
from funnelrec.recall.two_tower.data import BatchInputs, ItemFeatureEncoder, build_examples
from funnelrec.recall.two_tower.mining import HardNegatives
from funnelrec.recall.two_tower.model import TowerSizes
from funnelrec.recall.two_tower.retriever import METRIC
from funnelrec.recall.two_tower.sampling import n_hard_per_example

from .test_retriever import N_ITEMS, group_data

DIM = 4


def _inputs() -> BatchInputs:
    data = group_data()
    encoder, features = ItemFeatureEncoder.fit(data, 4, None)
    sizes = TowerSizes(data.n_items, len(data.category_vocab), (), encoder.content_dim)
    return BatchInputs(
        examples=build_examples(data, "clicks", True),
        user_attr=data.user_attr,
        features=features,
        sizes=sizes,
        log_q=np.zeros(data.n_items, dtype=np.float32),
        history_len=5,
        id_dropout=0.0,
    )


def _item_vectors(items: np.ndarray) -> np.ndarray:
    """Item i scores i for every user (the same order for all): ranks are predictable."""
    out = np.zeros((items.shape[0], DIM), dtype=np.float32)
    out[:, 0] = items.astype(np.float32)
    return out


def _user_vectors(attr: np.ndarray, hist: np.ndarray) -> np.ndarray:
    out = np.zeros((hist.shape[0], DIM), dtype=np.float32)
    out[:, 0] = 1.0
    return out


def _miner(hard: HardNegativeConfig, model: nn.Module) -> tuple[HardNegatives, BatchInputs]:
    inputs = _inputs()
    config = TwoTowerConfig(text=None, batch_size=8, n_uniform_negatives=8, hard_negatives=hard)
    return HardNegatives(config, inputs, model, METRIC, _item_vectors, _user_vectors), inputs


def test_no_hard_negatives_before_the_warm_up_or_without_a_config() -> None:
    model = nn.Linear(1, 1)
    miner, _ = _miner(HardNegativeConfig(rank_window=(1, 4), warmup_epochs=1), model)
    miner.start_epoch(0)
    rows = np.arange(5, dtype=np.int64)
    assert miner.draw(rows, np.random.default_rng(0)).shape == (5, 0)
    assert miner.seconds == 0.0
    none = HardNegatives(
        TwoTowerConfig(text=None), miner.inputs, model, METRIC, _item_vectors, _user_vectors
    )
    none.start_epoch(3)
    assert none.draw(rows, np.random.default_rng(0)).shape == (5, 0)


def test_mined_negatives_come_from_each_users_window_without_its_positives() -> None:
    model = nn.Linear(1, 1)
    model.train()
    hard = HardNegativeConfig(rank_window=(1, 4), warmup_epochs=0, easy_hard_ratio=4)
    miner, inputs = _miner(hard, model)
    miner.start_epoch(0)
    assert miner.seconds > 0 and model.training  # mined in eval mode, then back to training
    rows = np.arange(len(inputs.examples), dtype=np.int64)
    drawn = miner.draw(rows, np.random.default_rng(0))
    assert drawn.shape == (rows.shape[0], n_hard_per_example(hard, 8, 8))
    examples = inputs.examples
    for row, negatives in zip(rows, drawn, strict=True):
        user = examples.user[row]
        positives = set(examples.item[examples.user == user].tolist())
        # Every item scores its index: the window is the 4 highest-indexed non-positives.
        window = [i for i in range(N_ITEMS - 1, -1, -1) if i not in positives][:4]
        assert set(negatives.tolist()) <= set(window)


def test_category_negatives_share_the_positives_category() -> None:
    hard = HardNegativeConfig(sources=("category",), warmup_epochs=0, easy_hard_ratio=4)
    miner, inputs = _miner(hard, nn.Linear(1, 1))
    miner.start_epoch(0)
    assert miner.seconds == 0.0  # nothing to mine for category negatives
    rows = np.arange(len(inputs.examples), dtype=np.int64)
    drawn = miner.draw(rows, np.random.default_rng(0))
    category = inputs.features.category
    positive_category = category[inputs.examples.item[rows]]
    assert (category[drawn] == positive_category[:, None]).all()
