"""Code-prefix priors for the content channel: a new item inherits the statistics of items
whose semantic id starts like its own.

The content channel (``ContentConfig.prefix_prior``) fits semantic ids on its own item
embeddings; every item gets a prior from the popularity or CTR of its longest code prefix
that at least ``min_support`` training items share (:class:`~funnelrec.features.
semantic_ids.PrefixStats`), each training item's own statistics left out, so a fitted item is
judged exactly as a brand-new item with the same content would be. The channel adds
``weight * log(rate / global rate)`` (the prefix's log-lift) to its similarity scores.

Statistics are anchored at ``data.as_of`` like every popularity count: nothing after the
training cutoff is read.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.data.dataset import Dataset
from funnelrec.data.state import prefixed
from funnelrec.errors import MissingInputError
from funnelrec.features.semantic_ids import (
    OwnTotals,
    PrefixStats,
    RQKMeansConfig,
    SemanticIdConfig,
    SemanticIds,
    build_semantic_ids,
    prefix_keys,
    semantic_ids_from_state,
)
from funnelrec.recall.popular import decayed_pairs

DAY_S = 86_400.0
IMPRESSION = "impression"


class PrefixPriorConfig(BaseModel):
    """How the content channel weighs items by their code prefix's statistics.

    Example:
        >>> PrefixPriorConfig(statistic="ctr", min_support=10).ids.kind
        'rq_kmeans'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    ids: SemanticIdConfig = Field(
        default_factory=RQKMeansConfig, description="The semantic ids (rq_kmeans/hierarchical)."
    )
    statistic: Literal["popularity", "ctr"] = Field(
        "popularity",
        description="'popularity': time-decayed positive users per item; 'ctr': ctr_event "
        "rows over impressions (needs impression rows).",
    )
    half_life_s: float = Field(7 * DAY_S, gt=0, description="popularity: half-life.")
    ctr_event: str = Field("click", description="ctr: the event counted over impressions.")
    min_support: int = Field(
        5, ge=1, description="Training items a prefix needs before an item inherits from it."
    )
    smoothing: float = Field(
        1.0,
        gt=0,
        description="Pseudo-items (popularity) or pseudo-impressions (ctr) at the global rate "
        "mixed into every prefix's rate.",
    )
    weight: float = Field(0.05, ge=0, description="Score += weight * log(prefix rate / global).")
    oversample: int = Field(
        4, ge=1, description="Neighbours searched per requested candidate before re-scoring."
    )


