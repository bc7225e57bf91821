"""A hand-computed three-user case for the time-decayed ItemCF weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from funnelrec.recall.itemcf import ItemCF, ItemCFConfig

DAY = 86_400
A, B, C = 0, 1, 2  # item ids 10, 11, 12 -> dense 0, 1, 2

# user 1: a(0) b(1d) c(2d); user 2: b(0) a(1d); user 3: c(0) a(0) a(3d) -> deduped to c(0) a(3d)
ROWS = [
    (1, 10, 0),
    (1, 11, DAY),
    (1, 12, 2 * DAY),
    (2, 11, 0),
    (2, 10, DAY),
    (3, 12, 0),
    (3, 10, 0),
    (3, 10, 3 * DAY),
]
CFG = ItemCFConfig(
    neighbors=2,
    window=None,
    time_decay="exponential",
    time_half_life_s=DAY,
    position_decay=0.5,
    forward_weight=1.0,
    backward_weight=0.5,
    user_activity_penalty=True,
    alpha=0.5,
    pair_half_life_s=None,
)
L3, L4 = math.log(3), math.log(4)  # act = 1 / log(1 + |I_u|): |I_1| = 3, |I_2| = |I_3| = 2
# C[i][j], term by term: act * time * position * direction
EXPECTED_C = {
    (A, B): 0.5 / L4 + 0.5 * 0.5 / L3,  # u1 fwd 1d; u2 bwd 1d
    (B, A): 0.5 * 0.5 / L4 + 0.5 / L3,  # u1 bwd 1d; u2 fwd 1d
    (A, C): 0.25 * 0.5 / L4 + 0.125 * 0.5 / L3,  # u1 fwd 2d, 2 steps; u3 bwd 3d
    (C, A): 0.25 * 0.5 * 0.5 / L4 + 0.125 / L3,  # u1 bwd 2d, 2 steps; u3 fwd 3d
    (B, C): 0.5 / L4,  # u1 fwd 1d
    (C, B): 0.5 * 0.5 / L4,  # u1 bwd 1d
}
N_USERS = {A: 3, B: 2, C: 2}


def expected_sim(i: int, j: int) -> float:
    return EXPECTED_C[i, j] / math.sqrt(N_USERS[i] * N_USERS[j])


def test_hand_computed_similarities(make_dataset):
    model = ItemCF(CFG).fit(make_dataset(ROWS), rng=np.random.default_rng(0))
    dense = model.similarity_matrix().toarray()
    for i, j in EXPECTED_C:
        assert dense[i, j] == pytest.approx(expected_sim(i, j), rel=1e-6), (i, j)
    assert np.all(np.diag(dense) == 0)
    # rows sorted best first
    for i in range(3):
        order = sorted((j for j in range(3) if j != i), key=lambda j: -expected_sim(i, j))
        assert model.neighbor_idx[i].tolist() == order


def test_hand_window_drops_far_pairs(make_dataset):
    cfg = ItemCFConfig.model_validate({**CFG.model_dump(), "window": 1})
    model = ItemCF(cfg).fit(make_dataset(ROWS), rng=np.random.default_rng(0))
    dense = model.similarity_matrix().toarray()
    # user 1's a..c pair is 2 steps apart and dropped; user 3's c->a stays
    assert dense[A, C] == pytest.approx(0.125 * 0.5 / L3 / math.sqrt(6), rel=1e-6)
    assert dense[C, A] == pytest.approx(0.125 / L3 / math.sqrt(6), rel=1e-6)
    assert dense[A, B] == pytest.approx(expected_sim(A, B), rel=1e-6)


def test_hand_alpha_and_created_decay(make_dataset):
    created = {10: 0, 11: 2 * DAY, 12: 2 * DAY}
    cfg = ItemCFConfig.model_validate(
        {**CFG.model_dump(), "alpha": 1.0, "created_half_life_s": 2.0 * DAY}
    )
    model = ItemCF(cfg).fit(make_dataset(ROWS, created), rng=np.random.default_rng(0))
    dense = model.similarity_matrix().toarray()
    # alpha = 1: C / |N(i)|; created gap a-b = a-c = 2 days -> 0.5, b-c = 0 -> 1
    assert dense[A, B] == pytest.approx(EXPECTED_C[A, B] * 0.5 / 3, rel=1e-6)
    assert dense[C, A] == pytest.approx(EXPECTED_C[C, A] * 0.5 / 2, rel=1e-6)
    assert dense[B, C] == pytest.approx(EXPECTED_C[B, C] / 2, rel=1e-6)


def test_plain_counts_co_occurrence(make_dataset):
    model = ItemCF(ItemCFConfig.plain()).fit(make_dataset(ROWS), rng=np.random.default_rng(0))
    dense = model.similarity_matrix().toarray()
    # co-occurrence counts: a-b 2 users, a-c 2, b-c 1
    assert dense[A, B] == pytest.approx(2 / math.sqrt(6), rel=1e-6)
    assert dense[A, C] == pytest.approx(2 / math.sqrt(6), rel=1e-6)
    assert dense[B, C] == pytest.approx(1 / 2, rel=1e-6)
    np.testing.assert_allclose(dense, dense.T, rtol=1e-7)


def test_created_decay_is_off_without_created_at(make_dataset):
    data = make_dataset(ROWS)  # no items table
    with_decay = ItemCFConfig.model_validate({**CFG.model_dump(), "created_half_life_s": 1.0})
    a = ItemCF(CFG).fit(data, rng=np.random.default_rng(0))
    b = ItemCF(with_decay).fit(data, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a.neighbor_idx, b.neighbor_idx)
    np.testing.assert_array_equal(a.neighbor_sim, b.neighbor_sim)
