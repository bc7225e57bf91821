"""The array-level top-k helpers against scipy.sparse + a plain-NumPy reference of the rule
(descending score, ties by the smaller column, excluded columns and -inf skipped)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from funnelrec.recall.topk import (
    binary_matmul_topk,
    coo_topk,
    csr_topk,
    matmul_topk,
    ranked_topk,
    sparse_topk,
)

BATCHES = [1, 2, 37, 300]  # one served query up to an offline batch


def _reference(dense: np.ndarray, present: np.ndarray, exclude: list[set[int]], k: int):
    """The rule on a dense matrix: ``present`` marks the candidates."""
    out_idx = np.full((dense.shape[0], k), -1, dtype=np.int32)
    out_score = np.full((dense.shape[0], k), -np.inf, dtype=np.float32)
    for r in range(dense.shape[0]):
        cols = [c for c in np.flatnonzero(present[r]) if c not in exclude[r]]
        cols.sort(key=lambda c: (-float(dense[r, c]), c))
        cols = [c for c in cols if dense[r, c] != -np.inf][:k]
        out_idx[r, : len(cols)] = cols
        out_score[r, : len(cols)] = dense[r, cols]
    return out_idx, out_score


def _exclusions(rng: np.random.Generator, b: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    lens = rng.integers(0, 6, b)
    ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return ptr, rng.integers(0, n, int(ptr[-1])).astype(np.int32)  # repeats allowed


def _sets(ptr: np.ndarray, idx: np.ndarray) -> list[set[int]]:
    return [set(idx[ptr[r] : ptr[r + 1]].tolist()) for r in range(ptr.shape[0] - 1)]


def _random_csr(rng: np.random.Generator, b: int, n: int, dtype: type) -> sp.csr_matrix:
    m = sp.random(b, n, density=0.3, format="csr", random_state=rng, dtype=dtype)
    m.data = np.round(m.data * 4).astype(dtype)  # coarse values: many ties, stored zeros
    return m


@pytest.mark.parametrize("b", BATCHES)
@pytest.mark.parametrize("k", [1, 3, 40])
def test_csr_topk_follows_the_rule(b: int, k: int) -> None:
    rng = np.random.default_rng(b * 100 + k)
    m = _random_csr(rng, b, 50, np.float64)
    ex_ptr, ex_idx = _exclusions(rng, b, 50)
    got = csr_topk(m.indptr, m.indices, m.data, k, (ex_ptr, ex_idx))
    stored = sp.csr_matrix((np.ones_like(m.data), m.indices, m.indptr), shape=m.shape)
    want = _reference(m.toarray(), stored.toarray() > 0, _sets(ex_ptr, ex_idx), k)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    legacy = sparse_topk(m, k, ex_ptr, ex_idx)
    np.testing.assert_array_equal(legacy[0], want[0])


@pytest.mark.parametrize("b", BATCHES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_topk_equals_scipy_product_bit_for_bit(b: int, dtype: type) -> None:
    rng = np.random.default_rng(b)
    a = sp.random(b, 30, density=0.2, format="csr", random_state=rng, dtype=dtype)
    a.data = (a.data + 0.1).astype(dtype)
    s = sp.random(30, 80, density=0.1, format="csr", random_state=rng, dtype=dtype)
    s.data = (s.data + 0.05).astype(dtype)
    ex_ptr, ex_idx = _exclusions(rng, b, 80)
    for k in (1, 5, 200):
        got = matmul_topk(a.indptr, a.indices, a.data, s, k, (ex_ptr, ex_idx))
        want = sparse_topk((a @ s).tocsr(), k, ex_ptr, ex_idx)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])  # same sums, same order: same bits


@pytest.mark.parametrize("b", BATCHES)
def test_matmul_topk_breaks_many_ties_by_column(b: int) -> None:
    """Small integer weights tie often; a dense row (> 4k touched columns) is cut by value
    before its candidates are put in column order."""
    rng = np.random.default_rng(b + 100)
    a = sp.random(b, 30, density=0.3, format="csr", random_state=rng)
    a.data = rng.integers(1, 3, a.nnz).astype(np.float64)
    s = sp.random(30, 400, density=0.3, format="csr", random_state=rng)
    s.data = rng.integers(1, 4, s.nnz).astype(np.float64)
    ex_ptr, ex_idx = _exclusions(rng, b, 400)
    for k in (1, 3, 20, 500):
        got = matmul_topk(a.indptr, a.indices, a.data, s, k, (ex_ptr, ex_idx))
        want = sparse_topk((a @ s).tocsr(), k, ex_ptr, ex_idx)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_matmul_topk_drops_entries_that_sum_to_exactly_zero() -> None:
    a = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]]))
    s = sp.csr_matrix(np.array([[2.0, 1.0, 0.0], [-2.0, 3.0, 1.0]]))
    idx, score = matmul_topk(a.indptr, a.indices, a.data, s, 3)
    assert idx.tolist() == [[1, 2, -1], [0, 1, -1]]  # row 0: column 0 is 2 - 2 = 0, dropped
    assert score[0].tolist() == [4.0, 1.0, -np.inf]
    want = sparse_topk((a @ s).tocsr(), 3)
    np.testing.assert_array_equal(idx, want[0])


def test_matmul_topk_empty_rows_and_empty_batch() -> None:
    s = sp.csr_matrix(np.eye(3))
    idx, score = matmul_topk(np.zeros(3, np.int64), np.zeros(0, np.int64), np.zeros(0), s, 2)
    assert idx.tolist() == [[-1, -1], [-1, -1]]
    assert np.isneginf(score).all()
    idx, _ = matmul_topk(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0), s, 2)
    assert idx.shape == (0, 2)


@pytest.mark.parametrize("b", BATCHES)
def test_coo_topk_sums_repeats_like_scipy(b: int) -> None:
    rng = np.random.default_rng(b)
    n = 4 * b
    rows = rng.integers(0, b, n)
    cols = rng.integers(0, 20, n)
    vals = rng.integers(1, 5, n).astype(np.float64) / 4  # exact sums in any order
    ex_ptr, ex_idx = _exclusions(rng, b, 20)
    got = coo_topk(rows, cols, vals, b, 6, (ex_ptr, ex_idx))
    want = sparse_topk(sp.csr_matrix((vals, (rows, cols)), shape=(b, 20)), 6, ex_ptr, ex_idx)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("b", BATCHES)
def test_ranked_topk_walks_each_list_past_padding_and_exclusions(b: int) -> None:
    rng = np.random.default_rng(b)
    width = 12
    ids = rng.integers(-1, 30, (b, width))
    scores = np.sort(rng.random((b, width)).astype(np.float32), axis=1)[:, ::-1]
    ex_ptr, ex_idx = _exclusions(rng, b, 30)
    starts = np.arange(b) * width
    idx, score = ranked_topk(
        starts, starts + width, ids.ravel(), scores.ravel(), 5, (ex_ptr, ex_idx)
    )
    for r, excluded in enumerate(_sets(ex_ptr, ex_idx)):
        keep = [j for j in range(width) if ids[r, j] >= 0 and ids[r, j] not in excluded][:5]
        assert idx[r, : len(keep)].tolist() == ids[r, keep].tolist()
        assert score[r, : len(keep)].tolist() == scores[r, keep].tolist()
        assert (idx[r, len(keep) :] == -1).all() and np.isneginf(score[r, len(keep) :]).all()


def test_ranked_topk_rows_may_share_one_list() -> None:
    items, scores = np.array([4, 1, 3, 0]), np.array([4.0, 3.0, 2.0, 1.0])
    ptr, seen = np.array([0, 0, 2]), np.array([1, 4], np.int32)
    idx, _ = ranked_topk(np.zeros(2, np.int64), np.full(2, 4), items, scores, 2, (ptr, seen))
    assert idx.tolist() == [[4, 1], [3, 0]]


@pytest.mark.parametrize("b", BATCHES)
@pytest.mark.parametrize("exclude_rows", [True, False])
def test_binary_matmul_topk_equals_the_dense_scipy_product(b: int, exclude_rows: bool) -> None:
    rng = np.random.default_rng(b)
    x = sp.random(b, 25, density=0.15, format="csr", random_state=rng, dtype=np.float32)
    x.data[:] = 1.0
    dense = rng.standard_normal((25, 25)).astype(np.float32)
    columns = np.sort(rng.choice(100, 25, replace=False)).astype(np.int32)
    scores = np.asarray(x @ dense, dtype=np.float32)
    present = np.repeat(np.diff(x.indptr)[:, None] > 0, 25, axis=1)
    excluded = [set(x.indices[x.indptr[r] : x.indptr[r + 1]].tolist()) for r in range(b)]
    want_pos, want_score = _reference(scores, present, excluded if exclude_rows else [set()] * b, 7)
    got_idx, got_score = binary_matmul_topk(
        x.indptr, x.indices, dense, columns, 7, exclude_rows=exclude_rows
    )
    np.testing.assert_array_equal(got_idx, np.where(want_pos >= 0, columns[want_pos], -1))
    np.testing.assert_array_equal(got_score, want_score)
