"""Swing: hand-computed weights, a pure-Python oracle, the per-item user cap, determinism,
state round trip, and that it stays out of the default channel set."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction
from itertools import combinations

import numba
import numpy as np
import polars as pl
import pytest

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError
from funnelrec.recall.base import Queries
from funnelrec.recall.itemcf.sequences import build_sequences
from funnelrec.recall.swing import Swing, SwingConfig
from funnelrec.recall.swing.model import capped_item_users

RNG = np.random.default_rng(0)


def dataset(rows: list[tuple[int, int, int]]) -> Dataset:
    """A Dataset of ``(user_id, item_id, timestamp)`` click rows (ids in index order)."""
    users, items, times = zip(*rows, strict=True)
    return Dataset.build(
        pl.DataFrame(
            {
                "user_id": pl.Series(users, dtype=pl.Int64),
                "item_id": pl.Series(items, dtype=pl.Int64),
                "timestamp": pl.Series(times, dtype=pl.Int64),
                "event": ["click"] * len(rows),
                "value": pl.Series([1.0] * len(rows), dtype=pl.Float32),
            }
        )
    )


# Items A=0, B=1, C=2, D=3. u0: {A, B, C}; u1: {A, B}; u2: {A, B, C, D}. A is the item
# whose interactions are timed so that the cap keeps u1 and u2 (the most recent).
HAND = [
    (0, 0, 10), (0, 1, 11), (0, 2, 12),
    (1, 0, 20), (1, 1, 21),
    (2, 0, 30), (2, 1, 31), (2, 2, 32), (2, 3, 33),
]  # fmt: skip


def as_dict(model: Swing) -> dict[int, dict[int, float]]:
    idx, sim = model.neighbor_idx, model.neighbor_sim
    return {
        i: {int(j): float(s) for j, s in zip(idx[i], sim[i], strict=True) if j >= 0}
        for i in range(idx.shape[0])
    }


def test_unweighted_hand_example():
    # Pairs of A's users: (u0, u1) share {A, B}: 1/3; (u0, u2) share {A, B, C}: 1/4 each to
    # B, C; (u1, u2) share {A, B}: 1/3. D has one user: no pair, no neighbours.
    model = Swing(SwingConfig(neighbors=5, user_beta=0.0)).fit(dataset(HAND), rng=RNG)
    got = as_dict(model)
    want = {
        0: {1: 11 / 12, 2: 1 / 4},
        1: {0: 11 / 12, 2: 1 / 4},
        2: {0: 1 / 4, 1: 1 / 4},
        3: {},
    }
    assert got.keys() == want.keys()
    for i in want:
        assert got[i] == pytest.approx(want[i], rel=1e-6), i
    assert model.neighbor_idx[0].tolist()[:2] == [1, 2]  # best first


def test_user_weights_hand_example():
    # user_alpha=0, user_beta=1: w_u = 1 / |I_u| = 1/3, 1/2, 1/4.
    cfg = SwingConfig(neighbors=5, user_alpha=0.0, user_beta=1.0, alpha=1.0)
    got = as_dict(Swing(cfg).fit(dataset(HAND), rng=RNG))
    w = [Fraction(1, 3), Fraction(1, 2), Fraction(1, 4)]
    ab = w[0] * w[1] / 3 + w[0] * w[2] / 4 + w[1] * w[2] / 3
    assert got[0][1] == pytest.approx(float(ab), rel=1e-6)
    assert got[0][2] == pytest.approx(float(w[0] * w[2] / 4), rel=1e-6)


def test_cap_keeps_the_most_recent_users():
    # Capped at 2, A keeps u1 and u2 (times 20, 30): only (u1, u2), sharing {A, B}: 1/3 to B.
    # B (3 users) keeps u1 and u2 too; C has only 2 users, so its row is unchanged.
    cfg = SwingConfig(neighbors=5, user_beta=0.0, max_users_per_item=2)
    got = as_dict(Swing(cfg).fit(dataset(HAND), rng=RNG))
    assert got[0] == pytest.approx({1: 1 / 3})
    assert got[1] == pytest.approx({0: 1 / 3})
    assert got[2] == pytest.approx({0: 1 / 4, 1: 1 / 4})


def test_capped_item_users_breaks_time_ties_by_user():
    df = pl.DataFrame({"user_idx": [0, 1, 2, 3], "item_idx": [0] * 4, "timestamp": [5, 9, 9, 9]})
    ptr, users = capped_item_users(build_sequences(df, 4, 1), 2)
    assert ptr.tolist() == [0, 2]
    assert users.tolist() == [1, 2]


def reference(rows, cfg: SwingConfig, n_items: int) -> dict[int, dict[int, float]]:
    """Swing by the definition, over dense ids (no cap)."""
    items_of: dict[int, set[int]] = defaultdict(set)
    for u, i, _ in rows:
        items_of[u].add(i)
    users_of: dict[int, list[int]] = defaultdict(list)
    for u in sorted(items_of):
        for i in items_of[u]:
            users_of[i].append(u)
    w = {u: (len(s) + cfg.user_alpha) ** -cfg.user_beta for u, s in items_of.items()}
    sim: dict[int, dict[int, float]] = {i: defaultdict(float) for i in range(n_items)}
    for i, users in users_of.items():
        for u, v in combinations(users, 2):
            common = items_of[u] & items_of[v]
            for j in common - {i}:
                sim[i][j] += w[u] * w[v] / (cfg.alpha + len(common))
    return {i: dict(row) for i, row in sim.items()}


def random_rows(seed: int, n: int = 600, n_users: int = 40, n_items: int = 60):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    t = rng.integers(0, 10_000, n)
    # Every id appears once up front, so dense indices equal the ids.
    head = [(k, k % n_items, -1) for k in range(n_users)] + [
        (k % n_users, k, -1) for k in range(n_items)
    ]
    return head + list(zip(u.tolist(), i.tolist(), t.tolist(), strict=True))


def test_matches_the_definition_on_random_data():
    rows = random_rows(3)
    data = dataset(rows)
    assert data.n_items == 60 and data.n_users == 40
    cfg = SwingConfig(neighbors=60, max_users_per_item=None)
    got = as_dict(Swing(cfg).fit(data, rng=RNG))
    want = reference(rows, cfg, 60)
    for i in range(60):
        assert got[i].keys() == want[i].keys(), i
        for j, v in want[i].items():
            assert got[i][j] == pytest.approx(v, rel=1e-6), (i, j)


def test_fit_is_deterministic_across_thread_counts():
    data = dataset(random_rows(5, n=2000))
    cfg = SwingConfig(neighbors=10, max_users_per_item=20)
    a = Swing(cfg).fit(data, rng=np.random.default_rng(1))
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = Swing(cfg).fit(data, rng=np.random.default_rng(2))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a.neighbor_idx, b.neighbor_idx)
    np.testing.assert_array_equal(a.neighbor_sim, b.neighbor_sim)


def test_state_round_trip_and_retrieval():
    data = dataset(random_rows(7, n=1500))
    cfg = SwingConfig(neighbors=10, k=15)
    model = Swing(cfg).fit(data, rng=RNG)
    loaded = Swing.from_state(cfg, {k: np.array(v) for k, v in model.state().items()})
    users = np.arange(10, dtype=np.int32)
    q = Queries.from_history(np.arange(10), users, np.full(10, 20_000), data.positives)
    a, b = model.retrieve(q), loaded.retrieve(q)
    assert a.channel == "swing"
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    np.testing.assert_array_equal(a.score, b.score)
    assert (a.item_idx >= 0).all()


def test_bad_state_is_a_one_line_error():
    with pytest.raises(ConfigError, match="Swing state needs exactly"):
        Swing.from_state(SwingConfig(), {"neighbor_idx": np.zeros((1, 1))})


def test_swing_is_opt_in():
    assert "swing" not in {c.kind for c in ExperimentConfig().recall.channels.values()}
