"""ItemCF retrieval: history weighting, exclusions, padding, agreement with the oracle."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from funnelrec.recall.base import Queries
from funnelrec.recall.history import recent_items
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.itemcf.reference import textbook_scores
from funnelrec.recall.topk import sparse_topk

DAY = 86_400

# neighbours of 0: 1 (0.9), 2 (0.5); of 1: 2 (0.8), 3 (0.1); of 2: 3 (0.7), 0 (0.2); of 3: 0 (0.6)
HAND_STATE = {
    "neighbor_idx": np.array([[1, 2], [2, 3], [3, 0], [0, -1]], dtype=np.int32),
    "neighbor_sim": np.array([[0.9, 0.5], [0.8, 0.1], [0.7, 0.2], [0.6, 0.0]], dtype=np.float32),
}


def make_queries(histories, user_idx=None, timestamp=None, times=None) -> Queries:
    """Queries from per-query item lists (oldest first); times default to 0, 1, 2, ..."""
    b = len(histories)
    lens = [len(h) for h in histories]
    ptr = np.zeros(b + 1, dtype=np.int64)
    np.cumsum(lens, out=ptr[1:])
    items = np.array([i for h in histories for i in h], dtype=np.int32)
    if times is None:
        times = [t for n in lens for t in range(n)]
    return Queries(
        np.arange(b, dtype=np.int64),
        np.zeros(b, dtype=np.int32) if user_idx is None else np.asarray(user_idx, np.int32),
        np.full(b, 100, dtype=np.int64) if timestamp is None else np.asarray(timestamp, np.int64),
        ptr,
        items,
        np.asarray(times, dtype=np.int64),
    )


def hand_model(**overrides) -> ItemCF:
    cfg = ItemCFConfig(neighbors=2, k=3, recency_decay=0.5, **overrides)
    return ItemCF.from_state(cfg, HAND_STATE)


def test_hand_ranking_excludes_seen():
    # history 0 then 1: weights 1 (item 1, newest) and 0.5 (item 0)
    # scores: 2 = 0.8 + 0.5 * 0.5 = 1.05, 1 = 0.45 (seen), 3 = 0.1, 0 = seen
    res = hand_model().retrieve(make_queries([[0, 1]]))
    assert res.channel == "itemcf"
    assert res.item_idx.tolist() == [[2, 3, -1]]
    np.testing.assert_allclose(res.score[0, :2], [1.05, 0.1], rtol=1e-6)
    assert res.score[0, 2] == -np.inf
    assert res.item_idx.dtype == np.int32 and res.score.dtype == np.float32


def test_hand_ranking_keeps_seen_when_asked():
    res = hand_model(exclude_seen=False).retrieve(make_queries([[0, 1]]))
    assert res.item_idx.tolist() == [[2, 1, 3]]
    np.testing.assert_allclose(res.score[0], [1.05, 0.45, 0.1], rtol=1e-6)


def test_repeats_count_once_at_their_latest_position():
    a = hand_model().retrieve(make_queries([[1, 0, 1]]))
    b = hand_model().retrieve(make_queries([[0, 1]]))
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    np.testing.assert_array_equal(a.score, b.score)


def test_history_len_keeps_most_recent():
    res = hand_model(history_len=1, exclude_seen=False).retrieve(make_queries([[0, 1]]))
    assert res.item_idx.tolist() == [[2, 3, -1]]
    np.testing.assert_allclose(res.score[0, :2], [0.8, 0.1], rtol=1e-6)


def test_unknown_user_and_empty_history_are_padding():
    q = make_queries([[0, 1], [], [2]], user_idx=[-1, 3, 5])
    res = hand_model().retrieve(q, k=4)
    assert res.item_idx.shape == (3, 4)
    assert (res.item_idx[:2] == -1).all()
    assert np.isneginf(res.score[:2]).all()
    assert res.item_idx[2].tolist() == [3, 0, -1, -1]


def test_unknown_items_in_history_are_ignored():
    a = hand_model().retrieve(make_queries([[0, 1]]))
    b = hand_model(exclude_seen=True).retrieve(make_queries([[0, -1, 17, 1]]))
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    np.testing.assert_array_equal(a.score, b.score)


def test_history_half_life():
    # item 1 at t=100 (age 0) weight 1; item 0 at t=100 - 1 day: 0.5 (recency) * 0.5 (age)
    model = hand_model(history_half_life_s=float(DAY), exclude_seen=False)
    q = make_queries([[0, 1]], timestamp=[DAY + 100], times=[100, DAY + 100])
    res = model.retrieve(q)
    np.testing.assert_allclose(res.score[0], [0.8 + 0.25 * 0.5, 0.25 * 0.9, 0.1], rtol=1e-6)


def test_retrieval_ties_by_smaller_index():
    state = {
        "neighbor_idx": np.array([[3, 1, 2], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]], np.int32),
        "neighbor_sim": np.array([[0.5, 0.5, 0.5], [0, 0, 0], [0, 0, 0], [0, 0, 0]], np.float32),
    }
    model = ItemCF.from_state(ItemCFConfig(neighbors=3, k=2), state)
    assert model.retrieve(make_queries([[0]])).item_idx.tolist() == [[1, 2]]


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_matches_textbook_scores(make_dataset, make_rows, exclude_seen):
    rng = np.random.default_rng(3)
    data = make_dataset(make_rows(rng, 500, 30, 50))
    cfg = ItemCFConfig(
        k=15, history_len=4, history_half_life_s=2.0 * DAY, exclude_seen=exclude_seen
    )
    model = ItemCF(cfg).fit(data, rng=rng)
    pos = data.positives
    users = np.array([0, 1, 2, 3, 4, 5, -1], dtype=np.int32)
    q = Queries.from_history(
        np.arange(users.shape[0]), users, np.full(users.shape[0], 6 * DAY), pos
    )
    res = model.retrieve(q)
    ref = textbook_scores(q, model.neighbor_idx, model.neighbor_sim, cfg)
    for b in range(len(q)):
        seen = set(q.history_item[q.history_ptr[b] : q.history_ptr[b + 1]].tolist())
        want = {j: s for j, s in ref[b].items() if not (exclude_seen and j in seen) and s > 0}
        best = sorted(want.items(), key=lambda js: (-js[1], js[0]))[: cfg.k]
        got = [
            (int(j), float(s)) for j, s in zip(res.item_idx[b], res.score[b], strict=True) if j >= 0
        ]
        assert len(got) == len(best)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in best], rtol=1e-5)
        for j, s in got:
            assert want[j] == pytest.approx(s, rel=1e-5)
        if exclude_seen:
            assert not seen & {j for j, _ in got}


def _scipy_retrieve(model: ItemCF, q: Queries) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """The channel as it was written with scipy.sparse end to end (the reference)."""
    cfg = model.config
    known = q.user_idx[q.history_row()] >= 0
    recent = recent_items(q, cfg.history_len, np.ones(model.n_items, dtype=bool), known)
    weight = np.power(cfg.recency_decay, recent.rank.astype(np.float64))
    if cfg.history_half_life_s is not None:
        age = np.maximum(q.timestamp[recent.row] - q.history_time[recent.pos], 0)
        weight = weight * np.exp2(-age.astype(np.float64) / cfg.history_half_life_s)
    hist = sp.csr_matrix(
        (weight.astype(np.float32), (recent.row, recent.item)),
        shape=(len(q), model.n_items),
        dtype=np.float32,
    )
    scores = (hist @ model.similarity_matrix()).tocsr()
    seen = (q.history_ptr, q.history_item) if cfg.exclude_seen else (None, None)
    return (*sparse_topk(scores, cfg.k, *seen), hist)


@pytest.mark.parametrize("b", [1, 2, 300])
@pytest.mark.parametrize("exclude_seen", [True, False])
@pytest.mark.parametrize("half_life", [None, 1e8])
def test_retrieve_equals_the_scipy_product_bit_for_bit(
    make_dataset, make_rows, make_random_queries, b, exclude_seen, half_life
):
    rng = np.random.default_rng(b)
    data = make_dataset(make_rows(rng, 3000, 80, 120))
    cfg = ItemCFConfig(
        k=30, history_len=8, exclude_seen=exclude_seen, history_half_life_s=half_life
    )
    model = ItemCF(cfg).fit(data, rng=rng)
    q = make_random_queries(rng, b, model.n_items, n_users=80)
    res = model.retrieve(q)
    want_idx, want_score, hist = _scipy_retrieve(model, q)
    np.testing.assert_array_equal(res.item_idx, want_idx)
    np.testing.assert_array_equal(res.score, want_score)
    weights = model.history_weights(q)  # what recall evidence multiplies with
    assert (weights != hist).nnz == 0 and weights.has_canonical_format
