"""Vector indexes for embedding recall: exact search (the oracle) and Faiss HNSW / IVF.

Importing this package does not load Faiss: the configs live in :mod:`funnelrec.index.config`,
:func:`build_index` imports :mod:`funnelrec.index.faiss_index` when it builds an approximate
index, and :class:`HNSWIndex` / :class:`IVFIndex` are resolved on first attribute access.

Example:
    >>> import numpy as np
    >>> from funnelrec.index import ExactIndexConfig, build_index
    >>> index = build_index(ExactIndexConfig(), "cosine")
    >>> index.build(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.array([3, 4]))
    >>> scores, ids = index.search(np.array([[0.1, 2.0]], np.float32), k=3)
    >>> ids.tolist()
    [[4, 3, -1]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from funnelrec._lazy import lazy_getattr
from funnelrec.index.base import (
    METRICS,
    BaseIndex,
    Metric,
    MetricMismatchError,
    VectorIndex,
    assert_metric,
    recall_at_k,
)
from funnelrec.index.config import (
    AutoIndexConfig,
    ExactIndexConfig,
    HNSWIndexConfig,
    IndexConfig,
    IndexConfigBase,
    IVFIndexConfig,
)
from funnelrec.index.exact import ExactIndex
from funnelrec.index.factory import (
    build_index,
    calibrate_recall,
    index_from_state,
    needs_calibration,
    recall_vs_exact,
)

if TYPE_CHECKING:
    from funnelrec.index.faiss_index import HNSWIndex, IVFIndex

# Names served by __getattr__, with the module that defines them (imported on first use).
_LAZY = {"HNSWIndex": "funnelrec.index.faiss_index", "IVFIndex": "funnelrec.index.faiss_index"}


__getattr__ = lazy_getattr(globals(), _LAZY, __name__)


__all__ = [
    "METRICS",
    "AutoIndexConfig",
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
    "calibrate_recall",
    "index_from_state",
    "needs_calibration",
    "recall_at_k",
    "recall_vs_exact",
]
