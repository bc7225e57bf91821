"""The TwoTower retriever end to end on a tiny learnable problem.

Two taste groups: users 0..19 click only "alpha" items (0..9), users 20..39 only "beta" items
(10..19); titles say which. A trained model must separate them, place a new item by its
category/text alone, survive save/reload bit-for-bit and serve users it never saw.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.features.text import TextEncoderConfig
from funnelrec.index import AutoIndexConfig, ExactIndexConfig, IVFIndexConfig, MetricMismatchError
from funnelrec.recall.base import Queries
from funnelrec.recall.two_tower import HardNegativeConfig, TowerConfig, TwoTower, TwoTowerConfig
from funnelrec.recall.two_tower.retriever import METRIC
from funnelrec.train.config import TrainLoopConfig

N_USERS, N_ITEMS, PER_USER = 40, 20, 8


def group_data(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(N_USERS):
        pool = np.arange(10) if u < N_USERS // 2 else np.arange(10, 20)
        chosen = rng.choice(pool, PER_USER, replace=False)
        users += [u] * PER_USER
        items += chosen.tolist()
        times += (1000 + u + 100 * np.arange(PER_USER)).tolist()
    n = len(users)
    inter = pl.DataFrame(
        {
            "user_id": np.array(users, dtype=np.int64),
            "item_id": np.array(items, dtype=np.int64),
            "timestamp": np.array(times, dtype=np.int64),
            "event": ["click"] * n,
            "value": np.ones(n, dtype=np.float32),
        }
    )
    item_table = pl.DataFrame(
        {
            "item_id": np.arange(N_ITEMS, dtype=np.int64),
            "category": ["alpha" if i < 10 else "beta" for i in range(N_ITEMS)],
            "created_at": np.arange(N_ITEMS, dtype=np.int64) * 10,
            "title": [
                ("alpha red" if i < 10 else "beta blue") + f" thing{i}" for i in range(N_ITEMS)
            ],
        }
    )
    user_table = pl.DataFrame(
        {
            "user_id": np.arange(N_USERS, dtype=np.int64),
            "gender": ["f" if u < N_USERS // 2 else "m" for u in range(N_USERS)],
        }
    )
    return Dataset.build(inter, item_table, user_table)


def config(**overrides) -> TwoTowerConfig:
    base = {
        "k": 5,
        "device": "cpu",
        "text": TextEncoderConfig(kind="hashing", dim=8),
        "towers": TowerConfig(dim=16, embed_dim=16, hidden=(32,), history_len=5, temperature=0.1),
        "index": ExactIndexConfig(),
        "batch_size": 32,
        "train": TrainLoopConfig(epochs=8, lr=0.01),
    }
    base.update(overrides)
    return TwoTowerConfig(**base)


def queries_for(data: Dataset, user_ids: list[int]) -> Queries:
    idx = data.user_vocab.encode(pl.Series(user_ids, dtype=pl.Int64))
    return Queries.from_history(
        np.arange(len(user_ids)), idx, np.full(len(user_ids), data.as_of), data.positives
    )


@pytest.fixture(scope="module")
def fitted() -> tuple[Dataset, TwoTower]:
    data = group_data()
    return data, TwoTower(config()).fit(data, rng=np.random.default_rng(0))


def group_of(data: Dataset, item_idx: np.ndarray) -> np.ndarray:
    ids = data.item_vocab.decode(item_idx[item_idx >= 0]).to_numpy()
    return ids >= 10


def test_training_reduces_loss_and_separates_the_groups(fitted) -> None:
    data, model = fitted
    epochs = model.train_result.epochs
    assert epochs[-1]["loss"] < epochs[0]["loss"] - 0.2
    # Each user has 8 of the 10 items of its group: the 2 left are the only unseen in-group.
    result = model.retrieve(queries_for(data, [0, 1, 2, 30, 31, 32]), k=2)
    assert (result.item_idx >= 0).all()
    for row, beta in zip(result.item_idx, [False] * 3 + [True] * 3, strict=True):
        assert (group_of(data, row) == beta).all()
    assert model.stats["train_samples_per_s"] > 0 and model.stats["index_build_s"] >= 0


def test_retrieve_excludes_seen_items_and_sorts(fitted) -> None:
    data, model = fitted
    q = queries_for(data, list(range(N_USERS)))
    result = model.retrieve(q, k=12)
    assert result.item_idx.shape == (N_USERS, 12) and result.channel == "two_tower"
    for b in range(N_USERS):
        seen = set(q.history_item[q.history_ptr[b] : q.history_ptr[b + 1]].tolist())
        row = result.item_idx[b]
        assert not seen & set(row[row >= 0].tolist())
        assert (row >= 0).sum() == N_ITEMS - PER_USER  # everything unseen, then padding
        valid = result.score[b][row >= 0]
        assert np.all(np.diff(valid) <= 1e-6)
    assert model.stats["retrieve_queries"] >= N_USERS and model.stats["queries_per_s"] > 0


def test_unknown_user_without_history_still_gets_results(fitted) -> None:
    data, model = fitted
    q = queries_for(data, [12345, 777])
    assert q.history_item.shape[0] == 0 and (q.user_idx == -1).all()
    result = model.retrieve(q, k=5)
    assert (result.item_idx >= 0).all() and np.isfinite(result.score).all()
    # Attributes given with the query are used: an unknown "m" user looks like the beta group.
    codes = data.user_attr_encoder.encode(pl.DataFrame({"gender": ["f", "m"]}))
    q_attr = Queries(
        q.query_id, q.user_idx, q.timestamp, q.history_ptr, q.history_item, q.history_time, codes
    )
    by_attr = model.retrieve(q_attr, k=5).item_idx
    assert group_of(data, by_attr[0]).mean() < 0.5 < group_of(data, by_attr[1]).mean()


def test_add_items_makes_a_new_item_retrievable_immediately() -> None:
    data = group_data()
    model = TwoTower(config()).fit(data, rng=np.random.default_rng(0))
    new = pl.DataFrame(
        {
            "item_id": [100, 101],
            "category": ["beta", "alpha"],
            "created_at": [10_000, 10_000],
            "title": ["beta blue thing100", "alpha red thing101"],
        }
    )
    new_idx = np.array([data.n_items, data.n_items + 1], dtype=np.int32)
    model.add_items(new, new_idx)
    assert len(model.index) == N_ITEMS + 2
    _, ids = model.index.search(model.item_vectors[new_idx], 1)
    assert ids[:, 0].tolist() == new_idx.tolist()
    result = model.retrieve(queries_for(data, [35, 36, 37, 5, 6, 7]), k=N_ITEMS)
    for row, (mine, other) in zip(result.item_idx, [(0, 1)] * 3 + [(1, 0)] * 3, strict=True):
        row = row.tolist()
        assert new_idx[mine] in row
        # Placed by category + text alone: above the new item of the other group.
        assert row.index(new_idx[mine]) < row.index(new_idx[other])
    with pytest.raises(ValueError, match="new, distinct"):
        model.add_items(new.head(1), np.array([3]))


def test_save_and_reload_give_identical_results(fitted, tmp_path) -> None:
    data, model = fitted
    q = queries_for(data, [0, 5, 25, 39, 4242])
    before = model.retrieve(q, k=6)
    path = tmp_path / "tt.npz"
    np.savez(path, **model.state())
    with np.load(path, allow_pickle=False) as npz:
        state = {key: npz[key] for key in npz.files}
    loaded = TwoTower.from_state(model.config, state)
    after = loaded.retrieve(q, k=6)
    assert np.array_equal(before.item_idx, after.item_idx)
    assert np.array_equal(before.score, after.score)
    assert np.array_equal(loaded.item_vectors, model.item_vectors)
    assert loaded.index.metric == METRIC


def test_an_ivf_index_is_calibrated_on_the_training_users_and_keeps_it() -> None:
    data = group_data()
    ivf = IVFIndexConfig(nlist=4, nprobe=1, min_train_points=1, target_recall=1.0)
    index = AutoIndexConfig(exact_up_to=N_ITEMS - 1, ann=ivf)  # the catalogue is above it
    model = TwoTower(config(index=index, train=TrainLoopConfig(epochs=2))).fit(
        data, rng=np.random.default_rng(0)
    )
    stats = model.stats
    assert stats["index_recall_vs_exact"] == 1.0 and stats["index_calibration_s"] > 0
    assert model.index.nprobe == stats["index_nprobe"] > 1  # one list missed some of the top 5
    loaded = TwoTower.from_state(model.config, model.state())
    assert loaded.index.nprobe == model.index.nprobe
    q = queries_for(data, list(range(N_USERS)))
    assert np.array_equal(loaded.retrieve(q).item_idx, model.retrieve(q).item_idx)
    # Recall@k 1.0 on the users it was calibrated on: every list (exact) finds the same top k.
    vectors = model.user_vectors(q)
    found = np.sort(model.index.search(vectors, 5)[1], axis=1)
    model.index.set_nprobe(4)
    np.testing.assert_array_equal(found, np.sort(model.index.search(vectors, 5)[1], axis=1))


def test_index_metric_is_checked_on_load(fitted) -> None:
    _, model = fitted
    state = model.state()
    state["index.metric"] = np.frombuffer(b"l2", dtype=np.uint8).copy()
    with pytest.raises((MetricMismatchError, ValueError)):
        TwoTower.from_state(model.config, state)


def test_hard_negatives_attention_and_exposures_train_on_cpu() -> None:
    data = group_data(seed=1)
    cfg = config(
        hard_negatives=HardNegativeConfig(
            sources=("mined", "category"),
            rank_window=(2, 6),
            warmup_epochs=1,
            easy_hard_ratio=8,
            curriculum_start=4,
        ),
        n_uniform_negatives=8,
        positives="exposures",
        towers=TowerConfig(dim=16, embed_dim=16, hidden=(), history_len=5, pooling="attention"),
        train=TrainLoopConfig(epochs=3, lr=0.01),
    )
    model = TwoTower(cfg).fit(data, rng=np.random.default_rng(0))
    assert model.stats["mining_s"] > 0
    epochs = model.train_result.epochs
    assert epochs[0]["hard_share"] == 0.0 and epochs[-1]["hard_share"] > 0.0
    result = model.retrieve(queries_for(data, [0, 39]), k=3)
    assert (result.item_idx >= 0).all()
    assert str(model.model.user_tower.history_id.weight.device) == "cpu"


def test_fit_is_reproducible_from_the_config_seed() -> None:
    data = group_data()
    # Mined hard negatives only (the default source), after one warm-up epoch.
    hard = HardNegativeConfig(rank_window=(2, 6), easy_hard_ratio=8)
    cfg = config(hard_negatives=hard, train=TrainLoopConfig(epochs=2, lr=0.01))
    a = TwoTower(cfg).fit(data, rng=np.random.default_rng(0))
    assert a.train_result.epochs[-1]["hard_share"] > 0.0
    b = TwoTower(cfg).fit(data, rng=np.random.default_rng(99))
    assert np.array_equal(a.item_vectors, b.item_vectors)


def _numpy_retrieve(model: TwoTower, q: Queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The former NumPy post-processing of the index hits (the reference)."""
    b, index = len(q), model.index
    fetch = max(1, min(k + int(q.history_len.max(initial=0)), len(index)))
    scores, ids = index.search(model.user_vectors(q), fetch)
    ids = np.asarray(ids, dtype=np.int64)
    if q.history_item.shape[0]:
        stride = np.int64(max(int(ids.max(initial=0)), int(q.history_item.max())) + 2)
        seen = q.history_row() * stride + q.history_item.astype(np.int64)
        keys = np.arange(b, dtype=np.int64)[:, None] * stride + ids
        ids = np.where((ids >= 0) & np.isin(keys, seen), -1, ids)
    keep = ids >= 0
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    out_idx = np.full((b, k), -1, dtype=np.int32)
    out_score = np.full((b, k), -np.inf, dtype=np.float32)
    valid = np.take_along_axis(keep, order, axis=1)
    width = order.shape[1]
    out_idx[:, :width] = np.where(valid, np.take_along_axis(ids, order, axis=1), -1)
    taken = np.take_along_axis(scores, order, axis=1)
    out_score[:, :width] = np.where(valid, taken, -np.inf)
    return out_idx, out_score


@pytest.mark.parametrize("b", [1, 2, 200])
def test_retrieve_equals_the_numpy_post_processing(fitted, make_random_queries, b) -> None:
    _, model = fitted
    q = make_random_queries(np.random.default_rng(b), b, N_ITEMS, n_users=N_USERS)
    for k in (1, 5, 30):
        got = model.retrieve(q, k)
        want_idx, want_score = _numpy_retrieve(model, q, k)
        np.testing.assert_array_equal(got.item_idx, want_idx)
        np.testing.assert_array_equal(got.score, want_score)


@pytest.mark.parametrize("b", [1, 5, 64])
def test_lean_user_vectors_equal_the_module_path(fitted, make_random_queries, b, monkeypatch):
    _, model = fitted
    q = make_random_queries(np.random.default_rng(b + 7), b, N_ITEMS + 3, n_users=N_USERS + 2)
    lean = model.user_vectors(q)
    assert model._lean is not None  # served batches take the lean path
    monkeypatch.setattr("funnelrec.recall.two_tower.retriever.LEAN_MAX_USERS", 0)
    np.testing.assert_array_equal(lean, model.user_vectors(q))
