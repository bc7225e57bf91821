"""EASE: the closed form against a hand computation and a float64 brute force, the memory
guard, retrieval rules and state."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError
from funnelrec.recall.base import Queries
from funnelrec.recall.ease import (
    EASE,
    EASEConfig,
    column_index,
    dense_topk,
    ease_weights,
    history_columns,
)
from funnelrec.recall.sparse import row_ptr


def _dataset(pairs: list[tuple[int, int]], items: list[int] | None = None) -> Dataset:
    users, item_ids = zip(*pairs, strict=True)
    inter = pl.DataFrame(
        {
            "user_id": list(users),
            "item_id": list(item_ids),
            "timestamp": list(range(len(pairs))),
            "event": ["click"] * len(pairs),
            "value": [1.0] * len(pairs),
        }
    )
    table = None if items is None else pl.DataFrame({"item_id": items})
    return Dataset.build(inter, table)


def _queries(data: Dataset, users: list[int]) -> Queries:
    idx = data.user_vocab.encode(pl.Series(users))
    n = len(users)
    return Queries.from_history(np.arange(n), idx, np.full(n, data.as_of), data.positives)


def _brute_force(x: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


RNG_X = (np.random.default_rng(3).random((40, 9)) < 0.35).astype(np.float64)


def test_two_items_everyone_saw_match_the_hand_computation() -> None:
    # G + lam I = [[n + lam, n], [n, n + lam]]: P_01 / P_11 = -n / (n + lam), so B_01 = n/(n+lam).
    n, lam = 6, 2.0
    x = sp.csr_matrix(np.ones((n, 2), dtype=np.float32))
    b = ease_weights(x, lam)
    assert b[0, 1] == pytest.approx(n / (n + lam), rel=1e-6)
    assert b[1, 0] == pytest.approx(n / (n + lam), rel=1e-6)
    assert b[0, 0] == b[1, 1] == 0.0


@pytest.mark.parametrize("lam", [0.5, 10.0, 500.0])
def test_weights_match_a_float64_brute_force(lam: float) -> None:
    x = RNG_X[:, RNG_X.sum(axis=0) > 0]
    got = ease_weights(sp.csr_matrix(x.astype(np.float32)), lam)
    expected = _brute_force(x, lam)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_blocked_gram_and_mirror_match_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 2 columns (forced) give the same B as the one-block computation."""
    import funnelrec.recall.ease as ease_module

    x = sp.csr_matrix(RNG_X.astype(np.float32))
    whole = ease_weights(x, 3.0)
    monkeypatch.setattr(ease_module, "SCORE_BLOCK", 2 * x.shape[1])
    np.testing.assert_allclose(ease_weights(x, 3.0), whole, atol=1e-6)


def test_retrieve_scores_history_times_b_without_seen_items() -> None:
    pairs = [(u, i) for u in range(40) for i in range(9) if RNG_X[u, i]]
    data = _dataset(pairs)
    model = EASE(EASEConfig(regularization=4.0, k=9)).fit(data)
    x = np.zeros((data.n_users, data.n_items))
    x[data.positives["user_idx"].to_numpy(), data.positives["item_idx"].to_numpy()] = 1.0
    b = _brute_force(x, 4.0)
    users = [0, 1, 2, 3]
    result = model.retrieve(_queries(data, users))
    for row, user in enumerate(data.user_vocab.encode(pl.Series(users))):
        scores = x[user] @ b
        unseen = np.flatnonzero(x[user] == 0)
        order = unseen[np.argsort(-scores[unseen], kind="stable")]
        got = result.item_idx[row][result.item_idx[row] >= 0]
        assert got.tolist() == order.tolist()
        np.testing.assert_allclose(result.score[row][: got.shape[0]], scores[order], atol=1e-5)


