"""RQ-KMeans: residual-quantised k-means semantic ids (Faiss k-means per level).

Level 1 clusters the embeddings; level ``l`` clusters the residuals ``x - c_1 - ... - c_{l-1}``
left by the centroids already chosen. Items sharing a prefix are close in content, and the
full code is (nearly) unique when the codebooks are large enough; how unique is measured by
:func:`funnelrec.features.semantic_ids.stats.code_stats`.
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np
from numpy.typing import NDArray

from funnelrec.features.semantic_ids.codes import SemanticIds, as_matrix, nearest
from funnelrec.features.semantic_ids.config import RQKMeansConfig

logger = logging.getLogger(__name__)

MAX_POINTS_PER_CENTROID = 256
"""Faiss samples (seeded) at most this many points per centroid to fit each level."""


class RQKMeans(SemanticIds):
    """Residual-quantised k-means (see the module docstring and :class:`RQKMeansConfig`).

    Example:
        >>> x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
        >>> rq = RQKMeans(RQKMeansConfig(levels=2, codebook_size=8)).fit(x)
        >>> rq.encode(x).shape, rq.sizes
        ((200, 2), (8, 8))
    """

    config: RQKMeansConfig

    def __init__(self, config: RQKMeansConfig) -> None:
        super().__init__()
        self.config = config
        self.centroids: NDArray[np.float32] = np.zeros((0, 0, 0), dtype=np.float32)

    def fit(self, embeddings: NDArray[np.floating]) -> Self:
        """Fit one codebook per level on the residuals of the previous levels.

        Args:
            embeddings: ``[N, D]`` item content embeddings (``N >= 1``).

        Returns:
            self, with ``centroids [L, K, D]`` and ``sizes`` (``K`` clamped to ``N``).
        """
        import faiss  # on use: reading a config must not load Faiss

        x = as_matrix(embeddings, "rq_kmeans")
        if x.shape[0] == 0:
            raise ValueError("rq_kmeans: no embeddings to fit")
        cfg = self.config
        sizes = cfg.sizes_for(x.shape[0])
        residual = x.copy()
        books = []
        for level, k in enumerate(sizes):
            km = faiss.Kmeans(
                x.shape[1],
                k,
                niter=cfg.n_iter,
                seed=cfg.seed + level,
                verbose=False,
                # Few items per code is the point at small catalogues: no warning about it.
                min_points_per_centroid=1,
                max_points_per_centroid=MAX_POINTS_PER_CENTROID,
            )
            km.train(residual)
            book = np.ascontiguousarray(km.centroids, dtype=np.float32)
            residual -= book[nearest(residual, book)]
            books.append(book)
        self.centroids = np.stack(books)
        self.sizes = sizes
        logger.debug(
            "rq_kmeans: %d items, %d levels x %d codes, residual norm %.3f",
            x.shape[0],
            len(sizes),
            sizes[0],
            float(np.linalg.norm(residual, axis=1).mean()),
        )
        return self

    def encode(self, embeddings: NDArray[np.floating]) -> NDArray[np.int32]:
        """``[N, D]`` -> ``[N, L]`` int32: the nearest centroid of each level's residual."""
        self._check_fitted()
        residual = as_matrix(embeddings, "rq_kmeans").copy()
        if residual.shape[1] != self.centroids.shape[2]:
            raise ValueError(
                f"rq_kmeans: embeddings have {residual.shape[1]} dimensions, the codebooks "
                f"{self.centroids.shape[2]}"
            )
        codes = np.empty((residual.shape[0], len(self.sizes)), dtype=np.int32)
        for level, book in enumerate(self.centroids):
            codes[:, level] = nearest(residual, book)
            residual -= book[codes[:, level]]
        return codes

    def state(self) -> dict[str, NDArray]:
        self._check_fitted()
        return {"centroids": self.centroids}

    @classmethod
    def from_state(cls, config: RQKMeansConfig, state: dict[str, NDArray]) -> RQKMeans:
        model = cls(config)
        model.centroids = np.ascontiguousarray(state["centroids"], dtype=np.float32)
        if model.centroids.ndim != 3 or model.centroids.shape[0] != config.levels:
            raise ValueError(
                f"rq_kmeans state holds centroids of shape {model.centroids.shape}; the config "
                f"has {config.levels} levels"
            )
        model.sizes = (int(model.centroids.shape[1]),) * config.levels
        return model
