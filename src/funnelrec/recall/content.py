"""Item-to-item recall by content: items whose text is close to what the user read recently.

Every item's text (title, category, genres, ...; see :func:`funnelrec.features.text.item_text`)
is embedded once and stored in a cosine vector index. A query's last ``history_len`` distinct
items, weighted ``recency_decay ** r`` (``r = 0`` newest), either form one query vector
(``aggregate="mean"``: weighted mean, normalised, one search) or are searched one by one with
the similarities summed (``aggregate="sum"``).

Items that arrive after training are embedded with the same fitted encoder and added to the
index by :meth:`Content.add_items`, so a brand-new item about X is recalled for users who read
about X: this is the channel that serves cold items.

``pool="fresh"`` restricts the candidates to items created within ``fresh_age_s`` before the
query (plus every item ingested since training): in the full catalogue new items are a few
percent of any neighbourhood, so a dedicated fresh channel (with its own merge quota) is what
reliably puts them in front of the ranker.

``prefix_prior`` (opt-in) adds to each candidate's similarity the log-lift of the statistics
of its semantic-id prefix (:mod:`funnelrec.recall.prefix_prior`): a new item inherits the
popularity (or CTR) of the items whose content codes start like its own.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.errors import MissingInputError
from funnelrec.features.text import TextEncoder, item_text
from funnelrec.index import BaseIndex, Metric, build_index, index_from_state
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase
from funnelrec.recall.content_config import ContentConfig
from funnelrec.recall.history import recent_items
from funnelrec.recall.prefix_prior import PrefixPrior
from funnelrec.recall.sparse import csr_dense_product, row_ptr, sorted_by_row
from funnelrec.recall.topk import coo_topk, ranked_topk, seen_exclusions

# ContentConfig lives in content_config (no Faiss/torch) and is re-exported for the factory.
__all__ = ["METRIC", "Content", "ContentConfig"]

logger = logging.getLogger(__name__)

METRIC: Metric = "cosine"


def _fetch_buckets(k: int, extra: NDArray[np.int64], limit: int) -> NDArray[np.int64]:
    """Per-row search size ``k + extra`` rounded up to a power of two, capped at ``limit``."""
    need = np.maximum(k + extra, 1)
    return np.minimum(2 ** np.ceil(np.log2(need)).astype(np.int64), limit)


class Content(RetrieverBase):
    """Content-embedding item-to-item retriever (see :class:`ContentConfig`).

    Example:
        >>> from funnelrec.features.text import TextEncoderConfig
        >>> inter = pl.DataFrame({"user_id": [1], "item_id": [10], "timestamp": [0],
        ...     "event": ["click"], "value": [1.0]})
        >>> items = pl.DataFrame({"item_id": [10, 11, 12],
        ...     "title": ["space war", "space war returns", "baking bread"]})
        >>> cfg = ContentConfig(k=1, encoder=TextEncoderConfig(kind="hashing", dim=8))
        >>> model = Content(cfg).fit(Dataset.build(inter, items), rng=np.random.default_rng(0))
        >>> q = Queries.from_history([0], [0], [1], Dataset.build(inter, items).positives)
        >>> model.retrieve(q).item_idx.tolist()  # item 11 (idx 1), never the seen item 10
        [[1]]
    """

    supports_cold_users: ClassVar[bool] = False
    supports_new_items: ClassVar[bool] = True

    config: ContentConfig

    def __init__(self, config: ContentConfig | None = None) -> None:
        config = config if config is not None else ContentConfig()
        self.config = config
        self.encoder = TextEncoder(config.encoder)
        self._emb: NDArray[np.float32] | None = None
        self._usable: NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._created: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.pool: str = config.pool  # resolved at fit ("auto" -> "fresh" or "all")
        self._as_of = 0
        self._index: BaseIndex | None = None
        self._prior: PrefixPrior | None = None

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Fit the text encoder on the training items, embed them and build the index.

        Items without a row in ``data.items`` (or with no text) get the zero vector and are
        left out of the index; with ``pool="fresh"`` so are items created more than
        ``fresh_age_s`` before ``data.as_of``.

        Args:
            data: the training Dataset; needs an items table with text columns (and a
                ``created_at`` column for ``pool="fresh"``).
            rng: unused (the encoder has its own seed); accepted for the Retriever protocol.
        """
        del rng
        if data.items is None:
            raise MissingInputError("content channel needs an items table (title, category, ...)")
        created = data.item_created_at
        self.pool = self.config.pool
        if self.pool == "auto":  # new items are only findable by content when dated
            self.pool = "all" if created is None else "fresh"
        if created is None:
            if self.pool == "fresh":
                raise MissingInputError(
                    "content pool 'fresh' needs a created_at column in the items"
                )
            created = np.zeros(data.n_items, dtype=np.int64)
        texts = item_text(data.items, self.config.text_columns)
        self.encoder = TextEncoder(self.config.encoder).fit(texts)
        vectors = self.encoder.encode(texts)
        emb = np.zeros((data.n_items, vectors.shape[1]), dtype=np.float32)
        emb[data.items["item_idx"].to_numpy()] = vectors
        if not np.abs(emb).sum(axis=1).any():
            raise MissingInputError("content channel: no item has any text to embed")
        self._as_of = int(data.as_of)
        self._set_embeddings(emb, created.astype(np.int64))
        if self.config.prefix_prior is not None:
            self._prior = PrefixPrior(self.config.prefix_prior).fit(data, emb, self._usable)
        pool = np.flatnonzero(self._in_pool(np.arange(data.n_items)))
        self._index = build_index(self.config.index, METRIC, pool.shape[0])
        self._index.build(emb[pool], pool.astype(np.int64))
        logger.debug("content fit: %d of %d items indexed", pool.shape[0], data.n_items)
        return self

    def _in_pool(self, item: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether fitted items belong in the index (embedded, and fresh for pool 'fresh')."""
        keep = self._usable[item]
        if self.pool == "fresh":
            keep &= self._created[item] >= self._as_of - self.config.fresh_age_s
        return keep

    def add_items(self, items: pl.DataFrame, item_idx: NDArray[np.int32]) -> None:
        """Embed items ingested after training and make them retrievable at once.

        Args:
            items: ``[M]`` rows with the same text columns as the training items; an optional
                ``created_at`` (unix s) is used by ``pool="fresh"`` (missing: the training
                ``as_of``).
            item_idx: ``[M]`` their new dense indices (not yet known to this channel).
        """
        emb, index = self._fitted()
        item_idx = np.asarray(item_idx, dtype=np.int64)
        if item_idx.shape[0] != items.height:
            raise ValueError(f"{items.height} item rows but {item_idx.shape[0]} indices")
        if item_idx.shape[0] == 0:
            return
        if item_idx.min() < emb.shape[0]:
            known = item_idx[item_idx < emb.shape[0]][:5].tolist()
            raise ValueError(f"add_items got already known item indices {known}")
        vectors = self.encoder.encode(item_text(items, self.config.text_columns))
        n = int(item_idx.max()) + 1
        grown = np.zeros((n, emb.shape[1]), dtype=np.float32)
        grown[: emb.shape[0]] = emb
        grown[item_idx] = vectors
        created = np.full(n, self._as_of, dtype=np.int64)
        created[: emb.shape[0]] = self._created
        if "created_at" in items.columns:
            given = items["created_at"].cast(pl.Int64, strict=False)
            created[item_idx] = given.fill_null(self._as_of).to_numpy()
        has = np.abs(vectors).sum(axis=1) > 0
        index.add(vectors[has], item_idx[has])
        if self._prior is not None:
            self._prior.add_items(vectors, item_idx)
        self._set_embeddings(grown, created)

    # ------------------------------------------------------------- retrieve
    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` items closest in content to each query's recent history.

        Empty histories (and histories of items without text) give an all-padding row.

        Args:
            queries: the batch ``[B]`` with histories (oldest first).
            k: candidates per query (default ``config.k``).

        Returns:
            ``ChannelResult`` ``[B, k]``; scores are cosine similarities (``mean``) or their
            recency-weighted average over history items (``sum``), plus the prefix prior's
            ``weight * log-lift`` with ``prefix_prior``. With ``pool="fresh"``, items created
            more than ``fresh_age_s`` before the query time are dropped.
        """
        cfg = self.config
        k = cfg.k if k is None else k
        # The prior re-orders neighbours: search deeper than k so it has some to promote.
        fetch_k = k if cfg.prefix_prior is None else k * cfg.prefix_prior.oversample
        emb, index = self._fitted()
        b = len(queries)
        rows, item, weight, extra = self._recent(queries)
        if cfg.aggregate == "mean":
            order = sorted_by_row(rows, item)  # scipy's canonical order: the same sums
            # float32 weights: float64 ones would upcast (copy) every embedding per call
            ptr = row_ptr(rows, b)
            qvec = csr_dense_product(ptr, item[order], weight[order].astype(np.float32), emb)
            live = np.flatnonzero(np.diff(ptr) > 0)
            if self._prior is None:
                idx, score = self._ranked_mean_topk(queries, qvec[live], live, extra[live], k)
                return ChannelResult(cfg.kind, idx, score)
            out_rows, out_item, out_score = self._search(
                qvec[live], live, extra[live], fetch_k, len(index)
            )
        else:
            hit_pos, hit_item, sim = self._search(
                emb[item], np.arange(item.shape[0]), extra[rows], fetch_k, len(index)
            )
            total = np.bincount(rows, weights=weight, minlength=b)
            out_rows = rows[hit_pos]
            out_item = hit_item
            out_score = sim * weight[hit_pos] / total[out_rows]
        if self.pool == "fresh":
            fresh = self._created[out_item] >= queries.timestamp[out_rows] - cfg.fresh_age_s
            out_rows, out_item, out_score = out_rows[fresh], out_item[fresh], out_score[fresh]
        if self._prior is not None:
            out_rows, out_item, out_score = self._prior.rescore(out_rows, out_item, out_score)
        # Repeated (row, item) hits (sum mode) are summed.
        seen = seen_exclusions(queries, cfg.exclude_seen)
        idx, score = coo_topk(out_rows, out_item, out_score, b, k, seen)
        return ChannelResult(cfg.kind, idx, score)

    def _recent(
        self, queries: Queries
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
        """``(row, item, weight)`` of each query's recent indexed items, and ``extra [B]``: the
        distinct indexed items of each whole history (searched for on top of ``k``, as they
        are dropped as seen; 0 without ``exclude_seen``)."""
        cfg = self.config
        if not cfg.exclude_seen:
            recent = recent_items(queries, cfg.history_len, self._usable)
            extra = np.zeros(len(queries), dtype=np.int64)
        else:
            # One pass for both: a row's first history_len distinct items (newest first) are
            # the ones a history_len-limited pass keeps.
            recent = recent_items(queries, int(np.iinfo(np.int32).max), self._usable)
            extra = np.bincount(recent.row, minlength=len(queries)).astype(np.int64)
        rows, item, rank = recent.row, recent.item, recent.rank
        if rank.shape[0] and int(rank.max()) >= cfg.history_len:
            keep = rank < cfg.history_len
            rows, item, rank = rows[keep], item[keep], rank[keep]
        return rows, item, np.power(cfg.recency_decay, rank.astype(np.float64)), extra

    def _ranked_mean_topk(
        self,
        queries: Queries,
        vectors: NDArray[np.float32],
        live: NDArray[np.int64],
        extra: NDArray[np.int64],
        k: int,
    ) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """Top-``k`` of the ``mean`` aggregate without a prior: each live query's hits come
        from the index distinct and ranked by the top-k rule already (descending score, ties
        by the smaller id), so they are taken in order instead of gathered and re-sorted
        (``coo_topk`` costs ~40 us of calls per served request).

        Args:
            queries: the batch ``[B]``.
            vectors: ``[V, D]`` the query vectors of the ``live`` rows ``[V]``.
            extra: ``[V]`` hits to fetch on top of ``k``.
            k: items per query.
        """
        _, index = self._fitted()
        b = len(queries)
        if live.shape[0] == 0:  # no query has a usable history: all padding
            return np.full((b, k), -1, dtype=np.int32), np.full((b, k), -np.inf, np.float32)
        min_created = None
        if self.pool == "fresh":
            min_created = queries.timestamp[live] - self.config.fresh_age_s
        start, stop, item, score = self._search_ranked(vectors, extra, k, len(index), min_created)
        row_start, row_stop = np.zeros(b, dtype=np.int64), np.zeros(b, dtype=np.int64)
        row_start[live], row_stop[live] = start, stop
        seen = seen_exclusions(queries, self.config.exclude_seen)
        return ranked_topk(row_start, row_stop, item, score, k, seen)

    def _search_ranked(
        self,
        vectors: NDArray[np.float32],
        extra: NDArray[np.int64],
        k: int,
        limit: int,
        min_created: NDArray[np.floating[Any]] | None,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """Search each vector for ``k + extra`` hits (the bucketed sizes of :meth:`_search`),
        kept ranked: vector ``v``'s hits are ``item[start[v]:stop[v]]``, best first, ``-1``
        for padding and for items created before ``min_created[v]`` (when given).

        Returns:
            ``(start [V], stop [V], item [F], score [F])``.
        """
        _, index = self._fitted()
        fetch = _fetch_buckets(k, extra, max(limit, 1))
        start = np.zeros(fetch.shape[0], dtype=np.int64)
        parts_item, parts_score = [], []
        offset = 0
        sizes = np.unique(fetch)
        for size in sizes:
            if sizes.shape[0] == 1:  # one bucket (a served request): every vector, as it is
                sel, selected = np.arange(fetch.shape[0]), vectors
            else:
                sel = np.flatnonzero(fetch == size)
                selected = vectors[sel]
            score, ids = index.search(selected, int(size))
            if min_created is not None:  # padding (-1) stays -1 whatever it reads
                ids = np.where(self._created[ids] >= min_created[sel][:, None], ids, -1)
            start[sel] = offset + np.arange(sel.shape[0], dtype=np.int64) * size
            offset += ids.size
            parts_item.append(ids.ravel())
            parts_score.append(score.ravel())
        if len(parts_item) == 1:  # a served request: one bucket, no copy
            return start, start + fetch, parts_item[0], parts_score[0]
        if not parts_item:
            return start, start, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return start, start + fetch, np.concatenate(parts_item), np.concatenate(parts_score)

    def _search(
        self,
        vectors: NDArray[np.float32],
        owner: NDArray[np.int64],
        extra: NDArray[np.int64],
        k: int,
        limit: int,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """Search each vector for ``k + extra`` hits (bucketed sizes); flat non-padding hits.

        Returns:
            ``(owner [H], item [H], score [H])`` for every hit.
        """
        _, index = self._fitted()
        fetch = _fetch_buckets(k, extra, max(limit, 1))
        parts_owner, parts_item, parts_score = [], [], []
        for size in np.unique(fetch):
            sel = np.flatnonzero(fetch == size)
            score, ids = index.search(vectors[sel], int(size))
            hit = ids >= 0
            parts_owner.append(np.broadcast_to(owner[sel][:, None], ids.shape)[hit])
            parts_item.append(ids[hit])
            parts_score.append(score[hit].astype(np.float64))
        if not parts_owner:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.float64)
        return np.concatenate(parts_owner), np.concatenate(parts_item), np.concatenate(parts_score)

    # ---------------------------------------------------------------- state
    def _set_embeddings(self, emb: NDArray[np.float32], created: NDArray[np.int64]) -> None:
        self._emb = emb
        self._usable = np.abs(emb).sum(axis=1) > 0
        self._created = created

    def _fitted(self) -> tuple[NDArray[np.float32], BaseIndex]:
        if self._emb is None or self._index is None:
            raise RuntimeError("Content is not fitted: call fit() or from_state() first")
        return self._emb, self._index

    @property
    def item_embeddings(self) -> NDArray[np.float32]:
        """``[n_items, D]`` float32 unit-norm content vectors (zero = no text)."""
        return self._fitted()[0]

    def similarity_vectors(self) -> NDArray[np.float32] | None:
        """The content embeddings: what the re-ranker measures similarity with."""
        return self.item_embeddings

    def state(self) -> dict[str, NDArray]:
        """Embeddings, creation times, encoder state (``encoder.*``), index state (``index.*``)."""
        emb, index = self._fitted()
        out: dict[str, NDArray] = {
            "embeddings": emb,
            "created_at": self._created,
            "as_of": np.array([self._as_of], dtype=np.int64),
            "pool": np.array([self.pool]),
        }
        out.update({f"encoder.{key}": value for key, value in self.encoder.state().items()})
        out.update({f"index.{key}": value for key, value in index.state().items()})
        if self._prior is not None:
            out.update({f"prior.{key}": value for key, value in self._prior.state().items()})
        return out

    @classmethod
    def from_state(cls, config: ContentConfig, state: dict[str, NDArray]) -> Content:
        model = cls(config)
        sub: dict[str, dict[str, NDArray]] = {"encoder": {}, "index": {}, "prior": {}}
        for key, value in state.items():
            head, _, rest = key.partition(".")
            if head in sub and rest:
                sub[head][rest] = value
        model.encoder = TextEncoder.from_state(config.encoder, sub["encoder"])
        model._as_of = int(state["as_of"][0])
        # Saved before "auto" existed: the config's pool was the fitted one.
        model.pool = str(state["pool"][0]) if "pool" in state else config.pool
        model._set_embeddings(
            np.asarray(state["embeddings"], dtype=np.float32),
            np.asarray(state["created_at"], dtype=np.int64),
        )
        model._index = index_from_state(config.index, METRIC, sub["index"])
        if config.prefix_prior is not None:
            model._prior = PrefixPrior.from_state(config.prefix_prior, sub["prior"])
        return model
