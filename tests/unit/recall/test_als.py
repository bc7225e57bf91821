"""ALS through implicit: seeding, the fold-in against implicit's own user step, retrieval
rules, single-threaded retrieval and state."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import threadpoolctl

import funnelrec.recall.als as als_module
from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError
from funnelrec.recall.als import ALS, ALSConfig, fold_in
from funnelrec.recall.base import Queries

SMALL = ALSConfig(factors=8, iterations=5, k=10)


def _dataset(seed: int = 0, n_users: int = 60, n_items: int = 30) -> Dataset:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < 0.2
    users, items = np.nonzero(mask)
    inter = pl.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "timestamp": np.arange(users.shape[0]),
            "event": ["click"] * users.shape[0],
            "value": [1.0] * users.shape[0],
        }
    )
    # item 999 is in the catalogue but nobody interacted with it.
    return Dataset.build(inter, pl.DataFrame({"item_id": [*range(n_items), 999]}))


def _queries(data: Dataset, users: list[int]) -> Queries:
    idx = data.user_vocab.encode(pl.Series(users))
    n = len(users)
    return Queries.from_history(np.arange(n), idx, np.full(n, data.as_of), data.positives)


def test_same_seed_same_factors_other_seed_other_factors() -> None:
    data = _dataset()
    a = ALS(SMALL).fit(data, rng=np.random.default_rng(1))
    b = ALS(SMALL).fit(data, rng=np.random.default_rng(1))
    c = ALS(SMALL).fit(data, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    assert not np.allclose(a.item_factors, c.item_factors)


def test_fit_asks_implicit_for_the_seeded_cpu_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import implicit.als
    import implicit.cpu.als

    seen: dict[str, Any] = {}
    real = implicit.als.AlternatingLeastSquares

    def spy(**kwargs: Any) -> Any:
        seen.update(kwargs)
        seen["model"] = real(**kwargs)
        return seen["model"]

    monkeypatch.setattr(implicit.als, "AlternatingLeastSquares", spy)
    ALS(SMALL).fit(_dataset(), rng=np.random.default_rng(0))
    assert seen["use_gpu"] is False
    assert isinstance(seen["model"], implicit.cpu.als.AlternatingLeastSquares)
    assert isinstance(seen["random_state"], int)
    assert (seen["factors"], seen["alpha"], seen["iterations"]) == (8, 40.0, 5)
    assert seen["num_threads"] == 1  # a small fit stays on one thread (fit_threads=None)


def test_fold_in_matches_implicits_recalculate_user() -> None:
    import implicit.cpu.als

    model = ALS(SMALL).fit(_dataset(), rng=np.random.default_rng(0))
    rng = np.random.default_rng(5)
    dense = (rng.random((6, model.item_factors.shape[0])) < 0.15).astype(np.float32)
    dense[5] = 0  # a user without items gets zeros
    x = sp.csr_matrix(dense)
    ref = implicit.cpu.als.AlternatingLeastSquares(
        factors=8, regularization=SMALL.regularization, alpha=SMALL.alpha, num_threads=1
    )
    ref.item_factors = model.item_factors.copy()
    ref.user_factors = model.user_factors.copy()
    expected = ref.recalculate_user(np.arange(6), x)
    got = fold_in(x, model.item_factors, SMALL.regularization, SMALL.alpha)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    assert (got[5] == 0).all()


def test_known_users_use_fitted_factors_and_unknown_ones_fold_in() -> None:
    data = _dataset()
    model = ALS(SMALL).fit(data, rng=np.random.default_rng(0))
    queries = _queries(data, [0, 1])
    result = model.retrieve(queries)
    user = int(queries.user_idx[0])
    scores = model.item_factors @ model.user_factors[user]
    top = int(result.item_idx[0, 0])
    assert result.score[0, 0] == pytest.approx(scores[top], rel=1e-5)
    # The same histories as unknown users: scored by the fold-in factors.
    anonymous = Queries(
        queries.query_id,
        np.full(2, -1, np.int32),
        queries.timestamp,
        queries.history_ptr,
        queries.history_item,
        queries.history_time,
    )
    folded = model.retrieve(anonymous)
    start, end = queries.history_ptr[0], queries.history_ptr[1]
    x = sp.csr_matrix(
        (
            np.ones(end - start, np.float32),
            (np.zeros(end - start), queries.history_item[start:end]),
        ),
        shape=(1, model.item_factors.shape[0]),
    )
    factor = fold_in(x, model.item_factors, SMALL.regularization, SMALL.alpha)[0]
    top = int(folded.item_idx[0, 0])
    assert folded.score[0, 0] == pytest.approx(float(model.item_factors[top] @ factor), rel=1e-4)


def test_seen_untrained_and_empty_history_rules() -> None:
    data = _dataset()
    model = ALS(SMALL.model_copy(update={"k": 40})).fit(data, rng=np.random.default_rng(0))
    queries = _queries(data, [0, 12345])  # a known user, a user with no history
    result = model.retrieve(queries)
    seen = set(queries.history_item[: queries.history_ptr[1]].tolist())
    returned = set(result.item_idx[0][result.item_idx[0] >= 0].tolist())
    assert returned and not returned & seen
    never = int(data.item_vocab.encode(pl.Series([999]))[0])
    assert never not in returned  # no positive in training: no meaningful score
    assert (result.item_idx[1] == -1).all()
    assert model.retrieve(queries.take(np.zeros(0, np.int64))).item_idx.shape == (0, 40)


def test_retrieve_runs_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _dataset()
    model = ALS(SMALL).fit(data, rng=np.random.default_rng(0))
    threads: list[int] = []
    real = als_module.fold_in

    def spy(*args: Any) -> Any:
        threads.extend(info["num_threads"] for info in threadpoolctl.threadpool_info())
        return real(*args)

    monkeypatch.setattr(als_module, "fold_in", spy)
    queries = _queries(data, [0])
    unknown = Queries(
        queries.query_id,
        np.full(1, -1, np.int32),
        queries.timestamp,
        queries.history_ptr,
        queries.history_item,
        queries.history_time,
    )
    model.retrieve(unknown)
    assert threads and set(threads) == {1}


def test_state_round_trip_and_validation() -> None:
    data = _dataset()
    model = ALS(SMALL).fit(data, rng=np.random.default_rng(0))
    state = model.state()
    assert set(state) == {"user_factors", "item_factors"}
    assert state["item_factors"].shape == (data.n_items, 8)
    restored = ALS.from_state(SMALL, state)
    queries = _queries(data, [0, 1, 2])
    np.testing.assert_array_equal(
        restored.retrieve(queries).item_idx, model.retrieve(queries).item_idx
    )
    with pytest.raises(ConfigError, match="exactly"):
        ALS.from_state(SMALL, {"user_factors": state["user_factors"]})
    with pytest.raises(ConfigError, match="item_factors must be"):
        ALS.from_state(SMALL, {**state, "item_factors": np.zeros((3, 4), np.float32)})
