"""The ItemCF retriever: fit the item-item neighbour table, score queries from their history."""

from __future__ import annotations

import logging
import math
from typing import ClassVar, Self

import numba
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase
from funnelrec.recall.history import recent_items
from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.itemcf.dense import fit_dense, use_dense_fit
from funnelrec.recall.itemcf.kernel import MIN_SIM, itemcf_topk
from funnelrec.recall.itemcf.popularity import correct_popularity
from funnelrec.recall.itemcf.sequences import Sequences, build_sequences, step_decay
from funnelrec.recall.sparse import row_ptr, sorted_by_row
from funnelrec.recall.topk import matmul_topk, seen_exclusions

logger = logging.getLogger(__name__)

STATE_KEYS = ("neighbor_idx", "neighbor_sim")


class ItemCF(RetrieverBase):
    """Time-decayed item-to-item collaborative filtering recall channel.

    Fitting keeps, for every item, its ``neighbors`` most similar items; retrieval scores
    ``score(j) = sum_i weight_i * sim(i, j)`` over the query's recent history (see
    :mod:`funnelrec.recall.itemcf` for the exact definition).

    Example:
        >>> import polars as pl
        >>> inter = pl.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 11],
        ...     "timestamp": [0, 1, 0, 1], "event": ["click"] * 4, "value": [1.0] * 4})
        >>> model = ItemCF(ItemCFConfig.plain(neighbors=1)).fit(
        ...     Dataset.build(inter), rng=np.random.default_rng(0))
        >>> model.neighbor_idx.tolist()
        [[1], [0]]
    """

    supports_cold_users: ClassVar[bool] = False
    supports_new_items: ClassVar[bool] = False

    config: ItemCFConfig

    def __init__(self, config: ItemCFConfig | None = None) -> None:
        config = config if config is not None else ItemCFConfig()
        self.config = config
        self._idx: NDArray[np.int32] | None = None
        self._sim: NDArray[np.float32] | None = None
        self._matrix: sp.csr_matrix | None = None
        self._everything: NDArray[np.bool_] | None = None

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Compute the top-``neighbors`` similar items of every item.

        Args:
            data: the training Dataset; its ``positives`` are used.
            rng: unused (the fit is deterministic); accepted for the Retriever protocol.

        Returns:
            ``self``, with ``neighbor_idx``/``neighbor_sim`` ``[n_items, neighbors]`` set.
        """
        del rng
        cfg = self.config
        n_items = data.n_items
        seq = build_sequences(data.positives, data.n_users, n_items)
        user_len = seq.user_len
        user_weight, step, recency = _walk_weights(cfg, seq, data.as_of)
        n_users_of = seq.item_users.astype(np.float64)
        norm_i = np.power(n_users_of, cfg.alpha)
        norm_j = np.power(n_users_of, 1.0 - cfg.alpha)
        created, created_rate = _created_decay(cfg, data)
        longest = int(user_len.max()) if user_len.shape[0] else 0
        window = longest if cfg.window is None else min(cfg.window, longest)
        out_idx = np.full((n_items, cfg.neighbors), -1, dtype=np.int32)
        out_sim = np.zeros((n_items, cfg.neighbors), dtype=np.float32)
        n_chunks = np.int64(max(1, min(n_items, 8 * numba.get_num_threads())))
        with numba.parallel_chunksize(1):  # dynamic scheduling of the interleaved chunks
            if use_dense_fit(user_len, window, n_items):  # every pair once (dense.py)
                fit_dense(
                    seq,
                    step,
                    recency,
                    user_weight,
                    cfg,
                    np.int64(window),
                    (norm_i, norm_j),
                    (created, float(created_rate)),
                    n_chunks,
                    (out_idx, out_sim),
                )
            else:
                itemcf_topk(
                    seq.user_ptr,
                    seq.item,
                    step,
                    recency,
                    user_weight,
                    seq.item_ptr,
                    seq.occ_user,
                    seq.occ_pos,
                    np.int64(window),
                    float(cfg.forward_weight),
                    float(cfg.backward_weight),
                    float(cfg.position_decay),
                    norm_i,
                    norm_j,
                    created,
                    float(created_rate),
                    MIN_SIM,
                    n_chunks,
                    out_idx,
                    out_sim,
                )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "itemcf fit: %d distinct (user, item) pairs, %d items, %d neighbour entries",
                seq.item.shape[0],
                n_items,
                int((out_idx >= 0).sum()),
            )
        out_idx, out_sim = correct_popularity(
            out_idx, out_sim, n_users_of, cfg.popularity_correction
        )
        self._set(out_idx, out_sim)
        return self

    # ------------------------------------------------------------- retrieve
    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` items per query from its recent history.

        The last ``history_len`` distinct known items of each history (``r = 0`` newest) get
        weight ``recency_decay ** r`` (times ``0.5 ** ((query_ts - t) / history_half_life_s)``
        when set); ``score = history [B, n_items] @ S [n_items, n_items]``. Unknown users
        (``user_idx == -1``) and empty histories give an all-padding row.

        Args:
            queries: the batch ``[B]`` with per-query histories (oldest first).
            k: candidates per query (default ``config.k``).

        Returns:
            ``ChannelResult`` with ``item_idx``/``score`` ``[B, k]`` (-1 / -inf padding).
        """
        k = self.config.k if k is None else k
        ptr, item, weight = self._history_rows(queries)
        seen = seen_exclusions(queries, self.config.exclude_seen)
        idx, score = matmul_topk(ptr, item, weight, self.similarity_matrix(), k, seen)
        return ChannelResult(self.config.kind, idx, score)

    def history_weights(self, queries: Queries) -> sp.csr_matrix:
        """The weighted recent-history matrix ``[B, n_items]`` (float32) of a query batch."""
        ptr, item, weight = self._history_rows(queries)
        return sp.csr_matrix((weight, item, ptr), shape=(len(queries), self.n_items))

    def history_rows(
        self, queries: Queries
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """:meth:`history_weights` as its CSR arrays ``(ptr, item, weight)``: what recall
        evidence reads on every request, without scipy's ~50 us of constructor checks."""
        return self._history_rows(queries)

    def _history_rows(
        self, queries: Queries
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """:meth:`history_weights` as canonical CSR arrays ``(ptr, item, weight)`` (items
        ascending within a row, as scipy sums them), without building the matrix."""
        cfg = self.config
        # Only the histories of users the model saw count (unknown users get an empty row).
        known = np.repeat(queries.user_idx >= 0, queries.history_len)
        recent = recent_items(queries, cfg.history_len, self._all_items(), known)
        rows, pos, rank = recent.row, recent.pos, recent.rank
        weight = np.power(cfg.recency_decay, rank.astype(np.float64))
        if cfg.history_half_life_s is not None:
            age = np.maximum(queries.timestamp[rows] - queries.history_time[pos], 0)
            weight = weight * np.exp2(-age.astype(np.float64) / cfg.history_half_life_s)
        order = sorted_by_row(rows, recent.item)
        ptr = row_ptr(rows, len(queries))
        return ptr, recent.item[order], weight[order].astype(np.float32)

    def _all_items(self) -> NDArray[np.bool_]:
        """``[n_items]`` all True: every fitted item may count in a history (kept, not
        allocated per request: it is catalogue-sized)."""
        if self._everything is None:
            self._everything = np.ones(self.n_items, dtype=bool)
        return self._everything

    # ---------------------------------------------------------------- state
    @property
    def n_items(self) -> int:
        return int(self.neighbor_idx.shape[0])

    @property
    def neighbor_idx(self) -> NDArray[np.int32]:
        """``[n_items, neighbors]`` int32 neighbours by descending similarity, -1 = padding."""
        if self._idx is None:
            raise RuntimeError("ItemCF is not fitted: call fit() or from_state() first")
        return self._idx

    @property
    def neighbor_sim(self) -> NDArray[np.float32]:
        """``[n_items, neighbors]`` float32 similarities, 0 where ``neighbor_idx`` is -1."""
        if self._sim is None:
            raise RuntimeError("ItemCF is not fitted: call fit() or from_state() first")
        return self._sim

    def similarity_matrix(self) -> sp.csr_matrix:
        """The kept similarities as CSR ``[n_items, n_items]`` float32 (row i = neighbours of i)."""
        if self._matrix is None:
            idx, sim = self.neighbor_idx, self.neighbor_sim
            valid = idx >= 0
            indptr = np.zeros(idx.shape[0] + 1, dtype=np.int64)
            np.cumsum(valid.sum(axis=1), out=indptr[1:])
            m = sp.csr_matrix((sim[valid], idx[valid], indptr), shape=(idx.shape[0],) * 2)
            m.sort_indices()
            self._matrix = m
        return self._matrix

    def state(self) -> dict[str, NDArray]:
        """The fitted arrays: ``neighbor_idx`` and ``neighbor_sim``, both ``[n_items, K]``."""
        return {"neighbor_idx": self.neighbor_idx, "neighbor_sim": self.neighbor_sim}

    @classmethod
    def from_state(cls, config: ItemCFConfig, state: dict[str, NDArray]) -> ItemCF:
        """Rebuild a fitted model from ``config`` and the arrays of :meth:`state`."""
        if set(state) != set(STATE_KEYS):
            raise ConfigError(
                f"{cls.__name__} state needs exactly {STATE_KEYS}, got {sorted(state)}"
            )
        idx = np.asarray(state["neighbor_idx"])
        sim = np.asarray(state["neighbor_sim"])
        if idx.ndim != 2 or idx.shape != sim.shape or idx.shape[1] != config.neighbors:
            raise ConfigError(
                f"{cls.__name__} state arrays must both be [n_items, {config.neighbors}], "
                f"got {idx.shape} and {sim.shape}"
            )
        if idx.size and (idx.min() < -1 or idx.max() >= idx.shape[0]):
            raise ConfigError(
                f"{cls.__name__} state neighbor_idx holds indices outside [-1, n_items)"
            )
        model = cls(config)
        model._set(idx.astype(np.int32), sim.astype(np.float32))
        return model

    def _set(self, idx: NDArray[np.int32], sim: NDArray[np.float32]) -> None:
        idx.flags.writeable = False  # the cached similarity_matrix() must stay in sync
        sim.flags.writeable = False
        self._idx, self._sim, self._matrix, self._everything = idx, sim, None, None


def _walk_weights(
    cfg: ItemCFConfig, seq: Sequences, as_of: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The fit kernels' per-user and per-position weights: ``(act(u) [n_users], step [N],
    recency [N])`` (see :func:`~funnelrec.recall.itemcf.kernel.itemcf_topk`)."""
    user_len = seq.user_len
    if cfg.user_activity_penalty:
        user_weight = 1.0 / np.log1p(np.maximum(user_len, 1).astype(np.float64))
    else:
        user_weight = np.ones(user_len.shape[0], dtype=np.float64)
    half_life = cfg.time_half_life_s if cfg.time_decay == "exponential" else None
    step = step_decay(seq, half_life, cfg.position_decay)
    if cfg.pair_half_life_s is not None:
        age = np.maximum(as_of - seq.time, 0).astype(np.float64)
        recency = np.exp2(-age / cfg.pair_half_life_s)
    else:
        recency = np.ones(seq.item.shape[0], dtype=np.float64)
    return user_weight, step, recency


def _created_decay(cfg: ItemCFConfig, data: Dataset) -> tuple[NDArray[np.float64], float]:
    """``(created [n_items], rate)``: creation times and ``ln 2 / half-life`` (0 = off)."""
    created_at = data.item_created_at
    if cfg.created_half_life_s is not None and created_at is not None:
        return created_at.astype(np.float64), math.log(2.0) / cfg.created_half_life_s
    return np.zeros(data.n_items, dtype=np.float64), 0.0
