"""The vector index protocol, its shared bookkeeping, and the metric check retrievers call.

Every index answers ``search(queries [B, D], k)`` with ``(scores [B, k] float32, ids [B, k]
int64)``: rows sorted by descending score (higher is better; for ``l2`` the score is the
negative squared distance), padded with ``id = -1`` and ``score = -inf`` when fewer than ``k``
items are indexed or found.

``metric`` is the similarity the embeddings were trained with: ``"ip"`` (inner product),
``"cosine"`` (vectors are L2-normalised on build, add and search, then inner product) or
``"l2"``. House rule 10: the index metric equals the training similarity; retrievers call
:func:`assert_metric` when they build or load an index.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, Literal, Protocol, Self, get_args

import numpy as np
from numpy.typing import NDArray

from funnelrec.arrays import unique_sorted
from funnelrec.errors import ConfigError
from funnelrec.index.config import IndexConfigBase

Metric = Literal["ip", "cosine", "l2"]
METRICS: tuple[Metric, ...] = get_args(Metric)


class MetricMismatchError(ConfigError, ValueError):
    """The index metric differs from the similarity the embeddings were trained with."""


class VectorIndex(Protocol):
    """A k-nearest-neighbour index over item vectors with integer ids.

    Attributes:
        metric: the similarity searched, equal to the training similarity.
    """

    metric: Metric

    def build(self, vectors: NDArray[np.float32], ids: NDArray[np.int64]) -> None:
        """Replace the contents with ``vectors`` ``[N, D]`` labelled ``ids`` ``[N]``."""
        ...

    def add(self, vectors: NDArray[np.float32], ids: NDArray[np.int64]) -> None:
        """Append ``vectors`` ``[M, D]`` with new ``ids`` ``[M]``, searchable immediately."""
        ...

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-``k`` per query ``[B, D]``: ``(scores [B, k], ids [B, k])``, -1 padded."""
        ...

    def __len__(self) -> int: ...

    def state(self) -> dict[str, NDArray]:
        """Arrays that :meth:`from_state` restores the index from, without pickle."""
        ...


def assert_metric(index: VectorIndex, expected: Metric) -> None:
    """Raise when ``index`` does not search with the training similarity ``expected``.

    Args:
        index: a built or loaded index.
        expected: the similarity the embeddings were trained with.

    Raises:
        MetricMismatchError: the metrics differ (e.g. a dot-product model searched with L2).

    Example:
        >>> from funnelrec.index import ExactIndex, ExactIndexConfig
        >>> assert_metric(ExactIndex(ExactIndexConfig(), "ip"), "ip")
    """
    if expected not in METRICS:
        raise MetricMismatchError(f"unknown metric {expected!r}; expected one of {METRICS}")
    if index.metric != expected:
        raise MetricMismatchError(
            f"{type(index).__name__} searches with metric {index.metric!r} but the embeddings "
            f"were trained with {expected!r}; build the index with metric={expected!r}"
        )


def prepare_vectors(
    vectors: NDArray[np.floating], metric: Metric, dim: int | None = None, name: str = "vectors"
) -> NDArray[np.float32]:
    """Validate ``vectors`` ``[N, D]`` and return a C-contiguous float32 copy or view.

    For ``cosine`` every row is scaled to unit L2 norm (an all-zero row stays zero).

    Args:
        vectors: ``[N, D]`` floating array.
        metric: the index metric.
        dim: the required ``D`` (None = any positive width).
        name: what to call the array in error messages.

    Raises:
        ValueError: wrong rank, width or dtype, or a non-finite value.
    """
    arr = np.asarray(vectors)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} have dimension {arr.shape[1]}, the index has {dim}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column")
    out: NDArray[np.float32] = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    if metric == "cosine":
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        # float32 / float32 stays float32; astype(copy=False) only tells the stubs so.
        out = (out / np.where(norms > 0, norms, np.float32(1.0))).astype(np.float32, copy=False)
    return out


