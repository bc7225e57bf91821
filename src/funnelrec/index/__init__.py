"""Vector indexes for embedding recall: exact search (the oracle) and Faiss HNSW / IVF.

Example:
    >>> import numpy as np
    >>> from funnelrec.index import ExactIndexConfig, build_index
    >>> index = build_index(ExactIndexConfig(), "cosine")
    >>> index.build(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.array([3, 4]))
    >>> scores, ids = index.search(np.array([[0.1, 2.0]], np.float32), k=3)
    >>> ids.tolist()
    [[4, 3, -1]]
"""

from funnelrec.index.base import (
    METRICS,
    BaseIndex,
    IndexConfigBase,
    Metric,
    MetricMismatchError,
    VectorIndex,
    assert_metric,
    recall_at_k,
)
from funnelrec.index.exact import ExactIndex, ExactIndexConfig
from funnelrec.index.factory import IndexConfig, build_index, index_from_state, recall_vs_exact
from funnelrec.index.faiss_index import HNSWIndex, HNSWIndexConfig, IVFIndex, IVFIndexConfig

__all__ = [
    "METRICS",
    "BaseIndex",
    "ExactIndex",
    "ExactIndexConfig",
    "HNSWIndex",
    "HNSWIndexConfig",
    "IVFIndex",
    "IVFIndexConfig",
    "IndexConfig",
    "IndexConfigBase",
    "Metric",
    "MetricMismatchError",
    "VectorIndex",
    "assert_metric",
    "build_index",
    "index_from_state",
    "recall_at_k",
    "recall_vs_exact",
]
