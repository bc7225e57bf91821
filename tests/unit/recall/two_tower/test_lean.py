"""The lean user tower gives the module's vectors bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funnelrec.recall.two_tower.config import TowerConfig
from funnelrec.recall.two_tower.lean import LeanUserTower
from funnelrec.recall.two_tower.model import TowerSizes, TwoTowerModel, init_parameters

SIZES = TowerSizes(n_items=40, n_categories=5, attr_cardinalities=(3, 6), content_dim=0)


def make_model(pooling: str = "mean", hidden: tuple[int, ...] = (24,)) -> TwoTowerModel:
    cfg = TowerConfig(dim=16, embed_dim=32, hidden=hidden, history_len=50, pooling=pooling)
    model = TwoTowerModel(cfg, SIZES)
    init_parameters(model, torch.Generator().manual_seed(3))
    return model.eval()


def random_inputs(b: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-aligned histories of random lengths (0 to 50), unknown ids included."""
    rng = np.random.default_rng(seed)
    hist = np.full((b, 50), SIZES.pad_id, dtype=np.int64)
    for row, n in enumerate(rng.integers(0, 51, size=b)):
        hist[row, 50 - n :] = rng.integers(0, SIZES.n_items + 1, size=n)
    cats = np.where(hist == SIZES.pad_id, 0, rng.integers(0, 6, size=hist.shape))
    attr = np.stack([rng.integers(0, c, size=b) for c in SIZES.attr_cardinalities], axis=1)
    return attr.astype(np.int64), hist, cats.astype(np.int64)


@pytest.mark.parametrize("b", [1, 2, 7, 64])
@pytest.mark.parametrize("hidden", [(24,), (), (24, 20)])
def test_lean_tower_equals_the_module_bit_for_bit(b: int, hidden: tuple[int, ...]) -> None:
    model = make_model(hidden=hidden)
    lean = LeanUserTower.from_tower(model.user_tower)
    assert lean is not None
    for seed in range(5):
        attr, hist, cats = random_inputs(b, seed)
        with torch.inference_mode():
            want = model.user(*(torch.from_numpy(x) for x in (attr, hist, cats))).numpy()
        np.testing.assert_array_equal(lean(attr, hist, cats), want)


def test_attention_pooling_has_no_lean_form() -> None:
    assert LeanUserTower.from_tower(make_model("attention").user_tower) is None
