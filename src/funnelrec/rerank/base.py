"""The re-ranker protocol, the item-side data it reads and the list re-ranker.

The list re-ranker is the funnel's last stage: per query it takes the ``pool`` best-ranked
candidates, diversifies them (MMR or greedy DPP over an item similarity kernel) and applies the
business rules. It runs on every serving request, so per-query work is a handful of NumPy calls
on a pool-sized kernel; queries are split with one sort, never with a per-query DataFrame filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.frames import rows_at
from funnelrec.errors import DataError
from funnelrec.rerank.config import RerankConfig
from funnelrec.rerank.dpp import dpp_select
from funnelrec.rerank.mmr import mmr_select
from funnelrec.rerank.rules import apply_rules, eligible
from funnelrec.rerank.similarity import item_kernel
from funnelrec.schema.tables import ColumnSpec, TableSpec, check_schema

RERANK_INPUT = TableSpec(
    "scored",
    (
        ColumnSpec("query_id", "int"),
        ColumnSpec("item_idx", "int"),
        ColumnSpec("score", "float"),
        ColumnSpec("rank", "int"),
    ),
)


@dataclass(frozen=True, slots=True)
class ItemSide:
    """Per-item data the re-ranker reads, indexed by ``item_idx``.

    Each array may be shorter than the catalogue (items added after it was built): an
    ``item_idx`` past its end, or negative, has no data there, which reads as a zero embedding
    (similar to nothing), category -1 (unknown) and unknown age (never fresh).

    Attributes:
        embeddings: ``[n_items, d]`` float32 item vectors, or None (another float type works
            but is converted on every call).
        category: ``[n_items]`` int32 category codes, negative = unknown, or None.
        created_at: ``[n_items]`` int64 unix seconds the item was published, or None.
    """

    embeddings: NDArray[np.float32] | None = None
    category: NDArray[np.int32] | None = None
    created_at: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        if self.embeddings is not None and np.ndim(self.embeddings) != 2:
            raise ValueError(
                f"embeddings must be [n_items, d], got shape {np.shape(self.embeddings)}"
            )
        for name in ("category", "created_at"):
            value = getattr(self, name)
            if value is not None and np.ndim(value) != 1:
                raise ValueError(f"{name} must be [n_items], got shape {np.shape(value)}")
        if self.category is not None and np.asarray(self.category).dtype.kind != "i":
            # -1 marks unknown, so the codes need a signed integer type.
            raise ValueError(
                f"category must hold signed integer codes, got {np.asarray(self.category).dtype}"
            )


class Reranker(Protocol):
    """Re-orders and cuts each query's ranked list."""

    config: RerankConfig

    def rerank(
        self,
        scored: pl.DataFrame,
        k: int,
        items: ItemSide,
        consumed: Mapping[int, AbstractSet[int]] | None = None,
        now: NDArray[np.int64] | None = None,
    ) -> pl.DataFrame:
        """``scored`` (``query_id, item_idx, score, rank, ...``) -> at most ``k`` rows per
        query, ``rank`` rewritten 1..n, the old one kept as ``pre_rerank_rank``."""
        ...


def _gather(values: NDArray, idx: NDArray[np.int64], missing: object) -> NDArray:
    """``values[idx]`` with ``missing`` where ``idx`` is negative or past the end."""
    if idx.size == 0 or (idx.min() >= 0 and idx.max() < values.shape[0]):
        return values[idx]  # every item has data (the common case): one gather
    ok = (idx >= 0) & (idx < values.shape[0])
    out = np.full((idx.shape[0], *values.shape[1:]), missing, dtype=values.dtype)
    out[ok] = values[idx[ok]]
    return out


