"""The index configurations, importable without Faiss.

Retriever configs embed an :data:`IndexConfig`, and reading or validating them must not load
Faiss (seconds, and an OpenMP runtime), so the specs live here and the parameter-owning
indexes (:mod:`funnelrec.index.exact`, :mod:`funnelrec.index.faiss_index`) import them.

Example:
    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(IndexConfig).validate_python({"kind": "hnsw", "M": 16}).ef_search
    128
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from funnelrec.errors import ConfigError

__all__ = [
    "AutoIndexConfig",
    "ExactIndexConfig",
    "HNSWIndexConfig",
    "IVFIndexConfig",
    "IndexConfig",
    "IndexConfigBase",
]


class IndexConfigBase(BaseModel):
    """Fields every index config shares. Subclasses add ``kind: Literal[...]`` and knobs.

    ``search_fields`` names the knobs that only affect search (e.g. ``ef_search``, ``nprobe``):
    they may differ between the config an index was built with and the one it is loaded with.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    search_fields: ClassVar[frozenset[str]] = frozenset()


class ExactIndexConfig(IndexConfigBase):
    """Brute-force index (:class:`~funnelrec.index.exact.ExactIndex`).

    ``block_size``: scores (queries x items) materialised at once; bounds memory at
    ``4 * block_size`` bytes (default 64 MiB). Search-only: may change when loading.
    """

    kind: Literal["exact"] = "exact"
    block_size: int = Field(1 << 24, gt=0, description="Query x item scores per block.")

    search_fields: ClassVar[frozenset[str]] = frozenset({"block_size"})


class HNSWIndexConfig(IndexConfigBase):
    """HNSW graph index (``faiss.IndexHNSWFlat``, see :mod:`funnelrec.index.faiss_index`).

    ``M``: neighbours per node (memory ~ ``N * M * 8`` bytes on top of the vectors).
    ``ef_construction``: candidate list while inserting (build time vs graph quality).
    ``ef_search``: candidate list while searching, at least ``k`` is used (speed vs recall);
    search-only, may change when loading.
    """

    kind: Literal["hnsw"] = "hnsw"
    M: int = Field(32, ge=2, le=512)
    ef_construction: int = Field(200, gt=0)
    ef_search: int = Field(128, gt=0)

    search_fields: ClassVar[frozenset[str]] = frozenset({"ef_search"})


class IVFIndexConfig(IndexConfigBase):
    """Inverted-file index (``faiss.IndexIVFFlat``), k-means coarse quantizer.

    ``nlist``: inverted lists; None = ``round(4 * sqrt(N))`` at build. Always capped at
    ``N // min_train_points`` (at least 1) so k-means has enough points per centroid.
    ``nprobe``: lists visited per query (speed vs recall); search-only, may change when loading.
    ``target_recall``: when set, the index's owner calibrates ``nprobe`` after the build on
    sample queries (:func:`~funnelrec.index.factory.calibrate_recall`): the first of
    ``nprobe, 2 nprobe, 4 nprobe, ...`` (at most ``nlist``, where IVF is exact) whose
    recall@k against exact search reaches it. The calibrated value is saved with the index and
    replaces ``nprobe``, which then only starts the calibration. The two-tower and SASRec
    channels calibrate on their training users; an owner that does not (the content channel)
    searches ``nprobe`` lists.
    ``seed``: k-means initialisation and training subsample. Items added after
    :meth:`~funnelrec.index.base.BaseIndex.build`
    go to the lists of the already trained centroids.
    """

    kind: Literal["ivf"] = "ivf"
    nlist: int | None = Field(None, gt=0)
    nprobe: int = Field(48, gt=0)
    target_recall: float | None = Field(None, gt=0, le=1)
    min_train_points: int = Field(39, gt=0, description="Fewest training vectors per list.")
    seed: int = Field(0, ge=0)

    search_fields: ClassVar[frozenset[str]] = frozenset({"nprobe"})

    def lists_for(self, n: int) -> int:
        """The ``nlist`` used for ``n`` training vectors."""
        wanted = self.nlist if self.nlist is not None else round(4 * math.sqrt(n))
        return max(1, min(wanted, n // self.min_train_points))


class AutoIndexConfig(IndexConfigBase):
    """Exact search for catalogues up to ``exact_up_to`` items, ``ann`` above, decided when the
    index is built (from the number of items, :meth:`for_items`).

    Why exact up to 50k: one query costs a matrix-vector product over the catalogue with exact
    search and about ``ef_search`` graph hops with HNSW. At ``ef_search`` 512 (what the
    two-tower needed for recall@200 >= 0.95) and width 64, exact search answered one query
    alone faster up to 50k items (0.49 against 0.60 ms; 1.19 against 0.70 ms at 100k), a batch
    faster too (3.3k against 1.8k queries/s at 50k), needs no build (HNSW: ~10 s at 50k items)
    and finds the true top-k (``benchmarks/index_speed.py --n 5000,20000,50000,100000 --metrics
    ip --norm-sigma 0 --k 200 --ef-search 512 --threads 1``).

    Why IVF above, with ``nprobe`` calibrated to recall@k 0.99 against exact search: on the
    two-tower's trained vectors (``benchmarks/two_tower.py --datasets taobao simulator
    --sim-interactions 3000000 --two-towers two_tower_logq``: Taobao's 55k items and the
    simulator's 75k), IVF at a fixed ``nprobe`` 48 reached recall@200 0.990 on the simulator
    but 0.934 on Taobao (HNSW at ``ef_search`` 512: 0.993 and 0.997), so what a fixed
    ``nprobe`` gives depends on the data. Calibrated, it chose 192 on Taobao (0.993) and 48 on
    the simulator (0.990), built and calibrated in 6.5 and 4.8 s against HNSW's 14.2 and
    11.7 s, and answered one query in 0.54 and 0.24 ms against 1.33 and 0.99 ms. The HNSW
    build also grows faster than the catalogue (``docs/scaling.md``). The 50k cut-off was
    measured against HNSW, not against the calibrated IVF.
    """

    kind: Literal["auto"] = "auto"
    exact_up_to: int = Field(50_000, ge=0, description="Largest catalogue searched exactly.")
    ann: HNSWIndexConfig | IVFIndexConfig = Field(
        default_factory=lambda: IVFIndexConfig(target_recall=0.99),
        discriminator="kind",
        description="The approximate index of larger catalogues.",
    )

    def for_items(self, n_items: int) -> ExactIndexConfig | HNSWIndexConfig | IVFIndexConfig:
        """The concrete config an index of ``n_items`` items is built with."""
        return ExactIndexConfig() if n_items <= self.exact_up_to else self.ann

    def of_kind(self, kind: str) -> ExactIndexConfig | HNSWIndexConfig | IVFIndexConfig:
        """The concrete config a saved index of ``kind`` was built with (its search knobs
        from this config)."""
        if kind == ExactIndexConfig().kind:
            return ExactIndexConfig()
        if kind == self.ann.kind:
            return self.ann
        raise ConfigError(
            f"index state was built as {kind!r}; this auto config builds exact or {self.ann.kind!r}"
        )


IndexConfig = Annotated[
    ExactIndexConfig | HNSWIndexConfig | IVFIndexConfig | AutoIndexConfig,
    Field(discriminator="kind"),
]
"""Any index config, told apart by ``kind``."""
