"""Approximate indexes backed by Faiss: HNSW graphs and IVF inverted lists (flat storage).

The Faiss index is constructed with the Faiss metric matching ``metric`` (``ip`` and
``cosine`` -> ``METRIC_INNER_PRODUCT``, ``l2`` -> ``METRIC_L2``) and every build and load checks
``index.metric_type`` against it. Faiss labels are storage positions; funnelrec ids are kept in
an array beside it. State is ``faiss.serialize_index`` bytes as a uint8 array (Faiss' own binary
format, never pickle).

Threads: Faiss runs build and search on its process-wide OpenMP pool. This module never changes
it; applications (CLI, benchmarks, services) that need a limit call
``faiss.omp_set_num_threads`` themselves.

Defaults reach recall@100 >= 0.95 against :class:`~funnelrec.index.exact.ExactIndex` on
clustered 64-d vectors with 10k-50k items for every metric (``tests/unit/index``,
``benchmarks/index_speed.py``). Known weak spot: ``ip`` over items whose norms vary widely
(log-normal norms, sigma 0.5, 50k items) gives 0.85 for HNSW and 0.93 for IVF at the defaults;
``M=64`` (0.956) or ``nprobe=96`` (0.96) restore it, at about half the speed. Check a fitted
model with :func:`~funnelrec.index.factory.recall_vs_exact`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import faiss
import numpy as np
from numpy.typing import NDArray

from funnelrec.index.base import BaseIndex, Metric
from funnelrec.index.config import HNSWIndexConfig, IndexConfigBase, IVFIndexConfig

_FAISS_METRIC: dict[Metric, int] = {
    "ip": faiss.METRIC_INNER_PRODUCT,
    "cosine": faiss.METRIC_INNER_PRODUCT,
    "l2": faiss.METRIC_L2,
}


def faiss_metric(metric: Metric) -> int:
    """The Faiss metric constant searched for ``metric``."""
    return _FAISS_METRIC[metric]


def check_faiss_metric(index: faiss.Index, metric: Metric) -> None:
    """Raise ValueError unless ``index.metric_type`` is the Faiss metric for ``metric``."""
    expected = faiss_metric(metric)
    if index.metric_type != expected:
        raise ValueError(
            f"Faiss index metric_type {index.metric_type} does not match metric {metric!r} "
            f"(expected {expected}); the ANN metric must equal the training similarity"
        )


class FaissIndex(BaseIndex):
    """Shared Faiss plumbing: positions as labels, serialisation, metric checks."""

    _faiss_type: ClassVar[type]

    def __init__(self, config: IndexConfigBase, metric: Metric) -> None:
        super().__init__(config, metric)
        self._index: Any = None

    @abstractmethod
    def _new(self, vectors: NDArray[np.float32]) -> Any:
        """A fresh Faiss index for ``vectors`` (trained when needed, not yet filled)."""

    def _configure(self) -> None:
        """Apply the search-time knobs of ``self.config`` to ``self._index``."""

    def _reset(self, vectors: NDArray[np.float32]) -> None:
        index = self._new(vectors)
        check_faiss_metric(index, self.metric)
        self._index = index
        self._configure()
        self._index.add(vectors)

    def _append(self, vectors: NDArray[np.float32]) -> None:
        self._index.add(vectors)

    def _search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        scores, pos = self._index.search(queries, k)
        if self.metric == "l2":
            scores = -scores
        return scores, pos.astype(np.int64, copy=False)

    def _state(self) -> dict[str, NDArray]:
        if self._index is None:
            return {}
        return {"faiss": faiss.serialize_index(self._index)}

    def _restore(self, state: dict[str, Any]) -> None:
        if "faiss" not in state:
            return
        index = faiss.deserialize_index(np.ascontiguousarray(state["faiss"], dtype=np.uint8))
        if not isinstance(index, self._faiss_type):
            raise ValueError(
                f"index state holds a {type(index).__name__}, expected {self._faiss_type.__name__}"
            )
        check_faiss_metric(index, self.metric)
        if index.d != self._dim:
            raise ValueError(f"index state has dimension {index.d}, ids say {self._dim}")
        self._index = index
        self._configure()

    def _stored(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)


class HNSWIndex(FaissIndex):
    """HNSW approximate search (see :class:`HNSWIndexConfig`).

    Example:
        >>> index = HNSWIndex(HNSWIndexConfig(), "cosine")
        >>> index.build(np.eye(4, dtype=np.float32), np.arange(4))
        >>> index.search(np.array([[0.0, 0.0, 2.0, 0.0]], np.float32), 1)[1].tolist()
        [[2]]
    """

    config: HNSWIndexConfig
    _faiss_type: ClassVar[type] = faiss.IndexHNSWFlat

    def __init__(self, config: HNSWIndexConfig, metric: Metric) -> None:
        super().__init__(config, metric)

    def _new(self, vectors: NDArray[np.float32]) -> Any:
        index = faiss.IndexHNSWFlat(vectors.shape[1], self.config.M, faiss_metric(self.metric))
        index.hnsw.efConstruction = self.config.ef_construction
        return index

    def _configure(self) -> None:
        self._index.hnsw.efSearch = self.config.ef_search


class IVFIndex(FaissIndex):
    """IVF-Flat approximate search (see :class:`IVFIndexConfig`).

    Example:
        >>> index = IVFIndex(IVFIndexConfig(), "l2")
        >>> index.build(np.eye(4, dtype=np.float32), np.arange(4))
        >>> index.search(np.array([[0.0, 0.0, 2.0, 0.0]], np.float32), 1)[1].tolist()
        [[2]]
    """

    config: IVFIndexConfig
    _faiss_type: ClassVar[type] = faiss.IndexIVFFlat

    def __init__(self, config: IVFIndexConfig, metric: Metric) -> None:
        super().__init__(config, metric)
        self._calibrated: int | None = None  # nprobe set by calibrate_recall, saved with it

    @property
    def nlist(self) -> int:
        """The inverted lists of the built index (0 before the build)."""
        return 0 if self._index is None else int(self._index.nlist)

    @property
    def nprobe(self) -> int:
        """The lists one query visits now: the calibrated value, else ``config.nprobe``,
        at most :attr:`nlist`."""
        wanted = self.config.nprobe if self._calibrated is None else self._calibrated
        return min(wanted, max(self.nlist, 1))

    def set_nprobe(self, nprobe: int) -> None:
        """Search ``nprobe`` lists from now on, and save that value with the index (a
        calibration's result; :func:`~funnelrec.index.factory.calibrate_recall`)."""
        if nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {nprobe}")
        self._calibrated = int(nprobe)
        if self._index is not None:
            self._configure()

    def _reset(self, vectors: NDArray[np.float32]) -> None:
        self._calibrated = None  # new lists: an earlier calibration no longer applies
        super()._reset(vectors)

    def _state(self) -> dict[str, NDArray]:
        out = super()._state()
        if self._calibrated is not None:
            out["nprobe"] = np.asarray(self._calibrated, dtype=np.int64)
        return out

    def _restore(self, state: dict[str, Any]) -> None:
        if "nprobe" in state:
            self._calibrated = int(np.asarray(state["nprobe"]))
        super()._restore(state)

    def _new(self, vectors: NDArray[np.float32]) -> Any:
        n, dim = vectors.shape
        if n == 0:
            raise ValueError("an IVF index needs at least one vector to train its quantizer")
        nlist = self.config.lists_for(n)
        metric = faiss_metric(self.metric)
        quantizer = faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        index.cp.seed = self.config.seed
        index.cp.min_points_per_centroid = min(self.config.min_train_points, n // nlist)
        index.train(vectors)
        return index

    def _configure(self) -> None:
        self._index.nprobe = self.nprobe

    def _search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The probed lists' top ``k``; a query whose probed lists hold fewer than ``k`` items
        (a deep fetch: the channels ask for ``k`` plus the longest history of the batch) is
        searched again over every list, so a row is only padded when the index itself holds
        fewer than ``k`` items, as with the other indexes."""
        scores, pos = super()._search(queries, k)
        short = pos[:, -1] < 0
        if short.any() and self._index.nprobe < self._index.nlist:
            every = faiss.SearchParametersIVF()
            every.nprobe = int(self._index.nlist)
            more, found = self._index.search(queries[short], k, params=every)
            scores[short] = -more if self.metric == "l2" else more
            pos[short] = found
        return scores, pos
