"""Semantic ids: discrete codes from item content embeddings (docs/recall.md, "Semantic ids").

* :class:`RQKMeans`: residual-quantised k-means (``levels`` codebooks, Faiss k-means);
* :class:`HierarchicalTags`: one agglomerative tree cut at increasing cluster counts;
* :func:`code_stats`: codebook utilisation per level and the collision rate of full codes;
* :class:`PrefixStats`: statistics per code prefix, inherited by items (new ones included)
  from their longest supported prefix;
* :class:`fields.SemanticItemFields`: code prefixes as sparse item fields for the ranker
  (imported from its module: it needs the text encoders).

Nothing here loads Faiss before a model is fitted, so configs may import this package.
"""

from __future__ import annotations

from numpy.typing import NDArray

from funnelrec.features.semantic_ids.codes import SemanticIds, prefix_keys
from funnelrec.features.semantic_ids.config import (
    HierarchicalConfig,
    RQKMeansConfig,
    SemanticIdConfig,
)
from funnelrec.features.semantic_ids.hierarchical import HierarchicalTags
from funnelrec.features.semantic_ids.prefix import OwnTotals, PrefixStats
from funnelrec.features.semantic_ids.rq_kmeans import RQKMeans
from funnelrec.features.semantic_ids.stats import CodeStats, code_stats

__all__ = [
    "CodeStats",
    "HierarchicalConfig",
    "HierarchicalTags",
    "OwnTotals",
    "PrefixStats",
    "RQKMeans",
    "RQKMeansConfig",
    "SemanticIdConfig",
    "SemanticIds",
    "build_semantic_ids",
    "code_stats",
    "prefix_keys",
    "semantic_ids_from_state",
]


def build_semantic_ids(config: RQKMeansConfig | HierarchicalConfig) -> SemanticIds:
    """The unfitted model of ``config.kind``.

    Example:
        >>> type(build_semantic_ids(HierarchicalConfig())).__name__
        'HierarchicalTags'
    """
    if isinstance(config, RQKMeansConfig):
        return RQKMeans(config)
    return HierarchicalTags(config)


def semantic_ids_from_state(
    config: RQKMeansConfig | HierarchicalConfig, state: dict[str, NDArray]
) -> SemanticIds:
    """A fitted model from :meth:`SemanticIds.state` (encodes exactly as the original)."""
    if isinstance(config, RQKMeansConfig):
        return RQKMeans.from_state(config, state)
    return HierarchicalTags.from_state(config, state)
