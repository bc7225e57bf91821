"""Settings of the two ways to turn item content embeddings into discrete semantic ids.

Importable without Faiss: experiment configs (the content channel's prefix prior, the ranker's
code fields) embed these.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_KEY_BITS = 62
"""Prefix keys are int64 mixed-radix numbers: the codebooks' product must stay below 2**62."""


class RQKMeansConfig(BaseModel):
    """Residual-quantised k-means: ``levels`` codebooks, each fitted (Faiss k-means) on what
    the previous levels left unexplained, so a code is coarse-to-fine and its prefixes are
    nested groups of similar items.

    Example:
        >>> RQKMeansConfig(levels=2, codebook_size=16).sizes_for(1000)
        (16, 16)
        >>> RQKMeansConfig().sizes_for(40)  # a tiny catalogue: one code per item at most
        (40, 40, 40)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["rq_kmeans"] = "rq_kmeans"
    levels: int = Field(3, ge=1, le=8, description="Codebooks (code length).")
    codebook_size: int = Field(
        256, ge=2, description="Codes per level; clamped to the number of items at fit."
    )
    n_iter: int = Field(20, ge=1, description="k-means iterations per level.")
    seed: int = Field(0, ge=0, description="k-means seed (level l uses seed + l).")

    @model_validator(mode="after")
    def _keys_fit_int64(self) -> RQKMeansConfig:
        if self.levels * math.log2(self.codebook_size) > MAX_KEY_BITS:
            raise ValueError(
                f"rq_kmeans: {self.levels} levels of {self.codebook_size} codes do not fit a "
                f"64-bit prefix key (levels * log2(codebook_size) must be <= {MAX_KEY_BITS})"
            )
        return self

    def sizes_for(self, n_items: int) -> tuple[int, ...]:
        """Codebook size per level for a catalogue of ``n_items`` (clamped, at least 1)."""
        return (max(1, min(self.codebook_size, n_items)),) * self.levels


class HierarchicalConfig(BaseModel):
    """Hierarchical-cluster tags: one agglomerative tree (SciPy) cut at increasing cluster
    counts, so level ``l``'s clusters nest inside level ``l - 1``'s.

    Example:
        >>> HierarchicalConfig(n_clusters=(4, 32)).sizes_for(10)
        (4, 10)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["hierarchical"] = "hierarchical"
    n_clusters: tuple[int, ...] = Field(
        (16, 128, 1024),
        description="Clusters per level, strictly increasing; clamped to the fitted items.",
    )
    method: Literal["ward", "average", "complete", "single"] = Field(
        "ward",
        description="SciPy linkage (monotone ones only, so that the cuts nest); euclidean.",
    )
    max_fit_items: int = Field(
        5000,
        ge=2,
        description="The tree is built on at most this many items (a seeded sample: linkage "
        "needs N^2 / 2 distances); every item is then tagged by its nearest finest cluster.",
    )
    seed: int = Field(0, ge=0, description="Seed of the sample the tree is built on.")

    @field_validator("n_clusters")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(c < 1 for c in value):
            raise ValueError(f"n_clusters must be positive cluster counts, got {value}")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"n_clusters must be strictly increasing, got {value}")
        if sum(math.log2(c) for c in value) > MAX_KEY_BITS:
            raise ValueError(f"n_clusters {value} do not fit a 64-bit prefix key")
        return value

    @property
    def levels(self) -> int:
        return len(self.n_clusters)

    def sizes_for(self, n_items: int) -> tuple[int, ...]:
        """Clusters per level for ``n_items`` fitted items (clamped, at least 1)."""
        return tuple(max(1, min(c, n_items)) for c in self.n_clusters)


SemanticIdConfig = Annotated[RQKMeansConfig | HierarchicalConfig, Field(discriminator="kind")]
"""Either way of making semantic ids, chosen by ``kind``."""
