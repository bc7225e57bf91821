"""The contract every vector index passes, run for every kind in ``IndexConfig`` x metric.

A new index kind joins the suite by joining the ``IndexConfig`` union; nothing to register.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from numpy.typing import NDArray

from funnelrec.index import METRICS, BaseIndex, IndexConfig, Metric, build_index, index_from_state

N, D, B = 400, 16, 30
CONFIGS = [cls() for cls in get_args(get_args(IndexConfig)[0])]
CASES = [pytest.param(c, m, id=f"{c.kind}-{m}") for c in CONFIGS for m in METRICS]


def _similarity(queries: NDArray, vectors: NDArray, metric: Metric) -> NDArray:
    """``[B, N]`` float64 reference scores: higher is better, l2 = -squared distance."""
    q, x = queries.astype(np.float64), vectors.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if metric == "l2":
        return -((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return q @ x.T


@pytest.fixture(scope="module")
def data() -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32]]:
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((N, D)).astype(np.float32)
    ids = (rng.permutation(N) * 7 + 3).astype(np.int64)
    queries = rng.standard_normal((B, D)).astype(np.float32)
    return vectors, ids, queries


def _built(config: IndexConfig, metric: Metric, vectors: NDArray, ids: NDArray) -> BaseIndex:
    index = build_index(config, metric, vectors.shape[0])  # "auto" chooses by the size
    assert index.metric == metric
    index.build(vectors, ids)
    return index


@pytest.fixture(scope="module")
def shared() -> dict[tuple[str, str], BaseIndex]:
    """Indexes built once per (kind, metric) for the tests that only search."""
    return {}


def _searchable(
    shared: dict[tuple[str, str], BaseIndex],
    config: IndexConfig,
    metric: Metric,
    data: tuple[NDArray, NDArray, NDArray],
) -> BaseIndex:
    key = (config.kind, metric)
    if key not in shared:
        shared[key] = _built(config, metric, data[0], data[1])
    return shared[key]


def _check_result(scores: NDArray, found: NDArray, k: int, ids: NDArray) -> None:
    assert scores.shape == found.shape == (B, k)
    assert scores.dtype == np.float32 and found.dtype == np.int64
    pad = found == -1
    assert np.isneginf(scores[pad]).all() and np.isfinite(scores[~pad]).all()
    # Padding only at the end of a row, scores non-increasing.
    assert (np.diff(pad.astype(np.int8), axis=1) >= 0).all()
    assert (scores[:, 1:] <= scores[:, :-1]).all()
    assert np.isin(found[~pad], ids).all()
    for row in found:
        real = row[row >= 0]
        assert np.unique(real).shape[0] == real.shape[0]


@pytest.mark.parametrize(("config", "metric"), CASES)
@pytest.mark.parametrize("k", [1, 10, N, N + 25])
def test_search_result_contract(
    shared: dict[tuple[str, str], BaseIndex],
    data: tuple[NDArray, NDArray, NDArray],
    config: IndexConfig,
    metric: Metric,
    k: int,
) -> None:
    _vectors, ids, queries = data
    index = _searchable(shared, config, metric, data)
    assert len(index) == N
    scores, found = index.search(queries, k)
    _check_result(scores, found, k, ids)
    if k > N:
        assert (found[:, N:] == -1).all()


@pytest.mark.parametrize(("config", "metric"), CASES)
def test_scores_are_the_metric_similarity(
    shared: dict[tuple[str, str], BaseIndex],
    data: tuple[NDArray, NDArray, NDArray],
    config: IndexConfig,
    metric: Metric,
) -> None:
    vectors, ids, queries = data
    index = _searchable(shared, config, metric, data)
    scores, found = index.search(queries, 10)
    position = np.argsort(ids)[np.searchsorted(ids, found, sorter=np.argsort(ids))]
    want = np.take_along_axis(_similarity(queries, vectors, metric), position, axis=1)
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("config", "metric"), CASES)
def test_top1_of_a_small_index_is_exact(
    shared: dict[tuple[str, str], BaseIndex],
    data: tuple[NDArray, NDArray, NDArray],
    config: IndexConfig,
    metric: Metric,
) -> None:
    vectors, ids, queries = data
    index = _searchable(shared, config, metric, data)
    _, found = index.search(queries, 5)
    best = ids[_similarity(queries, vectors, metric).argmax(axis=1)]
    assert (found[:, 0] == best).mean() >= 0.9


@pytest.mark.parametrize(("config", "metric"), CASES)
def test_state_round_trip_gives_identical_results(
    tmp_path, data: tuple[NDArray, NDArray, NDArray], config: IndexConfig, metric: Metric
) -> None:
    vectors, ids, queries = data
    index = _built(config, metric, vectors, ids)
    state = index.state()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    np.savez(tmp_path / "index.npz", **state)
    with np.load(tmp_path / "index.npz", allow_pickle=False) as npz:
        loaded = index_from_state(config, metric, {key: npz[key] for key in npz.files})
    assert len(loaded) == N and loaded.metric == metric
    for a, b in zip(index.search(queries, 20), loaded.search(queries, 20), strict=True):
        np.testing.assert_array_equal(a, b)
    # The loaded index keeps accepting new items.
    loaded.add(vectors[:1] * 50, np.array([10_000]))
    assert len(loaded) == N + 1


@pytest.mark.parametrize(("config", "metric"), CASES)
def test_added_items_are_searchable_at_once(
    data: tuple[NDArray, NDArray, NDArray], config: IndexConfig, metric: Metric
) -> None:
    vectors, ids, queries = data
    index = _built(config, metric, vectors, ids)
    rng = np.random.default_rng(5)
    # Larger norm than any built vector: each new item is its own best match for every metric.
    new = (rng.standard_normal((3, D)) * 20).astype(np.float32)
    new_ids = np.array([9_001, 9_002, 9_003])
    index.add(new, new_ids)
    assert len(index) == N + 3
    _, found = index.search(new, 3)
    assert found[:, 0].tolist() == new_ids.tolist()
    _check_result(*index.search(queries, 50), 50, np.concatenate([ids, new_ids]))


@pytest.mark.parametrize(("config", "metric"), CASES)
def test_search_is_deterministic(
    shared: dict[tuple[str, str], BaseIndex],
    data: tuple[NDArray, NDArray, NDArray],
    config: IndexConfig,
    metric: Metric,
) -> None:
    _vectors, _ids, queries = data
    index = _searchable(shared, config, metric, data)
    for a, b in zip(index.search(queries, 15), index.search(queries, 15), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("config", "metric"), CASES)
def test_index_smaller_than_k_pads(config: IndexConfig, metric: Metric) -> None:
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((5, D)).astype(np.float32)
    index = _built(config, metric, vectors, np.arange(5, dtype=np.int64))
    scores, found = index.search(rng.standard_normal((B, D)).astype(np.float32), 8)
    _check_result(scores, found, 8, np.arange(5))
    assert (np.sort(found[:, :5], axis=1) == np.arange(5)).all()
    assert (found[:, 5:] == -1).all()