def _item_totals(
    data: Dataset, config: PrefixPriorConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(num [n_items], den [n_items])`` of each training item's statistic."""
    n = data.n_items
    if config.statistic == "popularity":
        pairs, weight = decayed_pairs(data, config.half_life_s)
        num = np.bincount(pairs["item_idx"].to_numpy(), weights=weight, minlength=n)
        return num.astype(np.float64), np.ones(n, dtype=np.float64)
    counts = (
        data.interactions.filter(pl.col("event").is_in([IMPRESSION, config.ctr_event]))
        .group_by("item_idx", "event")
        .len()
    )
    if not (counts["event"] == IMPRESSION).any():
        raise MissingInputError(
            "content prefix_prior statistic 'ctr' needs impression rows; use 'popularity'"
        )

    def total(event: str) -> NDArray[np.float64]:
        part = counts.filter(pl.col("event") == event)
        return np.bincount(
            part["item_idx"].to_numpy(), weights=part["len"].to_numpy(), minlength=n
        ).astype(np.float64)

    return total(config.ctr_event), total(IMPRESSION)


class PrefixPrior:
    """Semantic ids + prefix statistics -> a log-lift per item (see the module docstring).

    Example:
        >>> inter = pl.DataFrame({"user_id": [1, 2, 3], "item_id": [0, 0, 1],
        ...     "timestamp": [0, 0, 0], "event": ["click"] * 3, "value": [1.0] * 3})
        >>> data = Dataset.build(inter, as_of=1)
        >>> emb = np.eye(2, dtype=np.float32)
        >>> cfg = PrefixPriorConfig(ids={"kind": "rq_kmeans", "levels": 1}, min_support=1)
        >>> prior = PrefixPrior(cfg).fit(data, emb, np.ones(2, bool))
        >>> prior.lift(np.array([0, 1])).round(3).tolist()  # own counts left out: the global
        [0.0, 0.0]
    """

    def __init__(self, config: PrefixPriorConfig) -> None:
        self.config = config
        self.ids: SemanticIds | None = None
        self.stats: PrefixStats | None = None
        self.codes: NDArray[np.int32] = np.zeros((0, 0), dtype=np.int32)  # [n, L], -1 = none
        self._lift: NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    def fit(
        self, data: Dataset, embeddings: NDArray[np.float32], usable: NDArray[np.bool_]
    ) -> Self:
        """Fit the ids on the usable items' embeddings, then every item's prior.

        Args:
            data: the training Dataset (positives or impressions, ``as_of``).
            embeddings: ``[n_items, D]`` the channel's content vectors.
            usable: ``[n_items]`` items with a vector (the others get no code and lift 0).
        """
        members = np.flatnonzero(usable)
        if members.shape[0] == 0:
            raise MissingInputError("content prefix_prior: no item has a content vector")
        self.ids = build_semantic_ids(self.config.ids).fit(embeddings[members])
        codes = np.full((data.n_items, len(self.ids.sizes)), -1, dtype=np.int32)
        codes[members] = self.ids.encode(embeddings[members])
        num, den = _item_totals(data, self.config)
        keys = prefix_keys(codes[members], self.ids.sizes)
        self.stats = PrefixStats.fit(keys, num[members], den[members])
        own = OwnTotals(num[members], den[members], np.ones(members.shape[0], dtype=bool))
        lift = np.zeros(data.n_items, dtype=np.float32)
        lift[members] = self._log_lift(keys, own)
        self.codes, self._lift = codes, lift
        return self

    def _log_lift(self, keys: NDArray[np.int64], own: OwnTotals | None) -> NDArray[np.float32]:
        assert self.stats is not None
        rate, _ = self.stats.inherit(
            keys, min_support=self.config.min_support, smoothing=self.config.smoothing, own=own
        )
        glob = self.stats.global_rate
        if glob <= 0:  # nothing was ever positive: no prefix stands out
            return np.zeros(keys.shape[0], dtype=np.float32)
        return np.log(rate / glob).astype(np.float32)

    def add_items(self, vectors: NDArray[np.float32], item_idx: NDArray[np.integer]) -> None:
        """Code items ingested after training and give them their prefix's prior.

        Args:
            vectors: ``[M, D]`` their content vectors (zero rows: no text, no prior).
            item_idx: ``[M]`` their dense indices (beyond every fitted item).
        """
        if self.ids is None:
            raise RuntimeError("PrefixPrior is not fitted: call fit() or from_state()")
        n = max(int(item_idx.max(initial=-1)) + 1, self.codes.shape[0])
        codes = np.full((n, self.codes.shape[1]), -1, dtype=np.int32)
        codes[: self.codes.shape[0]] = self.codes
        lift = np.zeros(n, dtype=np.float32)
        lift[: self._lift.shape[0]] = self._lift
        has = np.abs(vectors).sum(axis=1) > 0
        new = self.ids.encode(vectors[has])
        codes[item_idx[has]] = new
        lift[item_idx[has]] = self._log_lift(prefix_keys(new, self.ids.sizes), None)
        self.codes, self._lift = codes, lift

    def lift(self, item: NDArray[np.integer]) -> NDArray[np.float64]:
        """``[H]`` log-lift of each item's inherited rate (0 for items without a code)."""
        item = np.asarray(item, dtype=np.int64)
        known = (item >= 0) & (item < self._lift.shape[0])
        out = np.zeros(item.shape[0], dtype=np.float64)
        out[known] = self._lift[item[known]]
        return out

    def rescore(
        self, rows: NDArray[np.int64], items: NDArray[np.int64], scores: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """Sum repeated ``(row, item)`` hits, then add ``weight * lift`` once per pair.

        Args:
            rows, items, scores: ``[H]`` hits (a pair may repeat: summed, as the top-k would).

        Returns:
            ``(rows [P], items [P], scores [P])`` one entry per distinct pair.
        """
        if rows.shape[0] == 0:
            return rows, items, scores
        span = int(items.max()) + 1
        pair, inverse = np.unique(rows * span + items, return_inverse=True)
        total = np.bincount(inverse, weights=scores, minlength=pair.shape[0])
        out_rows, out_items = np.divmod(pair, span)
        return out_rows, out_items, total + self.config.weight * self.lift(out_items)

    def state(self) -> dict[str, NDArray]:
        """Codes, priors, the ids' state (``ids.*``) and the prefix table (``stats.*``)."""
        if self.ids is None or self.stats is None:
            raise RuntimeError("PrefixPrior is not fitted")
        out: dict[str, NDArray] = {"codes": self.codes, "lift": self._lift}
        out.update({f"ids.{k}": v for k, v in self.ids.state().items()})
        out.update({f"stats.{k}": v for k, v in self.stats.to_arrays().items()})
        return out

    @classmethod
    def from_state(cls, config: PrefixPriorConfig, state: dict[str, NDArray]) -> PrefixPrior:
        prior = cls(config)
        prior.ids = semantic_ids_from_state(config.ids, prefixed(state, "ids."))
        prior.stats = PrefixStats.from_arrays(prefixed(state, "stats."))
        prior.codes = np.asarray(state["codes"], dtype=np.int32)
        prior._lift = np.asarray(state["lift"], dtype=np.float32)
        return prior
