"""Build or restore a vector index from its config (dispatch on the config type, no registry).

Also :func:`recall_vs_exact`, the runtime check of an approximate index against the oracle,
and :func:`calibrate_recall`, which sets an IVF index's ``nprobe`` from that check.

:mod:`funnelrec.index.faiss_index` is imported inside the functions that need it, so that
importing this module (and :mod:`funnelrec.index`) does not load Faiss: exact-only callers
and config readers never pay for it.
"""

from __future__ import annotations

import json

import numpy as np
from numpy.typing import NDArray

from funnelrec.index.base import BaseIndex, Metric, assert_metric, decode_text, recall_at_k
from funnelrec.index.config import (
    AutoIndexConfig,
    ExactIndexConfig,
    HNSWIndexConfig,
    IndexConfig,
    IVFIndexConfig,
)
from funnelrec.index.exact import ExactIndex

__all__ = [
    "IndexConfig",
    "build_index",
    "calibrate_recall",
    "index_from_state",
    "needs_calibration",
    "recall_vs_exact",
]


def build_index(config: IndexConfig, metric: Metric, n_items: int | None = None) -> BaseIndex:
    """A fresh, empty index for ``config`` searching with ``metric``; call ``build`` next.

    Args:
        config: which index and its knobs.
        metric: the training similarity of the embeddings (``ip``, ``cosine`` or ``l2``).
        n_items: the number of items it will hold; an :class:`AutoIndexConfig` needs it.

    Example:
        >>> import numpy as np
        >>> index = build_index(HNSWIndexConfig(), "ip")
        >>> index.build(np.eye(2, dtype=np.float32), np.array([7, 8]))
        >>> len(index)
        2
    """
    if isinstance(config, AutoIndexConfig):
        if n_items is None:
            raise TypeError("an auto index config needs n_items to choose its index")
        config = config.for_items(n_items)
    match config:
        case ExactIndexConfig():
            return ExactIndex(config, metric)
        case HNSWIndexConfig():
            from funnelrec.index.faiss_index import HNSWIndex

            return HNSWIndex(config, metric)
        case IVFIndexConfig():
            from funnelrec.index.faiss_index import IVFIndex

            return IVFIndex(config, metric)
    raise TypeError(f"no index for config {type(config).__name__}")


def index_from_state(config: IndexConfig, metric: Metric, state: dict[str, NDArray]) -> BaseIndex:
    """Restore an index from ``state()`` arrays and check it searches with ``metric``.

    Raises:
        MetricMismatchError: the saved index metric differs from ``metric``.
        ConfigError: ``config`` differs from the saved one beyond its search-time knobs.
    """
    if isinstance(config, AutoIndexConfig):  # restore what it chose at build time
        config = config.of_kind(json.loads(decode_text(state["config"]))["kind"])
    match config:
        case ExactIndexConfig():
            index: BaseIndex = ExactIndex.from_state(config, state)
        case HNSWIndexConfig():
            from funnelrec.index.faiss_index import HNSWIndex

            index = HNSWIndex.from_state(config, state)
        case IVFIndexConfig():
            from funnelrec.index.faiss_index import IVFIndex

            index = IVFIndex.from_state(config, state)
        case _:
            raise TypeError(f"no index for config {type(config).__name__}")
    assert_metric(index, metric)
    return index


def recall_vs_exact(
    index: BaseIndex,
    vectors: NDArray[np.float32],
    ids: NDArray[np.int64],
    queries: NDArray[np.float32],
    k: int,
) -> float:
    """Recall@k of ``index`` against exact search over the same items (house rule 10).

    Retrievers can call this on a sample of queries after building an approximate index and
    log or assert the result: whether the configured settings reach the target depends on the
    data (e.g. HNSW under ``ip`` loses recall when item norms vary widely).

    Args:
        index: a built index.
        vectors: ``[N, D]`` the vectors ``index`` holds.
        ids: ``[N]`` their ids.
        queries: ``[B, D]`` sample queries.
        k: cut-off.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
        >>> index = build_index(HNSWIndexConfig(), "l2")
        >>> index.build(x, np.arange(300))
        >>> recall_vs_exact(index, x, np.arange(300), x[:20], 10) >= 0.95
        True
    """
    _, found = index.search(queries, k)
    return recall_at_k(found, _exact_ids(index.metric, vectors, ids, queries, k))


def _exact_ids(
    metric: Metric, vectors: NDArray[np.float32], ids: NDArray[np.int64], queries: NDArray, k: int
) -> NDArray[np.int64]:
    """``[B, k]`` the true top-k ids of ``queries`` among ``vectors`` (the oracle)."""
    exact = ExactIndex(ExactIndexConfig(), metric)
    exact.build(vectors, ids)
    return exact.search(queries, k)[1]


def needs_calibration(index: BaseIndex) -> bool:
    """Whether ``index`` asks its owner for :func:`calibrate_recall` after the build (an IVF
    index whose config sets ``target_recall``)."""
    config = index.config
    return isinstance(config, IVFIndexConfig) and config.target_recall is not None


def calibrate_recall(
    index: BaseIndex,
    vectors: NDArray[np.float32],
    ids: NDArray[np.int64],
    queries: NDArray[np.float32],
    k: int,
) -> dict[str, float]:
    """Set a built IVF index's ``nprobe`` to the first of ``config.nprobe * 2**i`` (capped at
    its ``nlist``, where the search is exact) whose recall@k against exact search on
    ``queries`` reaches ``config.target_recall``; the index saves it in its state.

    Why doubling from the configured value: one query's cost grows linearly with ``nprobe``,
    so the value found costs at most twice the cheapest one that reaches the target, in
    ``log2(nlist / nprobe)`` searches of the sample at most.

    Args:
        index: a built :class:`~funnelrec.index.faiss_index.IVFIndex` (see
            :func:`needs_calibration`).
        vectors, ids: ``[N, D]`` the vectors it holds and their ``[N]`` ids.
        queries: ``[B, D]`` sample queries like the ones it will serve (B >= 1).
        k: the cut-off it will be searched at.

    Returns:
        ``{"nprobe", "nlist", "recall"}``: the value chosen, the lists, and its recall@k.

    Raises:
        TypeError: ``index`` is not an IVF index with a ``target_recall``.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((2000, 8)).astype(np.float32)
        >>> index = build_index(IVFIndexConfig(nprobe=1, target_recall=0.95), "l2")
        >>> index.build(x, np.arange(2000))
        >>> report = calibrate_recall(index, x, np.arange(2000), x[:50], 10)
        >>> report["recall"] >= 0.95 and report["nprobe"] == index.nprobe
        True
    """
    if not needs_calibration(index):
        raise TypeError(f"{type(index).__name__} has no nprobe target to calibrate")
    from funnelrec.index.faiss_index import IVFIndex

    assert isinstance(index, IVFIndex) and isinstance(index.config, IVFIndexConfig)
    target = float(index.config.target_recall or 1.0)
    truth = _exact_ids(index.metric, vectors, ids, queries, k)
    nprobe = min(index.config.nprobe, index.nlist)
    while True:
        index.set_nprobe(nprobe)
        recall = recall_at_k(index.search(queries, k)[1], truth)
        if recall >= target or nprobe >= index.nlist:
            return {"nprobe": float(nprobe), "nlist": float(index.nlist), "recall": recall}
        nprobe = min(2 * nprobe, index.nlist)