def check_ids(ids: NDArray[np.integer], n: int, existing: NDArray[np.int64]) -> NDArray[np.int64]:
    """Validate ``ids`` ``[n]``: integers, >= 0, unique and not already in ``existing``.

    Returns:
        ``[n]`` int64 copy of ``ids``.
    """
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"ids must have shape [{n}] (one per vector), got {arr.shape}")
    if n and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if n and arr.min() < 0:
        raise ValueError("ids must be >= 0 (-1 marks padding in search results)")
    uniq = unique_sorted(arr)
    if uniq.shape[0] != n:
        raise ValueError("ids must be unique")
    clash = existing[np.isin(existing, uniq)]
    if clash.shape[0]:
        raise ValueError(f"ids already in the index: {clash[:5].tolist()}")
    return arr


def encode_text(text: str) -> NDArray[np.uint8]:
    """A string as a ``[L]`` uint8 UTF-8 array (storable by any array format)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def decode_text(arr: NDArray[np.uint8]) -> str:
    """Inverse of :func:`encode_text`."""
    return np.asarray(arr, dtype=np.uint8).tobytes().decode("utf-8")


def recall_at_k(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    """Mean share of each row's true ids (``-1`` = padding, ignored) that ``found`` contains.

    Args:
        found: ``[B, k]`` ids returned by an approximate index.
        truth: ``[B, k]`` ids returned by exact search.

    Example:
        >>> recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 2, 9]]))
        0.6666666666666666
    """
    found = np.asarray(found, dtype=np.int64)
    truth = np.asarray(truth, dtype=np.int64)
    rows = np.repeat(np.arange(truth.shape[0]), truth.shape[1])
    # Pair every id with its row so one sorted membership test covers the whole batch.
    width = np.int64(max(int(found.max(initial=0)), int(truth.max(initial=0))) + 2)
    keys_found = np.repeat(np.arange(found.shape[0]), found.shape[1]) * width + found.ravel() + 1
    keys_truth = rows * width + truth.ravel() + 1
    valid = truth.ravel() >= 0
    hit = np.isin(keys_truth, keys_found) & valid
    per_row = np.bincount(rows, weights=hit, minlength=truth.shape[0])
    n_true = np.bincount(rows, weights=valid, minlength=truth.shape[0])
    has = n_true > 0
    return float((per_row[has] / n_true[has]).mean()) if has.any() else 1.0


class BaseIndex(ABC):
    """Template for indexes: validation, id bookkeeping, padding and state live here.

    Subclasses store vectors at positions ``0..N-1`` (in the order given) and implement
    ``_reset`` (replace contents), ``_append`` and ``_search`` (positions, ``-1`` padding).
    """

    config: IndexConfigBase
    metric: Metric

    def __init__(self, config: IndexConfigBase, metric: Metric) -> None:
        if metric not in METRICS:
            raise ConfigError(f"unknown index metric {metric!r}; expected one of {METRICS}")
        self.config = config
        self.metric = metric
        self._ids = np.zeros(0, dtype=np.int64)
        self._dim: int | None = None

    @property
    def dim(self) -> int | None:
        """The vector width ``D``, None before :meth:`build`."""
        return self._dim

    @property
    def ids(self) -> NDArray[np.int64]:
        """``[N]`` ids in insertion order (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def build(self, vectors: NDArray[np.float32], ids: NDArray[np.int64]) -> None:
        """Replace the index contents.

        Args:
            vectors: ``[N, D]`` float item vectors.
            ids: ``[N]`` non-negative unique int ids returned by :meth:`search`.
        """
        arr = prepare_vectors(vectors, self.metric)
        self._ids = check_ids(ids, arr.shape[0], np.zeros(0, dtype=np.int64))
        self._dim = arr.shape[1]
        self._reset(arr)

    def add(self, vectors: NDArray[np.float32], ids: NDArray[np.int64]) -> None:
        """Append items after :meth:`build`; they are searchable on return.

        Args:
            vectors: ``[M, D]`` float vectors of the new items.
            ids: ``[M]`` ids not already in the index.
        """
        if self._dim is None:
            raise RuntimeError(f"{type(self).__name__}.add called before build")
        arr = prepare_vectors(vectors, self.metric, self._dim)
        new_ids = check_ids(ids, arr.shape[0], self._ids)
        if arr.shape[0] == 0:
            return
        self._append(arr)
        self._ids = np.concatenate([self._ids, new_ids])

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-``k`` items per query.

        Args:
            queries: ``[B, D]`` float query vectors.
            k: results per query (>= 1); rows are padded when ``k`` exceeds the hits.

        Returns:
            ``(scores [B, k] float32, ids [B, k] int64)``: descending scores (``-inf`` padding),
            ids ``-1`` where padded.
        """
        if self._dim is None:
            raise RuntimeError(f"{type(self).__name__}.search called before build")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        q = prepare_vectors(queries, self.metric, self._dim, name="queries")
        if q.shape[0] == 0 or len(self) == 0:
            return (
                np.full((q.shape[0], k), -np.inf, dtype=np.float32),
                np.full((q.shape[0], k), -1, dtype=np.int64),
            )
        scores, pos = self._search(q, k)
        pad = pos < 0
        if not pad.any():  # the common case: a few us saved per served search
            return scores.astype(np.float32, copy=False), self._ids[pos]
        ids = np.where(pad, np.int64(-1), self._ids[np.where(pad, 0, pos)])
        scores = np.where(pad, np.float32(-np.inf), scores).astype(np.float32, copy=False)
        return scores, ids

    def state(self) -> dict[str, NDArray]:
        """Arrays to persist: ids, metric and config echo, plus the subclass's own arrays."""
        return {
            "ids": self._ids.copy(),
            "dim": np.asarray(-1 if self._dim is None else self._dim, dtype=np.int64),
            "metric": encode_text(self.metric),
            "config": encode_text(self.config.model_dump_json()),
            **self._state(),
        }

    @classmethod
    def from_state(cls, config: IndexConfigBase, state: dict[str, NDArray]) -> Self:
        """Restore an index saved by :meth:`state` (no pickle, no code from the state).

        ``config`` may differ from the saved one only in its ``search_fields``.

        Raises:
            ConfigError: ``config`` disagrees with the config the index was built with.
            ValueError: the state arrays are inconsistent.
        """
        saved = json.loads(decode_text(state["config"]))
        current = config.model_dump(mode="json")
        differ = sorted(
            name
            for name in set(saved) | set(current)
            if name not in config.search_fields and saved.get(name) != current.get(name)
        )
        if differ:
            raise ConfigError(
                f"index state was built with a different config: {differ} differ "
                f"(saved { ({n: saved.get(n) for n in differ}) }, "
                f"given { ({n: current.get(n) for n in differ}) })"
            )
        metric = decode_text(state["metric"])
        if metric not in METRICS:
            raise ValueError(f"index state has unknown metric {metric!r}")
        index = cls(config, metric)
        ids = np.asarray(state["ids"], dtype=np.int64)
        dim = int(np.asarray(state["dim"]))
        index._ids = ids
        index._dim = None if dim < 0 else dim
        index._restore(state)
        if index._stored() != ids.shape[0]:
            raise ValueError(f"index state holds {index._stored()} vectors but {ids.shape[0]} ids")
        return index

    @abstractmethod
    def _reset(self, vectors: NDArray[np.float32]) -> None:
        """Replace the contents with prepared ``vectors`` ``[N, D]`` at positions 0..N-1."""

    @abstractmethod
    def _append(self, vectors: NDArray[np.float32]) -> None:
        """Append prepared ``vectors`` ``[M, D]`` at positions N..N+M-1."""

    @abstractmethod
    def _search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """``(scores [B, k], positions [B, k])`` for prepared non-empty queries, -1 padded."""

    @abstractmethod
    def _state(self) -> dict[str, NDArray]:
        """The subclass's arrays (keys other than ids, dim, metric, config)."""

    @abstractmethod
    def _restore(self, state: dict[str, Any]) -> None:
        """Load the subclass's arrays from ``state`` (``self.metric``, ``_dim`` already set)."""

    @abstractmethod
    def _stored(self) -> int:
        """How many vectors the backend holds (checked against the ids on load)."""