def _fill_scores(
    score: NDArray[np.float64],
    rank: NDArray[np.integer],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Missing scores (null/NaN) take the score of the nearest scored row above, per query.

    Rows are sorted by query then rank. A missing score at the top of a query takes the first
    score below it instead; a query without any score uses ``-rank`` (the upstream order).
    """
    if not np.isnan(score).any():
        return score
    return _fill_kernel(score, rank.astype(np.int64), starts, ends)


@numba.njit(cache=True)
def _fill_kernel(
    score: NDArray[np.float64],
    rank: NDArray[np.int64],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
) -> NDArray[np.float64]:
    """:func:`_fill_scores` as one pass per query (a served list always has missing scores:
    the rows the pre-ranker cut; as NumPy calls the fill costs ~15 of them a request)."""
    out = score.copy()
    for q in range(starts.shape[0]):
        first = -1  # the query's first scored row
        for i in range(starts[q], ends[q]):
            if np.isnan(score[i]):
                if first >= 0:
                    out[i] = out[i - 1]  # the nearest scored row above (already filled)
            elif first < 0:
                first = i
        stop = ends[q] if first < 0 else first
        for i in range(starts[q], stop):
            out[i] = -float(rank[i]) if first < 0 else score[first]
    return out


@dataclass(frozen=True, slots=True)
class _QueryBlocks:
    """The scored rows sorted by query then rank, split into one block per query.

    Attributes:
        order: ``[N]`` input row of each sorted position.
        query: ``[N]`` query_id per sorted position.
        item_idx: ``[N]`` item_idx per *input* row.
        starts / ends: ``[Q]`` each query's block ``[start, end)`` of sorted positions.
        relevance: ``[N]`` float64 score per sorted position, missing ones filled
            (:func:`_fill_scores`).
    """

    order: NDArray[np.int64]
    query: NDArray[np.int64]
    item_idx: NDArray[np.int64]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]
    relevance: NDArray[np.float64]

    @classmethod
    def of(cls, scored: pl.DataFrame) -> _QueryBlocks:
        """Split a validated, non-empty ``scored`` table (one sort, no per-query filter)."""
        query = scored["query_id"].to_numpy().astype(np.int64, copy=False)
        item_idx = scored["item_idx"].to_numpy().astype(np.int64, copy=False)
        rank = scored["rank"].to_numpy()
        score = scored["score"].to_numpy().astype(np.float64)  # null -> NaN
        order = np.lexsort((rank, query))
        q_sorted = query[order]
        first = np.empty(q_sorted.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(q_sorted[1:], q_sorted[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], scored.height)
        relevance = _fill_scores(score[order], rank[order], starts, ends)
        return cls(order, q_sorted, item_idx, starts, ends, relevance)


@dataclass(frozen=True, slots=True)
class _ItemTables:
    """Whole item tables converted once per call (no copy when the dtype already matches);
    rows are gathered per query."""

    emb: NDArray[np.float32] | None
    cat: NDArray[np.integer] | None
    created: NDArray[np.int64] | None

    @classmethod
    def of(cls, items: ItemSide, *, with_created: bool) -> _ItemTables:
        return cls(
            None if items.embeddings is None else np.asarray(items.embeddings, dtype=np.float32),
            None if items.category is None else np.asarray(items.category),
            np.asarray(items.created_at, dtype=np.int64) if with_created else None,
        )


def _now_per_query(now: NDArray[np.int64] | None, n_queries: int) -> NDArray[np.int64]:
    """``now`` as ``[Q]`` int64: one value broadcast, or one per query as given."""
    now_arr = np.asarray(now, dtype=np.int64).reshape(-1)
    if now_arr.size == 1:
        return np.full(n_queries, now_arr[0], dtype=np.int64)
    if now_arr.shape == (n_queries,):
        return now_arr
    raise ValueError(f"now must hold one value or one per query ({n_queries}), got {now_arr.size}")


class ListReranker:
    """Diversify (MMR / DPP / none) then apply the business rules, per query.

    Example:
        >>> scored = pl.DataFrame(
        ...     {"query_id": [1, 1, 1], "item_idx": [0, 1, 2], "score": [0.9, 0.8, 0.1],
        ...      "rank": [1, 2, 3]},
        ...     schema_overrides={"item_idx": pl.Int32},
        ... )
        >>> items = ItemSide(embeddings=np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32))
        >>> out = ListReranker(RerankConfig(method="mmr", lam=0.5)).rerank(scored, 3, items)
        >>> out["item_idx"].to_list(), out["pre_rerank_rank"].to_list()
        ([0, 2, 1], [1, 3, 2])
    """

    def __init__(self, config: RerankConfig) -> None:
        self.config = config

    def rerank(
        self,
        scored: pl.DataFrame,
        k: int,
        items: ItemSide,
        consumed: Mapping[int, AbstractSet[int]] | None = None,
        now: NDArray[np.int64] | None = None,
    ) -> pl.DataFrame:
        """Re-rank each query's top ``config.pool`` candidates into at most ``k`` items.

        Per query: the ``pool`` best rows by ``rank``, minus consumed items and repeated
        ``item_idx`` (the better-ranked copy stays), are diversified by ``config.method``, which
        selects ``min(pool, k + config.slack)`` items; the rest of the pool follows in rank order
        as a last resort for the rules (:func:`~funnelrec.rerank.rules.apply_rules`), which cut
        the list to ``k``. Relevance is the ``score`` column; a null (or NaN) score, an item
        that kept its recall position upstream, counts as the score of the row just above it
        in rank order (the first scored row below it when it is on top; ``-rank`` when the
        query has no score at all), so such items neither jump nor sink on relevance.

        Args:
            scored: ``query_id`` (int), ``item_idx`` (int), ``score`` (float, nullable),
                ``rank`` (int, 1 = best), any other columns (carried through).
            k: the longest list per query, ``>= 0``.
            items: embeddings / categories / creation times by ``item_idx``.
            consumed: query_id -> item_idx the user already consumed (for
                ``rules.filter_consumed``); None = nothing consumed.
            now: as-of unix time for freshness, ``[Q]`` int64 aligned with the distinct
                ``query_id`` in ascending order, or one value for all queries. Required when
                ``rules.freshness_boost`` rounds to a positive number.

        Returns:
            The selected rows, every input column kept, sorted by ``query_id`` then the new
            ``rank`` (1..n per query, n <= k), plus ``pre_rerank_rank`` (the input rank).

        Raises:
            DataError: a required column is missing, mistyped or has nulls.
            ValueError: bad ``k``/``now``, or the config needs item data ``items`` lacks.
        """
        boost = self._check_inputs(scored, k, items, now)
        if scored.height == 0 or k == 0:
            return scored.head(0).with_columns(pl.col("rank").alias("pre_rerank_rank"))
        blocks = _QueryBlocks.of(scored)
        now_q = _now_per_query(now, blocks.starts.shape[0]) if boost else None
        tables = _ItemTables.of(items, with_created=now_q is not None)
        picked = [
            self._rerank_query(
                blocks, qi, k, tables, consumed, None if now_q is None else int(now_q[qi])
            )
            for qi in range(blocks.starts.shape[0])
        ]
        take = np.concatenate(picked)
        new_rank = np.concatenate([np.arange(1, p.shape[0] + 1) for p in picked])
        # Eager column swaps: a with_columns here costs a lazy-plan round trip per request.
        out = rows_at(scored, take)
        pre = out["rank"].alias("pre_rerank_rank")
        out.replace_column(
            out.get_column_index("rank"), pl.Series("rank", new_rank, dtype=pre.dtype)
        )
        return out.hstack([pre])

    def _check_inputs(
        self,
        scored: pl.DataFrame,
        k: int,
        items: ItemSide,
        now: NDArray[np.int64] | None,
    ) -> bool:
        """Validate the :meth:`rerank` arguments; whether the freshness boost is on."""
        cfg, rules = self.config, self.config.rules
        check_schema(scored, RERANK_INPUT)
        for name in ("query_id", "item_idx", "rank"):
            if scored[name].null_count():
                raise DataError("must not contain nulls", path="scored", column=name)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be an integer >= 0, got {k!r}")
        if cfg.method != "rules" and items.embeddings is None and items.category is None:
            raise ValueError(
                f"method '{cfg.method}' needs item embeddings or categories to measure "
                "similarity, and ItemSide has neither (use method='rules' for rules only)"
            )
        boost = round(rules.freshness_boost) > 0
        if boost and (items.created_at is None or now is None):
            raise ValueError(
                "rules.freshness_boost > 0 needs ItemSide.created_at and `now` "
                f"(have created_at: {items.created_at is not None}, now: {now is not None})"
            )
        return boost

    def _rerank_query(
        self,
        blocks: _QueryBlocks,
        qi: int,
        k: int,
        tables: _ItemTables,
        consumed: Mapping[int, AbstractSet[int]] | None,
        now: int | None,
    ) -> NDArray[np.int64]:
        """The input rows (``[n]``, n <= k, in the new order) that query ``qi`` keeps."""
        cfg, rules = self.config, self.config.rules
        s = int(blocks.starts[qi])
        e = int(min(blocks.ends[qi], blocks.starts[qi] + cfg.pool))
        rows = blocks.order[s:e]
        idx = blocks.item_idx[rows]
        cons = consumed.get(int(blocks.query[s])) if consumed is not None else None
        # Consumed items and repeats would be dropped by the rules anyway; dropping them
        # first keeps the diversifier from spending picks (and kernel rows) on them.
        keep = eligible(np.arange(idx.shape[0]), idx, cons, rules)
        idx = idx[keep]
        emb = None if tables.emb is None else _gather(tables.emb, idx, 0.0)
        cat = (
            np.full(idx.shape[0], -1, dtype=np.int64)
            if tables.cat is None
            else _gather(tables.cat, idx, -1)
        )
        relevance = blocks.relevance[s:e][keep]
        seq = self._diversify(relevance, emb, None if tables.cat is None else cat, k)
        fresh = np.zeros(idx.shape[0], dtype=bool)
        if now is not None and tables.created is not None:
            known = (idx >= 0) & (idx < tables.created.shape[0])
            age = now - _gather(tables.created, idx, 0)
            fresh = known & (age <= rules.fresh_age_s)
        final = apply_rules(seq, idx, cat, fresh, None, k, rules)  # consumed items already out
        return rows[keep[final]]

    def _diversify(
        self,
        relevance: NDArray[np.float64],
        emb: NDArray[np.float32] | None,
        cat: NDArray[np.integer] | None,
        k: int,
    ) -> NDArray[np.int64]:
        """``[P]`` positions: the diversified selection, then the rest of the pool by rank."""
        cfg = self.config
        n = relevance.shape[0]
        if cfg.method == "rules" or n == 0:
            return np.arange(n, dtype=np.int64)
        sim = item_kernel(emb, cat, cfg.category_weight)
        n_sel = min(n, k + cfg.slack)
        if cfg.method == "mmr":
            sel = mmr_select(relevance, sim, n_sel, cfg.lam)
        else:
            sel = dpp_select(
                relevance, sim, n_sel, theta=cfg.theta, window=cfg.window, jitter=cfg.jitter
            )
        rest = np.ones(n, dtype=bool)
        rest[sel] = False
        return np.concatenate([sel, np.flatnonzero(rest)])
