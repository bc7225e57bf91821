"""ItemCF state round trip, determinism, ties and config validation."""

from __future__ import annotations

import numba
import numpy as np
import pydantic
import pytest

from funnelrec.errors import ConfigError
from funnelrec.recall.base import Queries
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig

DAY = 86_400


@pytest.fixture(scope="module")
def data(make_dataset, make_rows):
    return make_dataset(make_rows(np.random.default_rng(11), 800, 50, 80))


def queries_for(data) -> Queries:
    users = np.arange(min(20, data.n_users), dtype=np.int32)
    return Queries.from_history(
        np.arange(users.shape[0]), users, np.full(users.shape[0], 20 * DAY), data.positives
    )


def test_state_round_trip_gives_identical_retrieval(data):
    cfg = ItemCFConfig(neighbors=10, k=20)
    model = ItemCF(cfg).fit(data, rng=np.random.default_rng(0))
    state = {k: np.array(v, copy=True) for k, v in model.state().items()}
    assert set(state) == {"neighbor_idx", "neighbor_sim"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    loaded = ItemCF.from_state(cfg, state)
    q = queries_for(data)
    a, b = model.retrieve(q), loaded.retrieve(q)
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    np.testing.assert_array_equal(a.score, b.score)
    assert (a.item_idx >= 0).any()


def test_fit_is_deterministic_and_thread_independent(data):
    cfg = ItemCFConfig(neighbors=7)
    first = ItemCF(cfg).fit(data, rng=np.random.default_rng(0))
    second = ItemCF(cfg).fit(data, rng=np.random.default_rng(1))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = ItemCF(cfg).fit(data, rng=np.random.default_rng(2))
    finally:
        numba.set_num_threads(threads)
    for other in (second, single):
        np.testing.assert_array_equal(first.neighbor_idx, other.neighbor_idx)
        np.testing.assert_array_equal(first.neighbor_sim, other.neighbor_sim)


def test_neighbor_ties_by_smaller_index(make_dataset):
    # item 0 co-occurs once with each of 3, 1, 2 (each seen by one user): equal similarities
    rows = [(0, 0, 0), (0, 3, 1), (1, 0, 0), (1, 1, 1), (2, 0, 0), (2, 2, 1)]
    model = ItemCF(ItemCFConfig.plain(neighbors=2)).fit(
        make_dataset(rows), rng=np.random.default_rng(0)
    )
    assert model.neighbor_idx[0].tolist() == [1, 2]
    assert model.neighbor_sim[0, 0] == model.neighbor_sim[0, 1]


def test_rows_best_first_and_padded(data):
    model = ItemCF(ItemCFConfig(neighbors=200)).fit(data, rng=np.random.default_rng(0))
    idx, sim = model.neighbor_idx, model.neighbor_sim
    assert idx.shape == (data.n_items, 200) and idx.dtype == np.int32
    assert sim.dtype == np.float32
    assert (np.diff(sim, axis=1) <= 0).all() | (idx[:, 1:] < 0).all()
    assert (sim[idx < 0] == 0).all() and (sim[idx >= 0] > 0).all()
    assert not (idx == np.arange(data.n_items)[:, None]).any()
    mat = model.similarity_matrix()
    assert mat.shape == (data.n_items, data.n_items)
    assert mat.nnz == int((idx >= 0).sum())


def test_empty_dataset(make_dataset):
    model = ItemCF(ItemCFConfig(neighbors=3)).fit(
        make_dataset([(0, 0, 0)]), rng=np.random.default_rng(0)
    )
    assert model.neighbor_idx.tolist() == [[-1, -1, -1]]


def test_from_state_validates():
    cfg = ItemCFConfig(neighbors=2)
    good = {"neighbor_idx": np.zeros((3, 2), np.int32), "neighbor_sim": np.zeros((3, 2))}
    ItemCF.from_state(cfg, good)
    with pytest.raises(ConfigError):
        ItemCF.from_state(cfg, {"neighbor_idx": good["neighbor_idx"]})
    with pytest.raises(ConfigError):
        ItemCF.from_state(ItemCFConfig(neighbors=3), good)
    with pytest.raises(ConfigError):
        ItemCF.from_state(cfg, {**good, "neighbor_idx": np.full((3, 2), 5, np.int32)})


def test_unfitted_model_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        ItemCF(ItemCFConfig()).state()


def test_config_is_strict_and_frozen():
    with pytest.raises(pydantic.ValidationError):
        ItemCFConfig(neighbours=5)
    with pytest.raises(pydantic.ValidationError):
        ItemCFConfig(time_decay="linear")
    with pytest.raises(pydantic.ValidationError):
        ItemCFConfig(position_decay=0.0)
    cfg = ItemCFConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.alpha = 0.3
    assert cfg.kind == "itemcf"
    plain = ItemCFConfig.plain(k=7)
    assert plain.k == 7 and plain.window is None and plain.time_decay == "none"
    assert not plain.user_activity_penalty and plain.recency_decay == 1.0
    assert ItemCFConfig.model_validate(plain.model_dump()) == plain
