"""ExactIndex against a textbook brute-force oracle, ties, padding, add and validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from funnelrec.index import ExactIndex, ExactIndexConfig, Metric
from funnelrec.index.exact import topk_rows

METRICS: tuple[Metric, ...] = ("ip", "cosine", "l2")


def brute_force(
    vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 scores of every pair, full sort by (-score, id), then pad to k."""
    x, q = vectors.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    scores = -((q[:, None, :] - x[None, :, :]) ** 2).sum(-1) if metric == "l2" else q @ x.T
    out_s = np.full((q.shape[0], k), -np.inf)
    out_i = np.full((q.shape[0], k), -1, dtype=np.int64)
    for row in range(q.shape[0]):
        order = np.lexsort((ids, -scores[row]))[:k]
        out_s[row, : order.shape[0]] = scores[row, order]
        out_i[row, : order.shape[0]] = ids[order]
    return out_s, out_i


def _data(n: int = 300, d: int = 12, b: int = 25, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    queries = rng.standard_normal((b, d)).astype(np.float32)
    return vectors, ids, queries


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 10, 299, 300, 350])
def test_matches_brute_force(metric: Metric, k: int) -> None:
    vectors, ids, queries = _data()
    index = ExactIndex(ExactIndexConfig(), metric)
    index.build(vectors, ids)
    scores, found = index.search(queries, k)
    want_s, want_i = brute_force(vectors, ids, queries, k, metric)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(found, want_i)
    np.testing.assert_allclose(scores, want_s, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_small_blocks_give_the_same_answer(metric: Metric) -> None:
    vectors, ids, queries = _data()
    big = ExactIndex(ExactIndexConfig(), metric)
    small = ExactIndex(ExactIndexConfig(block_size=1000), metric)  # 3 queries per block
    for index in (big, small):
        index.build(vectors, ids)
    (big_s, big_i), (small_s, small_i) = big.search(queries, 17), small.search(queries, 17)
    np.testing.assert_array_equal(big_i, small_i)
    # BLAS may round the last bit differently for other block shapes.
    np.testing.assert_allclose(big_s, small_s, rtol=1e-6)


def test_ties_prefer_smaller_id_across_the_top_k_boundary() -> None:
    vectors = np.ones((8, 3), dtype=np.float32)
    vectors[5] = 2.0  # one clear winner, the other seven tie
    ids = np.array([70, 30, 50, 10, 60, 99, 20, 40], dtype=np.int64)
    index = ExactIndex(ExactIndexConfig(), "ip")
    index.build(vectors, ids)
    _, found = index.search(np.ones((2, 3), dtype=np.float32), 4)
    assert found.tolist() == [[99, 10, 20, 30]] * 2


def test_topk_rows_orders_ties_by_id() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 0.5]], dtype=np.float32)
    top, pos = topk_rows(scores, np.array([5, 9, 2, 1]), 3)
    assert pos.tolist() == [[2, 1, 0]]
    assert top.tolist() == [[3.0, 3.0, 1.0]]


@settings(max_examples=60, deadline=None)
@given(
    vectors=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 30), st.just(3)),
        elements=st.sampled_from([-1.0, 0.0, 1.0, 2.0]),
    ),
    k=st.integers(1, 35),
    metric=st.sampled_from(["ip", "l2"]),
)
def test_property_matches_brute_force_with_many_ties(
    vectors: np.ndarray, k: int, metric: Metric
) -> None:
    # Small integer (and half-integer) values: float32 scores are exact, so ties are real.
    ids = np.arange(vectors.shape[0], dtype=np.int64)[::-1].copy() * 3
    queries = vectors[: min(4, vectors.shape[0])] + np.float32(0.5)
    index = ExactIndex(ExactIndexConfig(), metric)
    index.build(vectors, ids)
    scores, found = index.search(queries, k)
    want_s, want_i = brute_force(vectors, ids, queries, k, metric)
    np.testing.assert_array_equal(scores, want_s)
    np.testing.assert_array_equal(found, want_i)


