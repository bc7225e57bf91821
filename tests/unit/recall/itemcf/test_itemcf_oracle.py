"""ItemCF fit agrees with the textbook dict-of-dicts oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.itemcf.reference import textbook_itemcf

DAY = 86_400

CONFIGS = {
    "default": ItemCFConfig(),
    "plain": ItemCFConfig.plain(),
    "window": ItemCFConfig(window=2),
    "asymmetric": ItemCFConfig(forward_weight=1.0, backward_weight=0.2, position_decay=0.6),
    "forward_only": ItemCFConfig(backward_weight=0.0),
    "alpha_0.2": ItemCFConfig(alpha=0.2),
    "alpha_1": ItemCFConfig(alpha=1.0, user_activity_penalty=False),
    "created": ItemCFConfig(created_half_life_s=3.0 * DAY),
    "pair_age": ItemCFConfig(pair_half_life_s=2.0 * DAY),
    "pair_age_all": ItemCFConfig(pair_half_life_s=0.5 * DAY, window=None, backward_weight=0.3),
    "short_half_life": ItemCFConfig(time_half_life_s=3600.0, window=None),
    "small_k": ItemCFConfig(neighbors=3, window=4),
    "plain_small_k": ItemCFConfig.plain(neighbors=2),
}


@pytest.fixture(scope="module")
def random_data(make_dataset, make_rows):
    rng = np.random.default_rng(7)
    rows = make_rows(rng, 600, 40, 60)
    created = {i: int(rng.integers(0, 30 * DAY)) for i in range(60)}
    return make_dataset(rows, created)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_textbook(name, random_data, same_neighbors):
    cfg = CONFIGS[name]
    model = ItemCF(cfg).fit(random_data, rng=np.random.default_rng(0))
    ref_idx, ref_sim = textbook_itemcf(random_data, cfg)
    assert model.neighbor_idx.shape == (random_data.n_items, cfg.neighbors)
    same_neighbors(model.neighbor_idx, model.neighbor_sim, ref_idx, ref_sim)


@pytest.mark.parametrize("name", ["plain", "plain_small_k"])
def test_plain_matches_textbook_exactly(name, random_data):
    """Unit weights: every tie is a true tie in both, so the tables are identical."""
    cfg = CONFIGS[name]
    model = ItemCF(cfg).fit(random_data, rng=np.random.default_rng(0))
    ref_idx, ref_sim = textbook_itemcf(random_data, cfg)
    np.testing.assert_array_equal(model.neighbor_idx, ref_idx)
    np.testing.assert_allclose(model.neighbor_sim, ref_sim, rtol=1e-6)


def test_plain_is_cosine_of_binary_matrix(random_data):
    """plain() == cosine similarity of the binary user x item matrix (off-diagonal)."""
    cfg = ItemCFConfig.plain(neighbors=random_data.n_items)
    model = ItemCF(cfg).fit(random_data, rng=np.random.default_rng(0))
    pos = random_data.positives
    x = np.zeros((random_data.n_users, random_data.n_items))
    x[pos["user_idx"].to_numpy(), pos["item_idx"].to_numpy()] = 1.0
    co = x.T @ x
    n = np.diag(co).copy()
    cos = co / np.sqrt(np.outer(n, n).clip(min=1))
    np.fill_diagonal(cos, 0.0)
    dense = model.similarity_matrix().toarray()
    np.testing.assert_allclose(dense, cos, rtol=1e-6, atol=1e-12)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_rows=st.integers(0, 120),
    n_users=st.integers(1, 8),
    n_items=st.integers(1, 15),
    window=st.none() | st.integers(1, 6),
    time_decay=st.sampled_from(["exponential", "none"]),
    half_life_days=st.floats(0.05, 5.0),
    position_decay=st.floats(0.1, 1.0),
    forward_weight=st.floats(0.0, 2.0),
    backward_weight=st.floats(0.0, 2.0),
    penalty=st.booleans(),
    created=st.none() | st.floats(0.5, 20.0),
    alpha=st.floats(0.0, 1.0),
    neighbors=st.integers(1, 16),
)
def test_property_matches_textbook(
    make_dataset,
    make_rows,
    same_neighbors,
    seed,
    n_rows,
    n_users,
    n_items,
    window,
    time_decay,
    half_life_days,
    position_decay,
    forward_weight,
    backward_weight,
    penalty,
    created,
    alpha,
    neighbors,
):
    rng = np.random.default_rng(seed)
    rows = make_rows(rng, n_rows, n_users, n_items, span_s=5 * DAY)
    created_at = {i: int(rng.integers(0, 20 * DAY)) for i in range(n_items)}
    data = make_dataset(rows, created_at)
    cfg = ItemCFConfig(
        window=window,
        time_decay=time_decay,
        time_half_life_s=half_life_days * DAY,
        position_decay=position_decay,
        forward_weight=forward_weight,
        backward_weight=backward_weight,
        user_activity_penalty=penalty,
        created_half_life_s=None if created is None else created * DAY,
        alpha=alpha,
        neighbors=neighbors,
    )
    model = ItemCF(cfg).fit(data, rng=rng)
    ref_idx, ref_sim = textbook_itemcf(data, cfg)
    same_neighbors(model.neighbor_idx, model.neighbor_sim, ref_idx, ref_sim)
