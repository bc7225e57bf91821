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
from funnelrec.errors import MissingInputError
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase, RetrieverConfig
from funnelrec.recall.sparse import row_ptr
from funnelrec.recall.topk import matmul_topk, ranked_topk, seen_exclusions


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

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        return Popular


def decayed_pairs(
    data: Dataset, half_life_s: float | None
) -> tuple[pl.DataFrame, NDArray[np.float64]]:
    """Distinct positive (user, item) pairs and their weight for popularity counts.

    Args:
        data: the training Dataset (its ``positives`` and ``as_of``).
        half_life_s: weight each pair by ``0.5 ** ((as_of - t) / half_life_s)`` with ``t`` its
            last timestamp; None weights every pair 1.

    Returns:
        ``(pairs [P] with user_idx, item_idx, timestamp, weight [P] float64)``.
    """
    pairs = data.positives.group_by("user_idx", "item_idx").agg(pl.col("timestamp").max())
    if half_life_s is None:
        return pairs, np.ones(pairs.height, dtype=np.float64)
    age = (data.as_of - pairs["timestamp"].to_numpy()).clip(min=0)
    return pairs, np.exp2(-age / half_life_s)


def top_per_row(scores: sp.spmatrix | sp.sparray, n: int) -> sp.csr_matrix:
    """Keep each row's ``n`` best positive entries, scaled so the row's best is 1.

    Normalising within a row lets a small group's best item compete with a big group's when
    rows are mixed (e.g. a user's category shares @ per-category top items).

    Args:
        scores: ``[R, N]`` sparse scores (duplicates summed).
        n: entries kept per row; ties go to the smaller column.

    Returns:
        CSR ``[R, N]`` float64 with at most ``n`` entries per row, each row's maximum 1.

    Example:
        >>> m = sp.csr_matrix(np.array([[0.0, 2.0, 4.0, 2.0]]))
        >>> top_per_row(m, 2).toarray().tolist()
        [[0.0, 0.5, 1.0, 0.0]]
    """
    coo = sp.coo_matrix(sp.csr_matrix(scores, dtype=np.float64))
    keep = coo.data > 0
    rows, cols, vals = coo.row[keep], coo.col[keep], coo.data[keep]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = np.arange(rows.shape[0]) - np.searchsorted(rows, rows, side="left")
    keep = rank < n
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    best = np.zeros(scores.shape[0])
    np.maximum.at(best, rows, vals)
    return sp.csr_matrix((vals / best[rows], (rows, cols)), shape=scores.shape)


def category_top_items(
    item_category: NDArray[np.int32], item_score: NDArray[np.float32], n_cats: int, n: int
) -> sp.csr_matrix:
    """The ``n`` most popular items of every category (see :func:`top_per_row`).

    Args:
        item_category: ``[N]`` category index per item (-1 = none).
        item_score: ``[N]`` popularity (items with score 0 are never kept).
        n_cats: number of categories C (at least 1 row is returned).
        n: items kept per category.

    Returns:
        CSR ``[max(C, 1), N]``: row c holds category c's top items, best = 1.
    """
    items = np.flatnonzero((item_category >= 0) & (item_category < n_cats) & (item_score > 0))
    cats = item_category[items]
    shape = (max(n_cats, 1), item_score.shape[0])
    return top_per_row(sp.csr_matrix((item_score[items], (cats, items)), shape=shape), n)


_Ranking = tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.float32]]
"""``(item_score it was built from, items best first, their scores)``."""
_CategoryLists = tuple[NDArray[np.float32], NDArray[np.int32], sp.csr_matrix]
"""``(item_score, item_category it was built from, per-category top items)``."""


