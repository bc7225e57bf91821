"""Popularity recall: global, time-decayed recent, and per-category (the user's categories).

Every statistic is computed from the training Dataset only and anchored at ``data.as_of``, so
nothing from a held-out period can leak into the counts.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import Field

from funnelrec.data.dataset import Dataset
from funnelrec.recall.base import ChannelResult, Queries, RetrieverConfig
from funnelrec.recall.topk import sparse_topk


class PopularConfig(RetrieverConfig):
    """Popularity channel.

    ``mode``: ``global`` counts distinct users per item; ``recent`` weights each user-item pair by
    ``0.5 ** ((as_of - t) / half_life_s)``; ``category`` ranks the recent-popular items of the
    categories in the query's history, weighted by the share of history in each category.
    """

    kind: Literal["popular"] = "popular"
    mode: Literal["global", "recent", "category"] = "recent"
    half_life_s: float = Field(7 * 86400.0, gt=0)
    per_category: int = Field(200, gt=0, description="Popular items kept per category.")


class Popular:
    """Popularity retriever (see :class:`PopularConfig`)."""

    supports_cold_users: ClassVar[bool] = True
    supports_new_items: ClassVar[bool] = False

    def __init__(self, config: PopularConfig) -> None:
        self.config = config
        self.item_score: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self.item_category: NDArray[np.int32] = np.zeros(0, dtype=np.int32)

    def fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        pairs = data.positives.group_by("user_idx", "item_idx").agg(pl.col("timestamp").max())
        if self.config.mode == "global":
            weight = np.ones(pairs.height, dtype=np.float64)
        else:
            age = (data.as_of - pairs["timestamp"].to_numpy()).clip(min=0)
            weight = np.exp2(-age / self.config.half_life_s)
        score = np.bincount(pairs["item_idx"].to_numpy(), weights=weight, minlength=data.n_items)
        self.item_score = score.astype(np.float32)
        categories = data.item_categories
        if self.config.mode == "category" and categories is None:
            raise ValueError("popular mode 'category' needs an items table with a category column")
        self.item_category = (
            categories if categories is not None else np.full(data.n_items, -1, np.int32)
        )
        return self

    def _score_matrix(self, queries: Queries, k: int) -> sp.csr_matrix:
        n_items = self.item_score.shape[0]
        rows = len(queries)
        if self.config.mode != "category":
            # One shared row of scores, repeated lazily through the index arrays.
            order = np.argsort(-self.item_score, kind="stable")
            fetch = max(self.config.k, k) + int(queries.history_len.max(initial=0))
            keep = order[self.item_score[order] > 0][:fetch]
            indptr = np.arange(rows + 1, dtype=np.int64) * keep.shape[0]
            indices = np.tile(keep, rows)
            data = np.tile(self.item_score[keep], rows)
            return sp.csr_matrix((data, indices, indptr), shape=(rows, n_items))
        # Category mode: [B, C] history category shares @ [C, n_items] top items per category.
        n_cats = int(self.item_category.max(initial=-1)) + 1
        hist_cat = self.item_category[queries.history_item]
        valid = hist_cat >= 0
        pref = sp.csr_matrix(
            (
                np.ones(int(valid.sum())),
                (queries.history_row()[valid], hist_cat[valid]),
            ),
            shape=(rows, max(n_cats, 1)),
        )
        totals = np.asarray(pref.sum(axis=1)).ravel()
        pref = sp.diags(1.0 / np.maximum(totals, 1.0)) @ pref
        return (pref @ self._category_items(n_cats)).tocsr()

    def _category_items(self, n_cats: int) -> sp.csr_matrix:
        n_items = self.item_score.shape[0]
        has = (self.item_category >= 0) & (self.item_score > 0)
        items = np.flatnonzero(has)
        cats = self.item_category[items]
        order = np.lexsort((-self.item_score[items], cats))
        items, cats = items[order], cats[order]
        first = np.searchsorted(cats, cats, side="left")
        rank = np.arange(items.shape[0]) - first
        keep = rank < self.config.per_category
        items, cats = items[keep], cats[keep]
        # Normalise within category so a small category's best item competes with a big one's.
        best = np.zeros(max(n_cats, 1))
        np.maximum.at(best, cats, self.item_score[items])
        vals = self.item_score[items] / best[cats]
        return sp.csr_matrix((vals, (cats, items)), shape=(max(n_cats, 1), n_items))

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        k = k or self.config.k
        scores = self._score_matrix(queries, k)
        if self.config.exclude_seen:
            idx, score = sparse_topk(scores, k, queries.history_ptr, queries.history_item)
        else:
            idx, score = sparse_topk(scores, k)
        return ChannelResult("popular", idx, score)

    def state(self) -> dict[str, NDArray]:
        return {"item_score": self.item_score, "item_category": self.item_category}

    @classmethod
    def from_state(cls, config: PopularConfig, state: dict[str, NDArray]) -> Popular:
        model = cls(config)
        model.item_score = np.asarray(state["item_score"], dtype=np.float32)
        model.item_category = np.asarray(state["item_category"], dtype=np.int32)
        return model