def test_repeated_events_count_once() -> None:
    once = _dataset([(1, 10), (1, 11), (2, 10), (2, 11), (3, 10)])
    twice = _dataset([(1, 10), (1, 10), (1, 11), (2, 10), (2, 11), (3, 10), (3, 10)])
    a = EASE(EASEConfig(regularization=1.0)).fit(once)
    b = EASE(EASEConfig(regularization=1.0)).fit(twice)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_max_items_keeps_the_most_popular(caplog: pytest.LogCaptureFixture) -> None:
    # Item popularity (distinct users): 10 -> 4, 11 -> 3, 12 -> 2, 13 -> 1; 14 has no positive.
    pairs = [(1, 10), (2, 10), (3, 10), (4, 10), (1, 11), (2, 11), (3, 11), (1, 12), (4, 12)]
    data = _dataset([*pairs, (5, 13)], items=[10, 11, 12, 13, 14])
    with caplog.at_level(logging.WARNING, logger="funnelrec.recall.ease"):
        model = EASE(EASEConfig(regularization=1.0, max_items=3)).fit(data)
    assert "3 most popular of 4" in caplog.text
    kept = data.item_vocab.encode(pl.Series([10, 11, 12]))
    assert model.item_idx.tolist() == sorted(kept.tolist())
    assert model.weights.shape == (3, 3)
    # The kept block is EASE on the kept columns alone (the dropped item's users still count).
    full = _dataset([*pairs, (5, 13)])
    x = np.zeros((full.n_users, full.n_items))
    x[full.positives["user_idx"].to_numpy(), full.positives["item_idx"].to_numpy()] = 1.0
    cols = full.item_vocab.encode(pl.Series([10, 11, 12]))
    np.testing.assert_allclose(model.weights, _brute_force(x[:, cols], 1.0), atol=1e-5)
    result = model.retrieve(_queries(data, [5, 4]))
    assert (result.item_idx[0] == -1).all()  # user 5 only saw the dropped item: no history
    dropped = set(data.item_vocab.encode(pl.Series([13, 14])).tolist())
    assert not dropped & set(result.item_idx[1].tolist())


def test_unknown_user_with_history_is_served_and_empty_history_is_not() -> None:
    data = _dataset([(1, 10), (1, 11), (2, 10), (2, 11), (3, 10)])
    model = EASE(EASEConfig(regularization=1.0, k=3)).fit(data)
    item10 = int(data.item_vocab.encode(pl.Series([10]))[0])
    queries = Queries(
        np.arange(3),
        np.array([-1, -1, 0], np.int32),
        np.full(3, data.as_of),
        np.array([0, 2, 2, 3]),
        # an unknown user who saw item 10 twice; nobody; a history item past the catalogue.
        np.array([item10, item10, 99], np.int32),
        np.zeros(3, np.int64),
    )
    result = model.retrieve(queries)
    item11 = int(data.item_vocab.encode(pl.Series([11]))[0])
    assert result.item_idx[0].tolist() == [item11, -1, -1]
    assert (result.item_idx[1:] == -1).all()
    assert np.isneginf(result.score[1:]).all()


def test_exclude_seen_off_may_return_history() -> None:
    data = _dataset([(1, 10), (1, 11), (2, 10), (2, 11), (3, 10), (3, 11)])
    model = EASE(EASEConfig(regularization=1.0, exclude_seen=False, k=2)).fit(data)
    assert (model.retrieve(_queries(data, [1])).item_idx[0] >= 0).all()


def test_state_round_trip_and_validation() -> None:
    data = _dataset([(1, 10), (1, 11), (2, 10), (2, 11), (3, 10)])
    config = EASEConfig(regularization=1.0)
    model = EASE(config).fit(data)
    state = model.state()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    restored = EASE.from_state(config, state)
    queries = _queries(data, [1, 2, 3])
    np.testing.assert_array_equal(
        restored.retrieve(queries).item_idx, model.retrieve(queries).item_idx
    )
    with pytest.raises(ConfigError, match="exactly"):
        EASE.from_state(config, {"weights": state["weights"]})
    with pytest.raises(ConfigError, match="weights must be"):
        EASE.from_state(config, {**state, "weights": np.zeros((1, 1), np.float32)})
    with pytest.raises(ConfigError, match="ascending"):
        EASE.from_state(config, {**state, "item_idx": state["item_idx"][::-1].copy()})


def test_cholesky_failure_is_a_config_error() -> None:
    x = sp.csr_matrix(np.ones((3, 2), dtype=np.float32))
    with pytest.raises(ConfigError, match="Cholesky"):
        ease_weights(x, -10.0)


def test_dense_topk_pads_and_breaks_ties_by_item() -> None:
    scores = np.array([[1.0, 1.0, -np.inf], [-np.inf, -np.inf, -np.inf]], np.float32)
    idx, score = dense_topk(scores, np.array([3, 5, 8], np.int32), 4)
    assert idx.tolist() == [[3, 5, -1, -1], [-1, -1, -1, -1]]
    assert np.isneginf(score[0, 2:]).all() and np.isneginf(score[1]).all()
    empty_idx, _ = dense_topk(np.zeros((0, 3), np.float32), np.arange(3, dtype=np.int32), 2)
    assert empty_idx.shape == (0, 2)


