"""Faiss HNSW / IVF: recall against exact search at default settings, metric checks, state."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from funnelrec.errors import ConfigError
from funnelrec.index import (
    ExactIndex,
    ExactIndexConfig,
    HNSWIndex,
    HNSWIndexConfig,
    IndexConfig,
    IVFIndex,
    IVFIndexConfig,
    Metric,
    build_index,
    index_from_state,
    recall_at_k,
    recall_vs_exact,
)
from funnelrec.index.faiss_index import check_faiss_metric

K = 100


def clustered(n: int, d: int, rng: np.random.Generator, n_clusters: int = 50) -> np.ndarray:
    """``[n, d]`` float32 mixture of unit-variance Gaussians around N(0, I) centres."""
    centres = rng.standard_normal((n_clusters, d))
    return (centres[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, d))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    points = clustered(10_500, 64, rng)
    ids = rng.permutation(100_000)[:10_000].astype(np.int64)
    return points[:10_000], ids, points[10_000:]


@pytest.mark.parametrize("metric", ["ip", "cosine"])
@pytest.mark.parametrize("config", [HNSWIndexConfig(), IVFIndexConfig()], ids=["hnsw", "ivf"])
def test_default_recall_vs_exact(
    corpus: tuple[np.ndarray, np.ndarray, np.ndarray], config: IndexConfig, metric: Metric
) -> None:
    vectors, ids, queries = corpus
    index = build_index(config, metric)
    index.build(vectors, ids)
    assert recall_vs_exact(index, vectors, ids, queries, K) >= 0.95
    # Scores are the metric's own similarity: the best hit scores like the exact best hit.
    exact = build_index(ExactIndexConfig(), metric)
    exact.build(vectors, ids)
    np.testing.assert_allclose(
        index.search(queries, 1)[0], exact.search(queries, 1)[0], rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("ip", faiss.METRIC_INNER_PRODUCT),
        ("cosine", faiss.METRIC_INNER_PRODUCT),
        ("l2", faiss.METRIC_L2),
    ],
)
@pytest.mark.parametrize("config", [HNSWIndexConfig(), IVFIndexConfig()], ids=["hnsw", "ivf"])
def test_faiss_metric_matches(config: IndexConfig, metric: Metric, expected: int) -> None:
    index = build_index(config, metric)
    index.build(np.eye(8, dtype=np.float32), np.arange(8))
    assert index._index.metric_type == expected
    loaded = index_from_state(config, metric, index.state())
    assert loaded._index.metric_type == expected


def test_check_faiss_metric_raises_on_mismatch() -> None:
    check_faiss_metric(faiss.IndexFlatIP(4), "cosine")
    with pytest.raises(ValueError, match="metric_type"):
        check_faiss_metric(faiss.IndexFlatL2(4), "ip")
    with pytest.raises(ValueError, match="metric_type"):
        check_faiss_metric(faiss.IndexHNSWFlat(4, 8, faiss.METRIC_INNER_PRODUCT), "l2")


def test_build_refuses_a_faiss_index_with_the_wrong_metric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = HNSWIndex(HNSWIndexConfig(), "ip")
    monkeypatch.setattr(index, "_new", lambda v: faiss.IndexHNSWFlat(v.shape[1], 8))
    with pytest.raises(ValueError, match="metric_type"):
        index.build(np.eye(4, dtype=np.float32), np.arange(4))


def test_state_with_a_foreign_faiss_metric_is_refused() -> None:
    index = HNSWIndex(HNSWIndexConfig(M=8), "l2")
    index.build(np.eye(4, dtype=np.float32), np.arange(4))
    state = index.state()
    state["metric"] = np.frombuffer(b"ip", dtype=np.uint8).copy()
    with pytest.raises(ValueError, match="metric_type"):
        HNSWIndex.from_state(HNSWIndexConfig(M=8), state)


def test_state_of_another_kind_is_refused() -> None:
    index = IVFIndex(IVFIndexConfig(), "l2")
    index.build(np.eye(4, dtype=np.float32), np.arange(4))
    state = index.state()
    state["config"] = np.frombuffer(HNSWIndexConfig().model_dump_json().encode(), np.uint8)
    with pytest.raises(ValueError, match="expected IndexHNSWFlat"):
        HNSWIndex.from_state(HNSWIndexConfig(), state)


def test_from_state_accepts_new_search_knobs_only() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((500, 8)).astype(np.float32)
    index = build_index(HNSWIndexConfig(M=8, ef_search=16), "l2")
    index.build(vectors, np.arange(500))
    loaded = index_from_state(HNSWIndexConfig(M=8, ef_search=300), "l2", index.state())
    assert isinstance(loaded, HNSWIndex)
    assert loaded._index.hnsw.efSearch == 300
    with pytest.raises(ConfigError, match="'M'"):
        index_from_state(HNSWIndexConfig(M=16), "l2", index.state())

    ivf = build_index(IVFIndexConfig(nprobe=1), "ip")
    ivf.build(vectors, np.arange(500))
    assert ivf._index.nlist == 12  # 500 // 39 caps round(4 * sqrt(500)) = 89
    loaded = index_from_state(IVFIndexConfig(nprobe=5), "ip", ivf.state())
    assert loaded._index.nprobe == 5
    with pytest.raises(ConfigError, match="'seed'"):
        index_from_state(IVFIndexConfig(seed=1), "ip", ivf.state())


@pytest.mark.parametrize(
    ("nlist", "n", "min_train", "want"),
    [
        (None, 20_000, 39, 512),
        (None, 10_000, 1, 400),
        (None, 50_000, 39, 894),
        (None, 100, 39, 2),
        (None, 10, 39, 1),
        (1000, 20_000, 39, 512),
        (8, 20_000, 39, 8),
        (None, 400, 1, 80),
    ],
)
def test_ivf_list_count(nlist: int | None, n: int, min_train: int, want: int) -> None:
    assert IVFIndexConfig(nlist=nlist, min_train_points=min_train).lists_for(n) == want


def test_ivf_needs_vectors_to_train() -> None:
    with pytest.raises(ValueError, match="at least one vector"):
        IVFIndex(IVFIndexConfig(), "ip").build(np.zeros((0, 4), np.float32), np.zeros(0, int))


@pytest.mark.parametrize("config", [HNSWIndexConfig(), IVFIndexConfig()], ids=["hnsw", "ivf"])
@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_added_cold_item_is_found_first(config: IndexConfig, metric: Metric) -> None:
    rng = np.random.default_rng(3)
    vectors = clustered(1000, 16, rng)
    index = build_index(config, metric)
    index.build(vectors, np.arange(1000))
    # A new item far outside the trained data (largest norm, so it is its own best match for ip).
    new = (10 * np.abs(vectors).max() * np.ones((1, 16))).astype(np.float32)
    new[0, ::2] *= -1
    index.add(new, np.array([123_456]))
    assert len(index) == 1001
    _, found = index.search(new, 5)
    assert found[0, 0] == 123_456


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_ivf_searches_every_list_for_queries_whose_probed_lists_run_short(metric) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    ivf = IVFIndex(IVFIndexConfig(nlist=20, nprobe=1, min_train_points=1), metric)
    ivf.build(x, np.arange(400))
    assert ivf.nprobe == 1  # one list holds ~20 items, fewer than the k asked for
    exact = ExactIndex(ExactIndexConfig(), metric)
    exact.build(x, np.arange(400))
    scores, ids = ivf.search(x[:10], 60)
    truth_scores, truth = exact.search(x[:10], 60)
    assert (ids >= 0).all()  # no padding: the index holds 400 items
    np.testing.assert_array_equal(np.sort(ids, axis=1), np.sort(truth, axis=1))
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-4)
    _, shallow = ivf.search(x[:10], 5)  # within the probed list: one list is searched
    assert recall_at_k(shallow, exact.search(x[:10], 5)[1]) < 1.0
