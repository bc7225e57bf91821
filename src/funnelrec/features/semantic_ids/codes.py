"""What every semantic-id model shares: the fit / encode / state contract, nearest-centroid
assignment and the prefix keys that stand for a code's first ``l`` levels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.vq import vq

from funnelrec.features.semantic_ids.config import HierarchicalConfig, RQKMeansConfig


class SemanticIds(ABC):
    """Discrete codes ``[N, L]`` for embeddings ``[N, D]`` (config + fit + encode + state).

    ``sizes[l]`` is level ``l``'s codebook size (codes are in ``[0, sizes[l])``); it is
    known after :meth:`fit` (the configured size clamped to the catalogue).
    """

    config: RQKMeansConfig | HierarchicalConfig

    def __init__(self) -> None:
        self.sizes: tuple[int, ...] = ()

    @abstractmethod
    def fit(self, embeddings: NDArray[np.floating]) -> Self:
        """Learn the codebooks from ``[N, D]`` embeddings (deterministic for a config)."""

    @abstractmethod
    def encode(self, embeddings: NDArray[np.floating]) -> NDArray[np.int32]:
        """``[N, D]`` -> ``[N, L]`` int32 codes (items seen at fit or new ones alike)."""

    @abstractmethod
    def state(self) -> dict[str, NDArray]:
        """Fitted arrays, for :func:`semantic_ids_from_state`."""

    def _check_fitted(self) -> None:
        if not self.sizes:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() or from_state()")


def as_matrix(embeddings: NDArray[np.floating], what: str) -> NDArray[np.float32]:
    """``[N, D]`` float32 C-contiguous (what Faiss and ``vq`` need), checked finite."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what}: embeddings must be [N, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: embeddings contain NaN or infinite values")
    return x


def nearest(x: NDArray[np.float32], centroids: NDArray[np.float32]) -> NDArray[np.int32]:
    """Index of each row's nearest centroid (euclidean; ties to the smaller index).

    Args:
        x: ``[N, D]`` float32.
        centroids: ``[K, D]`` float32.

    Returns:
        ``[N]`` int32 in ``[0, K)``.

    Example:
        >>> c = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
        >>> nearest(np.array([[0.9, 0.8], [0.1, 0.0]], np.float32), c).tolist()
        [1, 0]
    """
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.int32)
    code, _ = vq(x, centroids, check_finite=False)
    return code.astype(np.int32)


def prefix_keys(codes: NDArray[np.integer], sizes: tuple[int, ...]) -> NDArray[np.int64]:
    """One int64 key per item and prefix length: column ``l`` identifies ``codes[:, :l + 1]``.

    The key is the mixed-radix number of the prefix (first level most significant), so two
    items share column ``l`` exactly when their first ``l + 1`` codes agree.

    Args:
        codes: ``[N, L]`` codes, level ``l`` in ``[0, sizes[l])``.
        sizes: the ``L`` codebook sizes.

    Returns:
        ``[N, L]`` int64 keys.

    Example:
        >>> prefix_keys(np.array([[1, 2], [1, 3]]), (4, 5)).tolist()
        [[1, 7], [1, 8]]
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] != len(sizes):
        raise ValueError(f"codes of shape {codes.shape} do not match {len(sizes)} levels")
    keys = np.empty_like(codes)
    running = np.zeros(codes.shape[0], dtype=np.int64)
    for level, size in enumerate(sizes):
        running = running * size + codes[:, level]
        keys[:, level] = running
    return keys
