"""The lean user tower gives the module's vectors bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funnelrec.recall.two_tower.config import TowerConfig
from funnelrec.recall.two_tower.data import ItemFeatures, last_items, user_inputs
from funnelrec.recall.two_tower.lean import LeanUserTower
from funnelrec.recall.two_tower.model import TowerSizes, TwoTowerModel, init_parameters

SIZES = TowerSizes(n_items=40, n_categories=5, attr_cardinalities=(3, 6), content_dim=0)
HISTORY_LEN = 50


def make_model(pooling: str = "mean", hidden: tuple[int, ...] = (24,)) -> TwoTowerModel:
    cfg = TowerConfig(dim=16, embed_dim=32, hidden=hidden, history_len=HISTORY_LEN, pooling=pooling)
    model = TwoTowerModel(cfg, SIZES)
    init_parameters(model, torch.Generator().manual_seed(3))
    return model.eval()


def random_queries(b: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, ItemFeatures]:
    """Histories of 0 to 80 items (longer than history_len too), with items past the trained
    ones and past the known categories, and padding (-1) entries."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 81, size=b)
    ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    item = rng.integers(-1, SIZES.n_items + 6, size=int(ptr[-1])).astype(np.int32)
    attr = np.stack([rng.integers(0, c, size=b) for c in SIZES.attr_cardinalities], axis=1)
    n_known = SIZES.n_items + 3  # three items added after training, the others unknown
    category = rng.integers(0, SIZES.n_categories + 1, size=n_known).astype(np.int64)
    features = ItemFeatures(category, np.zeros(n_known, np.int64), np.zeros((n_known, 0)))
    return attr.astype(np.int32), ptr, item, features


@pytest.mark.parametrize("b", [1, 2, 7, 64])
@pytest.mark.parametrize("hidden", [(24,), (), (24, 20)])
def test_lean_tower_equals_the_module_bit_for_bit(b: int, hidden: tuple[int, ...]) -> None:
    model = make_model(hidden=hidden)
    lean = LeanUserTower.from_tower(model.user_tower, SIZES, HISTORY_LEN)
    assert lean is not None
    for seed in range(5):
        attr, ptr, item, features = random_queries(b, seed)
        hist = last_items(item, ptr[:-1], ptr[1:], HISTORY_LEN, -1)
        hist = np.where(hist < 0, -1, hist)
        inputs = user_inputs(attr, hist, features, SIZES)
        with torch.inference_mode():
            want = model.user(inputs["user_attr"], inputs["hist_item"], inputs["hist_category"])
        got = lean(attr, ptr, item, features.category)
        np.testing.assert_array_equal(got, want.numpy())


def test_attribute_codes_outside_the_tables_are_refused() -> None:
    lean = LeanUserTower.from_tower(make_model().user_tower, SIZES, HISTORY_LEN)
    assert lean is not None
    attr, ptr, item, features = random_queries(2, 0)
    attr[1, 1] = SIZES.attr_cardinalities[1]
    with pytest.raises(IndexError):
        lean(attr, ptr, item, features.category)


def test_attention_pooling_has_no_lean_form() -> None:
    tower = make_model("attention").user_tower
    assert LeanUserTower.from_tower(tower, SIZES, HISTORY_LEN) is None