class Popular(RetrieverBase):
    """Popularity retriever (see :class:`PopularConfig`)."""

    supports_cold_users: ClassVar[bool] = True
    supports_new_items: ClassVar[bool] = False

    config: PopularConfig

    def __init__(self, config: PopularConfig | None = None) -> None:
        config = config if config is not None else PopularConfig()
        self.config = config
        self.item_score: NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self.item_category: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        # Query-independent orderings, built on first use (see _ranking, _category_items).
        self._ranked: _Ranking | None = None
        self._per_category: _CategoryLists | None = None

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        half_life = None if self.config.mode == "global" else self.config.half_life_s
        pairs, weight = decayed_pairs(data, half_life)
        score = np.bincount(pairs["item_idx"].to_numpy(), weights=weight, minlength=data.n_items)
        self.item_score = score.astype(np.float32)
        categories = data.item_categories
        if self.config.mode == "category" and categories is None:
            raise MissingInputError(
                "popular mode 'category' needs an items table with a category column"
            )
        self.item_category = (
            categories if categories is not None else np.full(data.n_items, -1, np.int32)
        )
        return self

    def _ranking(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Items with a positive score, best first (ties: smaller item_idx), and their scores.

        Sorted once per fitted ``item_score`` (kept with the array it was sorted from, so a
        new one, from ``fit`` or ``from_state``, is re-sorted): it does not depend on the query,
        and sorting the catalogue was most of a request's time in this channel."""
        if self._ranked is None or self._ranked[0] is not self.item_score:
            score = self.item_score
            order = np.argsort(-score, kind="stable")
            order = order[score[order] > 0]
            self._ranked = (score, order, score[order])
        return self._ranked[1], self._ranked[2]

    def _category_topk(
        self, queries: Queries, k: int
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """Category mode: ``[B, C]`` history category shares @ ``[C, n_items]`` top items."""
        n_cats = int(self.item_category.max(initial=-1)) + 1
        hist_cat = self.item_category[queries.history_item]
        valid = hist_cat >= 0
        # (row, category) keys, sorted: their run lengths are the history counts per category.
        key = queries.history_row()[valid] * max(n_cats, 1) + hist_cat[valid]
        key, count = np.unique(key, return_counts=True)
        rows, cats = np.divmod(key, max(n_cats, 1))
        totals = np.bincount(rows, weights=count, minlength=len(queries))  # exact: integers
        share = (1.0 / np.maximum(totals, 1.0))[rows] * count
        ptr = row_ptr(rows, len(queries))
        # An item is in one category's list only, so each score is one product and the order
        # of the sum cannot change it.
        seen = seen_exclusions(queries, self.config.exclude_seen)
        return matmul_topk(ptr, cats, share, self._category_items(n_cats), k, seen)

    def _category_items(self, n_cats: int) -> sp.csr_matrix:
        """Each category's top items, built once per fitted ``item_score`` / ``item_category``
        (the arrays are kept to tell when a new fit or state replaced them)."""
        cached = self._per_category
        if (
            cached is None
            or cached[0] is not self.item_score
            or cached[1] is not self.item_category
        ):
            top = category_top_items(
                self.item_category, self.item_score, n_cats, self.config.per_category
            )
            self._per_category = cached = (self.item_score, self.item_category, top)
        return cached[2]

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        k = k or self.config.k
        if self.config.mode == "category":
            idx, score = self._category_topk(queries, k)
        else:
            # Every query walks the one global ranking past its seen items.
            items, scores = self._ranking()
            start = np.zeros(len(queries), dtype=np.int64)
            stop = np.full(len(queries), items.shape[0], dtype=np.int64)
            seen = seen_exclusions(queries, self.config.exclude_seen)
            idx, score = ranked_topk(start, stop, items, scores, k, seen)
        return ChannelResult("popular", idx, score)

    def state(self) -> dict[str, NDArray]:
        return {"item_score": self.item_score, "item_category": self.item_category}

    @classmethod
    def from_state(cls, config: PopularConfig, state: dict[str, NDArray]) -> Popular:
        model = cls(config)
        model.item_score = np.asarray(state["item_score"], dtype=np.float32)
        model.item_category = np.asarray(state["item_category"], dtype=np.int32)
        return model
