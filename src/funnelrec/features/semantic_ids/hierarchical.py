"""Hierarchical-cluster tags: one agglomerative tree over the item embeddings, cut at
increasing cluster counts (SciPy ``linkage`` + ``cut_tree``).

Cuts of one tree nest, so level ``l``'s tag determines every coarser tag. The tree is built on
at most ``max_fit_items`` items (a seeded sample); each finest cluster is then represented by
the mean of its members, and every item, fitted or new, is tagged by its nearest finest
centroid and that cluster's ancestors.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.hierarchy import cut_tree, linkage

from funnelrec.features.semantic_ids.codes import SemanticIds, as_matrix, nearest
from funnelrec.features.semantic_ids.config import HierarchicalConfig


class HierarchicalTags(SemanticIds):
    """Hierarchical-cluster tags (see the module docstring and :class:`HierarchicalConfig`).

    Example:
        >>> x = np.random.default_rng(0).standard_normal((60, 4)).astype(np.float32)
        >>> tags = HierarchicalTags(HierarchicalConfig(n_clusters=(3, 12))).fit(x)
        >>> tags.encode(x).shape, tags.sizes
        ((60, 2), (3, 12))
    """

    config: HierarchicalConfig

    def __init__(self, config: HierarchicalConfig) -> None:
        super().__init__()
        self.config = config
        self.centroids: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self.ancestors: NDArray[np.int32] = np.zeros((0, 0), dtype=np.int32)

    def fit(self, embeddings: NDArray[np.floating]) -> Self:
        """Build the tree on (a sample of) the embeddings and cut it at every level.

        Args:
            embeddings: ``[N, D]`` item content embeddings (``N >= 1``).

        Returns:
            self, with the finest clusters' ``centroids [C, D]`` and ``ancestors [C, L]`` (the
            tag of each finest cluster at every level; the last column is the cluster itself).
        """
        cfg = self.config
        x = as_matrix(embeddings, "hierarchical")
        if x.shape[0] == 0:
            raise ValueError("hierarchical: no embeddings to fit")
        if x.shape[0] > cfg.max_fit_items:
            rng = np.random.default_rng(cfg.seed)
            x = x[np.sort(rng.choice(x.shape[0], cfg.max_fit_items, replace=False))]
        sizes = cfg.sizes_for(x.shape[0])
        if x.shape[0] == 1:
            labels = np.zeros((1, len(sizes)), dtype=np.int64)
        else:
            tree = linkage(x.astype(np.float64), method=cfg.method, metric="euclidean")
            labels = cut_tree(tree, n_clusters=list(sizes)).astype(np.int64)  # [N, L]
        finest = labels[:, -1]
        n_fine = int(finest.max()) + 1
        counts = np.bincount(finest, minlength=n_fine).astype(np.float64)
        sums = np.zeros((n_fine, x.shape[1]), dtype=np.float64)
        np.add.at(sums, finest, x)
        self.centroids = (sums / counts[:, None]).astype(np.float32)
        self.ancestors = np.zeros((n_fine, len(sizes)), dtype=np.int32)
        self.ancestors[finest] = labels  # cuts nest: every member has the same ancestors
        self.sizes = sizes
        return self

    def encode(self, embeddings: NDArray[np.floating]) -> NDArray[np.int32]:
        """``[N, D]`` -> ``[N, L]`` int32: the tags of each row's nearest finest cluster."""
        self._check_fitted()
        x = as_matrix(embeddings, "hierarchical")
        if x.shape[1] != self.centroids.shape[1]:
            raise ValueError(
                f"hierarchical: embeddings have {x.shape[1]} dimensions, the centroids "
                f"{self.centroids.shape[1]}"
            )
        return self.ancestors[nearest(x, self.centroids)]

    def state(self) -> dict[str, NDArray]:
        self._check_fitted()
        return {
            "centroids": self.centroids,
            "ancestors": self.ancestors,
            "sizes": np.array(self.sizes, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, config: HierarchicalConfig, state: dict[str, NDArray]) -> HierarchicalTags:
        model = cls(config)
        model.centroids = np.ascontiguousarray(state["centroids"], dtype=np.float32)
        model.ancestors = np.asarray(state["ancestors"], dtype=np.int32)
        model.sizes = tuple(int(s) for s in state["sizes"])
        if len(model.sizes) != config.levels:
            raise ValueError(
                f"hierarchical state has {len(model.sizes)} levels; the config {config.levels}"
            )
        return model