@pytest.mark.parametrize("fit_threads", [None, 2])
def test_fit_threads(fit_threads: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small catalogue factorises on one BLAS thread unless told otherwise."""
    import threadpoolctl

    import funnelrec.recall.ease as ease_module

    def blas_threads() -> set[int]:
        infos = threadpoolctl.threadpool_info()
        return {i["num_threads"] for i in infos if i["user_api"] == "blas"}

    with threadpoolctl.threadpool_limits(limits=fit_threads or 1, user_api="blas"):
        expected = blas_threads()  # what BLAS grants here (a 1-core machine caps 2 at 1)
    seen: list[set[int]] = []
    real = ease_module.ease_weights

    def spy(*args: object) -> np.ndarray:
        seen.append(blas_threads())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ease_module, "ease_weights", spy)
    data = _dataset([(1, 10), (1, 11), (2, 10), (2, 11), (3, 10)])
    EASE(EASEConfig(regularization=1.0, fit_threads=fit_threads)).fit(data)
    assert seen == [expected]


def _scipy_retrieve(model: EASE, q: Queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The channel as it was written with a scipy history matrix and dense blocks."""
    n = model.item_idx.shape[0]
    column_of = np.full(model.n_items, -1, dtype=np.int32)
    column_of[model.item_idx] = np.arange(n, dtype=np.int32)
    item = q.history_item
    col = np.full(item.shape[0], -1, dtype=np.int32)
    inside = (item >= 0) & (item < model.n_items)
    col[inside] = column_of[item[inside]]
    used = col >= 0
    rows, cols = q.history_row()[used], col[used]
    x = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)), shape=(len(q), n))
    x.data[:] = 1.0
    scores = np.asarray(x @ model.weights, dtype=np.float32)
    scores[np.diff(x.indptr) == 0] = -np.inf
    if model.config.exclude_seen:
        scores[rows, cols] = -np.inf
    return dense_topk(scores, model.item_idx, k)


@pytest.mark.parametrize("b", [1, 2, 300])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_retrieve_equals_the_scipy_dense_product_bit_for_bit(
    make_random_queries: Callable[..., Queries], b: int, exclude_seen: bool
) -> None:
    rng = np.random.default_rng(b)
    users, items = rng.integers(0, 60, 900).tolist(), rng.integers(0, 50, 900).tolist()
    pairs = list(zip(users, items, strict=True))
    data = _dataset(pairs, items=list(range(55)))  # items 50-54: no positive, not modelled
    cfg = EASEConfig(regularization=3.0, k=20, max_items=40, exclude_seen=exclude_seen)
    model = EASE(cfg).fit(data)
    q = make_random_queries(rng, b, data.n_items, n_users=data.n_users)
    for k in (1, 20, 60):
        got = model.retrieve(q, k)
        want_idx, want_score = _scipy_retrieve(model, q, k)
        np.testing.assert_array_equal(got.item_idx, want_idx)
        np.testing.assert_array_equal(got.score, want_score)


def _numpy_history_columns(q: Queries, column_of: np.ndarray, n_cols: int):
    """The former NumPy version (the reference): a sortable key per entry, then unique."""
    item = q.history_item
    col = np.full(item.shape[0], -1, dtype=np.int64)
    inside = (item >= 0) & (item < column_of.shape[0])
    col[inside] = column_of[item[inside]]
    used = col >= 0
    key = np.unique(q.history_row()[used] * max(n_cols, 1) + col[used])
    rows, cols = np.divmod(key, max(n_cols, 1))
    return row_ptr(rows, len(q)), cols


@pytest.mark.parametrize("b", [0, 1, 7, 300])
def test_history_columns_equal_the_numpy_version(
    make_random_queries: Callable[..., Queries], b: int
) -> None:
    rng = np.random.default_rng(b)
    q = make_random_queries(rng, b, 40)
    column_of = column_index(np.sort(rng.choice(40, 25, replace=False)).astype(np.int32), 40)
    got, want = history_columns(q, column_of, 25), _numpy_history_columns(q, column_of, 25)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