def test_padding_when_k_exceeds_size() -> None:
    index = ExactIndex(ExactIndexConfig(), "l2")
    index.build(np.eye(3, dtype=np.float32), np.array([4, 5, 6]))
    scores, found = index.search(np.eye(3, dtype=np.float32)[:1], 5)
    assert found[0, 3:].tolist() == [-1, -1]
    assert np.isneginf(scores[0, 3:]).all()
    assert found[0, 0] == 4 and scores[0, 0] == 0.0


def test_empty_index_and_empty_batch() -> None:
    index = ExactIndex(ExactIndexConfig(), "ip")
    index.build(np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.int64))
    scores, found = index.search(np.ones((2, 4), dtype=np.float32), 3)
    assert found.tolist() == [[-1] * 3] * 2 and np.isneginf(scores).all()
    index.add(np.ones((1, 4), dtype=np.float32), np.array([9]))
    scores, found = index.search(np.zeros((0, 4), dtype=np.float32), 3)
    assert found.shape == (0, 3) and scores.shape == (0, 3)


def test_add_keeps_id_tie_order() -> None:
    index = ExactIndex(ExactIndexConfig(), "ip")
    index.build(np.ones((2, 2), dtype=np.float32), np.array([8, 6]))
    index.add(np.ones((2, 2), dtype=np.float32), np.array([7, 1]))
    assert len(index) == 4
    _, found = index.search(np.ones((1, 2), dtype=np.float32), 3)
    assert found.tolist() == [[1, 6, 7]]


def test_zero_vector_under_cosine_scores_zero() -> None:
    index = ExactIndex(ExactIndexConfig(), "cosine")
    index.build(np.array([[0.0, 0.0], [3.0, 4.0]], np.float32), np.array([0, 1]))
    scores, found = index.search(np.array([[6.0, 8.0]], np.float32), 2)
    assert found.tolist() == [[1, 0]]
    np.testing.assert_allclose(scores, [[1.0, 0.0]], atol=1e-6)


def test_rejects_bad_input() -> None:
    index = ExactIndex(ExactIndexConfig(), "ip")
    with pytest.raises(RuntimeError, match="before build"):
        index.search(np.ones((1, 2), np.float32), 1)
    with pytest.raises(RuntimeError, match="before build"):
        index.add(np.ones((1, 2), np.float32), np.array([0]))
    with pytest.raises(ValueError, match="2-D"):
        index.build(np.ones(3, np.float32), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="floating"):
        index.build(np.ones((2, 2), np.int64), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        index.build(np.array([[np.nan, 1.0]], np.float32), np.array([0]))
    with pytest.raises(ValueError, match="unique"):
        index.build(np.ones((2, 2), np.float32), np.array([3, 3]))
    with pytest.raises(ValueError, match=">= 0"):
        index.build(np.ones((2, 2), np.float32), np.array([-1, 3]))
    with pytest.raises(ValueError, match="shape"):
        index.build(np.ones((2, 2), np.float32), np.array([1]))
    index.build(np.ones((2, 2), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(np.ones((1, 2), np.float32), np.array([1]))
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.ones((1, 3), np.float32), 1)
    with pytest.raises(ValueError, match="positive integer"):
        index.search(np.ones((1, 2), np.float32), 0)


@settings(max_examples=80, deadline=None)
@given(
    scores=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 40)),
        elements=st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0]),
    ),
    k=st.integers(1, 45),
    shuffle_ids=st.booleans(),
)
def test_topk_rows_equals_a_full_sort(scores: np.ndarray, k: int, shuffle_ids: bool) -> None:
    n = scores.shape[1]
    ids = np.arange(n, dtype=np.int64) * 2
    if shuffle_ids:  # ids not ascending with the columns: the kernel sorts by id first
        ids = np.random.default_rng(n).permutation(ids)
    top, pos = topk_rows(scores, ids, k)
    for r in range(scores.shape[0]):
        want = np.lexsort((ids, -scores[r]))[: min(k, n)]
        assert pos[r].tolist() == want.tolist()
        np.testing.assert_array_equal(top[r], scores[r, want])
