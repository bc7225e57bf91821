"""The dense-data fit (every pair once into an n_items x n_items matrix) equals the sparse
kernel and the textbook oracle, and is chosen from the data's density."""

from __future__ import annotations

import numpy as np
import pytest

import funnelrec.recall.itemcf.model as itemcf_model
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.itemcf.dense import DENSE_MAX_BYTES, ordered_pairs, use_dense_fit
from funnelrec.recall.itemcf.reference import textbook_itemcf

DAY = 86_400

CONFIGS = {
    "default": ItemCFConfig(),
    "plain": ItemCFConfig.plain(),
    "window": ItemCFConfig(window=3),
    "asymmetric": ItemCFConfig(forward_weight=1.0, backward_weight=0.2, position_decay=0.6),
    "forward_only": ItemCFConfig(backward_weight=0.0),
    "backward_only": ItemCFConfig(forward_weight=0.0),
    "created": ItemCFConfig(created_half_life_s=3.0 * DAY),
    "pair_age_all": ItemCFConfig(pair_half_life_s=0.5 * DAY, window=None, backward_weight=0.3),
    "short_half_life": ItemCFConfig(time_half_life_s=3600.0, window=None),
    "small_k": ItemCFConfig(neighbors=3, window=4),
}


@pytest.fixture(scope="module")
def dense_data(make_dataset, make_rows):
    """Long sequences over a small catalogue (the pairs outnumber n_items ** 2)."""
    rng = np.random.default_rng(11)
    rows = make_rows(rng, 900, 30, 25)
    created = {i: int(rng.integers(0, 30 * DAY)) for i in range(25)}
    return make_dataset(rows, created)


def _fit(data, cfg, dense: bool, monkeypatch) -> ItemCF:
    with monkeypatch.context() as patch:
        patch.setattr(itemcf_model, "use_dense_fit", lambda *args: dense)
        return ItemCF(cfg).fit(data, rng=np.random.default_rng(0))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_dense_fit_equals_sparse_kernel_and_textbook(name, dense_data, monkeypatch, same_neighbors):
    cfg = CONFIGS[name]
    dense = _fit(dense_data, cfg, True, monkeypatch)
    sparse = _fit(dense_data, cfg, False, monkeypatch)
    np.testing.assert_allclose(dense.neighbor_sim, sparse.neighbor_sim, rtol=1e-6)
    same_neighbors(dense.neighbor_idx, dense.neighbor_sim, sparse.neighbor_idx, sparse.neighbor_sim)
    same_neighbors(dense.neighbor_idx, dense.neighbor_sim, *textbook_itemcf(dense_data, cfg))


def test_dense_plain_is_identical_to_sparse(dense_data, monkeypatch):
    """Unit weights: both paths sum the same numbers, so the tables match exactly."""
    cfg = ItemCFConfig.plain()
    dense = _fit(dense_data, cfg, True, monkeypatch)
    sparse = _fit(dense_data, cfg, False, monkeypatch)
    np.testing.assert_array_equal(dense.neighbor_idx, sparse.neighbor_idx)
    np.testing.assert_array_equal(dense.neighbor_sim, sparse.neighbor_sim)


def test_ordered_pairs_counts_window_pairs():
    lengths = np.array([0, 1, 2, 5, 9], dtype=np.int64)
    for window in (1, 3, 100):
        brute = sum(
            1 for n in lengths for p in range(n) for q in range(n) if 0 < abs(p - q) <= window
        )
        assert ordered_pairs(lengths, window) == brute


def test_dense_fit_is_chosen_by_density_and_memory():
    long_users = np.full(10, 40, dtype=np.int64)  # 15600 ordered pairs
    assert use_dense_fit(long_users, 100, 100)  # 10_000 cells
    assert not use_dense_fit(long_users, 100, 200)  # 40_000 cells: sparse is cheaper
    assert not use_dense_fit(long_users, 1, 100)  # a window of 1: 780 pairs
    too_many_items = int(np.sqrt(DENSE_MAX_BYTES / 8)) + 1
    huge = np.full(10, 10**7, dtype=np.int64)
    assert not use_dense_fit(huge, 10**7, too_many_items)
