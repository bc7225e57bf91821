"""ItemCF's opt-in popularity-bias correction."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.itemcf.popularity import correct_popularity


@pytest.fixture(scope="module")
def data(make_dataset, make_rows):
    return make_dataset(make_rows(np.random.default_rng(5), 800, 50, 80))


def test_off_by_default_and_zero_is_identity(data):
    assert ItemCFConfig().popularity_correction == 0.0
    idx = np.array([[2, 1, -1]], dtype=np.int32)
    sim = np.array([[0.5, 0.4, 0.0]], dtype=np.float32)
    out_idx, out_sim = correct_popularity(idx, sim, np.ones(3), 0.0)
    assert out_idx is idx and out_sim is sim


def test_padding_stays_last_and_popular_candidates_drop():
    idx = np.array([[1, -1, 2]], dtype=np.int32)
    sim = np.array([[0.9, 0.0, 0.5]], dtype=np.float32)
    out_idx, out_sim = correct_popularity(idx, sim, np.array([1.0, 100.0, 1.0]), 1.0)
    assert out_idx.tolist() == [[2, 1, -1]]
    assert out_sim[0, -1] == 0.0 and out_sim[0, 0] == pytest.approx(0.5)


def test_correction_lowers_the_popularity_of_neighbours(data):
    plain = ItemCF(ItemCFConfig(neighbors=10, k=20)).fit(data, rng=np.random.default_rng(0))
    fixed = ItemCF(ItemCFConfig(neighbors=10, k=20, popularity_correction=1.0)).fit(
        data, rng=np.random.default_rng(0)
    )
    pop = np.bincount(data.positives["item_idx"].to_numpy(), minlength=data.n_items).astype(float)

    def top_pop(model: ItemCF) -> float:
        top = model.neighbor_idx[:, 0]
        return float(pop[top[top >= 0]].mean())

    assert top_pop(fixed) < top_pop(plain)
