"""EASE recall (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

A closed-form item-item model: with ``X`` the binary user x item matrix of positives,

    P = (X^T X + lambda I)^{-1},    B = I - P diag(1 / diag(P))    (so diag(B) = 0)

and a query with history row ``x`` scores every item by ``x @ B``. ``B`` is dense, so memory and
fit time grow with the square and the cube of the catalogue: ``max_items`` caps the modelled
items (the most popular ones are kept, see :class:`EASEConfig`).

The module also holds :func:`dense_topk`, :func:`history_matrix` and :func:`one_thread`, used by
the ALS channel (:mod:`funnelrec.recall.als`), which scores whole catalogues densely too.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, Literal, Self

import numba
import numpy as np
import polars as pl
import scipy.linalg.lapack as lapack
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import Field
from threadpoolctl import ThreadpoolController, threadpool_limits

from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError, MissingInputError
from funnelrec.index.exact import topk_rows
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase, RetrieverConfig
from funnelrec.recall.topk import binary_matmul_topk

__all__ = ["EASE", "EASEConfig", "dense_topk", "one_thread"]

logger = logging.getLogger(__name__)

STATE_KEYS = ("weights", "item_idx", "n_items")
SCORE_BLOCK = 1 << 24
"""Float32 cells per block (64 MB) while building X^T X (and per block of ALS scores)."""
PARALLEL_FROM = 4096
"""Modelled items from which the Cholesky runs on all cores by default. Below, it takes under
a second on one core, and threaded LAPACK loses to thread hand-offs: on the shared 2-core box
(load ~5) 374 items took 1.5 s on two threads and 3 ms on one, 4000 items 5.0 s against 0.8 s."""


class EASEConfig(RetrieverConfig):
    """EASE item-item recall channel (see :mod:`funnelrec.recall.ease`).

    ``regularization`` is the paper's lambda. 500 is its order of magnitude for MovieLens-20M
    scale data (the paper used 500 there, 1000 on Netflix, 200 on MSD); tune it per dataset.
    ``max_items`` bounds the dense item x item weight matrix, ``max_items^2 x 4`` bytes: the
    default 20_000 keeps it at 1.6 GB, inside a ~2 GB budget for the channel: the fit inverts
    the matrix in place, so its peak is that matrix plus ~100-200 MB of blocks (measured:
    +0.5 GB for 10_000 items, a 0.4 GB matrix); 50_000 items would take 10 GB. When the
    catalogue has more items with positives, only the ``max_items`` most popular (distinct
    users) are modelled and the others are never retrieved.

    Example:
        >>> EASEConfig().regularization, EASEConfig().max_items
        (500.0, 20000)
    """

    kind: Literal["ease"] = "ease"
    regularization: float = Field(
        500.0, gt=0, description="L2 penalty lambda added to the diagonal of X^T X."
    )
    max_items: int = Field(
        20_000,
        gt=0,
        description="Most popular items modelled; the weight matrix costs max_items^2 x 4 bytes.",
    )
    fit_threads: int | None = Field(
        None,
        ge=1,
        description="BLAS threads for the factorisation; None = one below "
        f"{PARALLEL_FROM} modelled items, the BLAS default (all cores) from there on.",
    )

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        return EASE


# ---------------------------------------------------------------------- shared helpers


@functools.cache
def _controller() -> ThreadpoolController:
    # Built once: inspecting the loaded libraries costs ~2 ms, limiting them ~0.03 ms. Libraries
    # loaded later (none on this path: NumPy and SciPy are imported above) would be missed.
    return ThreadpoolController()


@contextmanager
def one_thread() -> Iterator[None]:
    """Limit BLAS and OpenMP pools to one thread for the block (serving stays single-threaded:
    a worker's dense products must not fight the other workers for the cores)."""
    with _controller().limit(limits=1):
        yield


def dense_topk(
    scores: NDArray[np.float32], columns: NDArray[np.int32], k: int
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Top-``k`` columns per row of dense scores; ``-inf`` marks a column that is no candidate.

    Args:
        scores: ``[B, N]`` float32 (excluded cells already ``-inf``).
        columns: ``[N]`` ascending item_idx of each column (ties go to the smaller item).
        k: items per row.

    Returns:
        ``(item_idx [B, k] int32 with -1 padding, score [B, k] float32 with -inf padding)``,
        rows in descending score.

    Example:
        >>> s = np.array([[0.5, -np.inf, 2.0]], np.float32)
        >>> dense_topk(s, np.array([4, 7, 9], np.int32), 3)[0].tolist()
        [[9, 4, -1]]
    """
    out_idx = np.full((scores.shape[0], k), -1, dtype=np.int32)
    out_score = np.full((scores.shape[0], k), -np.inf, dtype=np.float32)
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        return out_idx, out_score
    top, pos = topk_rows(scores, columns.astype(np.int64), k)
    keep = np.isfinite(top)
    width = top.shape[1]
    out_idx[:, :width] = np.where(keep, columns[pos], -1)
    out_score[:, :width] = np.where(keep, top, -np.inf)
    return out_idx, out_score


def column_index(item_idx: NDArray[np.int32], n_items: int) -> NDArray[np.int32]:
    """``[n_items]`` the model column of each catalogue item (-1 = not modelled)."""
    column_of = np.full(n_items, -1, dtype=np.int32)
    column_of[item_idx] = np.arange(item_idx.shape[0], dtype=np.int32)
    return column_of


@numba.njit(cache=True)
def _history_columns(ptr, item, column_of, out_ptr, out_cols):  # pragma: no cover - compiled
    """Fill ``out_ptr [B + 1]`` and ``out_cols`` with each row's distinct modelled columns,
    ascending; returns how many columns were written."""
    m = 0
    for r in range(ptr.shape[0] - 1):
        start = m
        for p in range(ptr[r], ptr[r + 1]):
            it = item[p]
            if it >= 0 and it < column_of.shape[0] and column_of[it] >= 0:
                out_cols[m] = column_of[it]
                m += 1
        row = np.sort(out_cols[start:m])
        m = start
        for t in range(row.shape[0]):
            if t == 0 or row[t] != row[t - 1]:
                out_cols[m] = row[t]
                m += 1
        out_ptr[r + 1] = m
    return m


def history_columns(
    queries: Queries, column_of: NDArray[np.int32], n_cols: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each query's distinct modelled history items, as CSR arrays of model columns.

    One compiled pass over the histories: the NumPy version (map, mask, a sortable key per
    entry, unique, divmod, offsets) cost ~40 us of calls for a served request's one row.

    Args:
        queries: the batch ``[B]``.
        column_of: ``[n_items]`` the model column of each catalogue item (-1 = not modelled).
            History items past the catalogue (ingested after fitting) are not modelled either.
        n_cols: N, the number of model columns.

    Returns:
        ``(ptr [B + 1], cols [M])`` with each row's columns distinct and ascending.
    """
    del n_cols  # the columns are bounded by column_of already
    out_ptr = np.zeros(len(queries) + 1, dtype=np.int64)
    out_cols = np.empty(queries.history_item.shape[0], dtype=np.int64)
    m = _history_columns(
        np.asarray(queries.history_ptr, dtype=np.int64),
        queries.history_item,
        column_of,
        out_ptr,
        out_cols,
    )
    return out_ptr, out_cols[:m]


def history_matrix(
    queries: Queries, column_of: NDArray[np.int32], n_cols: int
) -> tuple[sp.csr_matrix, NDArray[np.int64], NDArray[np.int64]]:
    """Each query's distinct modelled history items as a binary CSR row.

    Args:
        queries, column_of, n_cols: as :func:`history_columns`.

    Returns:
        ``(X [B, N] float32 binary CSR, rows [M], cols [M])`` with ``(rows, cols)`` the
        modelled history entries (repeated events of an item once), for masking seen items.
    """
    ptr, cols = history_columns(queries, column_of, n_cols)
    x = sp.csr_matrix(
        (np.ones(cols.shape[0], dtype=np.float32), cols, ptr), shape=(len(queries), n_cols)
    )
    return x, np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(ptr)), cols


def distinct_pairs(data: Dataset) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The distinct positive ``(user_idx [P], item_idx [P])`` pairs of the training data."""
    pairs = (
        data.positives.select("user_idx", "item_idx")
        .filter((pl.col("item_idx") >= 0) & (pl.col("user_idx") >= 0))
        .unique()
        .sort("user_idx", "item_idx")
    )
    users = pairs["user_idx"].to_numpy().astype(np.int64)
    return users, pairs["item_idx"].to_numpy().astype(np.int64)


# ---------------------------------------------------------------------- the closed form


def modelled_items(users_per_item: NDArray[np.int64], max_items: int) -> NDArray[np.int32]:
    """The ``max_items`` items with the most users (ties: smaller item_idx), ascending; items
    without any positive are never modelled (their column of ``B`` would be all zero)."""
    order = np.argsort(-users_per_item, kind="stable")
    order = order[users_per_item[order] > 0][:max_items]
    return np.sort(order).astype(np.int32)


def gram_matrix(x: sp.csr_matrix) -> NDArray[np.float32]:
    """``X^T X`` as a dense float32 ``[N, N]`` array, built one block of columns at a time so
    that no sparse product of the whole (possibly dense) result is ever held."""
    n = x.shape[1]
    gram = np.empty((n, n), dtype=np.float32)
    xt = x.T.tocsr()
    xc = x.tocsc()
    step = max(1, SCORE_BLOCK // max(n, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        gram[:, start:stop] = (xt @ xc[:, start:stop]).toarray()
    return gram


def _mirror_lower(a: NDArray[np.float32]) -> None:
    """Copy the lower triangle of the square C-ordered ``a`` onto its upper one, in blocks."""
    n = a.shape[0]
    step = max(1, SCORE_BLOCK // max(n, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        a[start:stop, stop:] = a[stop:, start:stop].T
        block = a[start:stop, start:stop]
        block[...] = np.tril(block) + np.tril(block, -1).T


def ease_weights(x: sp.csr_matrix, regularization: float) -> NDArray[np.float32]:
    """EASE's ``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + lambda I)^{-1}``.

    ``X^T X + lambda I`` is symmetric positive definite, so ``P`` comes from its Cholesky
    factor (LAPACK ``potrf`` + ``potri``), computed in place in float32: the peak is one
    ``[N, N]`` matrix plus one block.

    Args:
        x: ``[U, N]`` binary user x item matrix.
        regularization: lambda > 0.

    Returns:
        ``[N, N]`` float32 ``B`` with a zero diagonal.

    Raises:
        ConfigError: the factorisation failed (lambda too small for float32).
    """
    gram = gram_matrix(x)
    gram[np.diag_indices_from(gram)] += np.float32(regularization)
    # gram is symmetric, so its transpose is the same matrix in Fortran order: LAPACK works on
    # it in place, and its "upper" triangle is gram's lower one.
    factor, info = lapack.spotrf(gram.T, lower=0, overwrite_a=1, clean=0)
    if info == 0:
        factor, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise ConfigError(f"EASE: Cholesky failed (LAPACK info {info}); raise regularization")
    if not np.shares_memory(factor, gram):  # pragma: no cover - a LAPACK wrapper that copied
        gram = np.ascontiguousarray(factor.T)
    _mirror_lower(gram)
    diag = np.diag(gram).copy()
    gram /= -diag[None, :]  # B_ij = -P_ij / P_jj off the diagonal
    np.fill_diagonal(gram, 0.0)
    return gram


# ---------------------------------------------------------------------- the channel


class EASE(RetrieverBase):
    """EASE recall channel (see :class:`EASEConfig`).

    Scores come from the query's history only, so users the model never saw are served when
    they bring a history; queries without a modelled history item get nothing.

    Example:
        >>> import polars as pl
        >>> ds = Dataset.from_frame(pl.DataFrame({"user_id": [1, 1, 2, 2, 3],
        ...     "item_id": [7, 8, 7, 8, 7], "timestamp": [1, 2, 3, 4, 5]}))
        >>> EASE(EASEConfig(regularization=1.0)).fit(ds).recommend([3], k=2)["item_id"].to_list()
        [8]
    """

    supports_cold_users: ClassVar[bool] = False
    supports_new_items: ClassVar[bool] = False

    config: EASEConfig

    def __init__(self, config: EASEConfig | None = None) -> None:
        self.config = config if config is not None else EASEConfig()
        self.weights: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self.item_idx: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self.n_items = 0
        self._column_of: NDArray[np.int32] = np.zeros(0, dtype=np.int32)

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Solve the closed form on the distinct positive pairs (``rng`` unused: no randomness).

        Returns:
            ``self`` with ``weights [N, N]`` and ``item_idx [N]`` (modelled items) set.
        """
        del rng
        users, items = distinct_pairs(data)
        if items.shape[0] == 0:  # the solver would fail on an empty matrix, less clearly
            raise MissingInputError("EASE: no positive interaction to model")
        popularity = np.bincount(items, minlength=data.n_items).astype(np.int64)
        kept = modelled_items(popularity, self.config.max_items)
        n_with_positives = int((popularity > 0).sum())
        if kept.shape[0] < n_with_positives:
            logger.warning(
                "EASE models the %d most popular of %d items with positives (max_items); "
                "the other %d are never retrieved",
                kept.shape[0],
                n_with_positives,
                n_with_positives - kept.shape[0],
            )
        column = column_index(kept, data.n_items)[items]
        used = column >= 0
        x = sp.csr_matrix(
            (np.ones(int(used.sum()), dtype=np.float32), (users[used], column[used])),
            shape=(data.n_users, kept.shape[0]),
        )
        threads = self.config.fit_threads
        if threads is None and kept.shape[0] < PARALLEL_FROM:
            threads = 1
        with threadpool_limits(limits=threads, user_api="blas"):  # None: no limit
            weights = ease_weights(x, self.config.regularization)
        self._set(weights, kept, data.n_items)
        return self

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` items per query by ``history [B, N] @ B [N, N]``.

        Args:
            queries: the batch ``[B]``; only the history is read.
            k: candidates per query (default ``config.k``).

        Returns:
            ``ChannelResult`` ``[B, k]`` (-1 / -inf padding); rows without a modelled history
            item are all padding.
        """
        k = self.config.k if k is None else k
        ptr, cols = history_columns(queries, self._column_of, self.item_idx.shape[0])
        idx, score = binary_matmul_topk(
            ptr, cols, self.weights, self.item_idx, k, exclude_rows=self.config.exclude_seen
        )
        return ChannelResult(self.config.kind, idx, score)

    def state(self) -> dict[str, NDArray]:
        """``weights [N, N]`` float32, ``item_idx [N]`` int32 (the modelled items) and
        ``n_items`` (0-d int64, the catalogue size at fit time)."""
        return {
            "weights": self.weights,
            "item_idx": self.item_idx,
            "n_items": np.asarray(self.n_items, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, config: EASEConfig, state: dict[str, NDArray]) -> EASE:
        """Rebuild a fitted model from ``config`` and the arrays of :meth:`state`."""
        if set(state) != set(STATE_KEYS):
            raise ConfigError(f"EASE state needs exactly {STATE_KEYS}, got {sorted(state)}")
        weights = np.asarray(state["weights"], dtype=np.float32)
        item_idx = np.asarray(state["item_idx"], dtype=np.int32)
        n_items = int(np.asarray(state["n_items"]))
        n = item_idx.shape[0]
        if weights.shape != (n, n):
            raise ConfigError(f"EASE weights must be [{n}, {n}], got {weights.shape}")
        if n and (np.any(np.diff(item_idx) <= 0) or item_idx[0] < 0 or item_idx[-1] >= n_items):
            raise ConfigError("EASE item_idx must be ascending and inside [0, n_items)")
        model = cls(config)
        model._set(weights, item_idx, n_items)
        return model

    def _set(self, weights: NDArray[np.float32], item_idx: NDArray[np.int32], n_items: int) -> None:
        self.weights, self.item_idx, self.n_items = weights, item_idx, n_items
        self._column_of = column_index(item_idx, n_items)
