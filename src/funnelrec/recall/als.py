"""Implicit-feedback ALS recall through the ``implicit`` library (Hu, Koren & Volinsky 2008).

Fitting factorises the user x item confidence matrix of the distinct positive pairs with
``implicit``'s CPU solver (conjugate gradient, as ``implicit`` defaults to). ``implicit``'s
convention: an observed pair has confidence ``alpha`` (here ``alpha x 1``), an unobserved one
confidence 1 and preference 0. Retrieval does not call ``implicit``: it is one float32 product
of user and item factors in NumPy under a one-thread BLAS limit, so it works from
:meth:`ALS.state` alone and serving stays single-threaded.

A query whose user the model did not see (``user_idx`` -1, or past the fitted users) but who
brings a history gets a factor from the exact least-squares user step on that history (what
``implicit``'s ``recalculate_user`` computes, solved here in NumPy; see :func:`fold_in`).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from numpy.typing import NDArray
from pydantic import Field
from threadpoolctl import threadpool_limits

from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase, RetrieverConfig
from funnelrec.recall.ease import (
    SCORE_BLOCK,
    dense_topk,
    distinct_pairs,
    history_matrix,
    one_thread,
)

__all__ = ["ALS", "ALSConfig", "fold_in"]

STATE_KEYS = ("user_factors", "item_factors")
PARALLEL_FROM_PAIRS = 100_000
"""Distinct positive pairs from which the fit runs on all cores by default. Smaller fits take
well under a second on one thread, and implicit's 30 parallel regions per fit then cost more
than they save: on the shared 2-core box (load ~8) the 20k-row simulator fixture (1.5k pairs)
fitted in 60-100 ms on one thread and 670 ms on two."""


class ALSConfig(RetrieverConfig):
    """Matrix-factorisation recall channel fitted by ``implicit``'s ALS (CPU only).

    Defaults: 64 factors (the two-tower model's width, so the two compare at equal capacity),
    ``regularization`` 0.01 and 15 iterations (``implicit``'s defaults) and ``alpha`` 40, the
    confidence scale the ALS paper (Hu, Koren & Volinsky 2008) found best. Fit cost with
    ``implicit``'s conjugate-gradient solver (3 steps per sweep): about ``iterations x 3 x
    (nnz x F + (users + items) x F^2)`` flops; the state is ``(users + items) x F x 4`` bytes.

    Example:
        >>> ALSConfig().factors, ALSConfig().alpha
        (64, 40.0)
    """

    kind: Literal["als"] = "als"
    factors: int = Field(64, gt=0, description="Latent dimensions.")
    regularization: float = Field(0.01, ge=0, description="L2 penalty on the factors.")
    alpha: float = Field(40.0, gt=0, description="Confidence of an observed positive pair.")
    iterations: int = Field(15, gt=0, description="ALS sweeps (users then items).")
    fit_threads: int | None = Field(
        None,
        ge=0,
        description="implicit's threads while fitting (0 = all cores; None = one below "
        f"{PARALLEL_FROM_PAIRS} distinct positive pairs, all cores from there); retrieval is 1.",
    )

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        return ALS


def fold_in(
    x: sp.csr_matrix,
    item_factors: NDArray[np.float32],
    regularization: float,
    alpha: float,
    gram: NDArray[np.float64] | None = None,
) -> NDArray[np.float32]:
    """User factors from histories with the item factors fixed (one exact ALS user step).

    For a user with items ``S``: ``(Y^T Y + reg I + (alpha - 1) Y_S^T Y_S) x = alpha sum_S y_i``
    (``implicit``'s ``recalculate_user``; a user without items gets zeros). Solved in float64
    per user: ``F x F`` systems, ~20 us each at F = 64.

    Args:
        x: ``[B, N]`` binary CSR histories.
        item_factors: ``[N, F]`` float32 ``Y``.
        regularization: reg.
        alpha: confidence of an observed pair.
        gram: ``[F, F]`` float64 ``Y^T Y`` when the caller caches it (it costs ``N F^2``).

    Returns:
        ``[B, F]`` float32 user factors.
    """
    n_factors = item_factors.shape[1]
    if gram is None:
        gram = item_factor_gram(item_factors)
    base = gram + regularization * np.eye(n_factors)
    out = np.zeros((x.shape[0], n_factors), dtype=np.float32)
    for row in range(x.shape[0]):
        items = x.indices[x.indptr[row] : x.indptr[row + 1]]
        if items.shape[0] == 0:
            continue
        ys = item_factors[items].astype(np.float64)
        lhs = base + (alpha - 1.0) * (ys.T @ ys)
        out[row] = scipy.linalg.solve(lhs, alpha * ys.sum(axis=0), assume_a="pos")
    return out


def item_factor_gram(item_factors: NDArray[np.float32]) -> NDArray[np.float64]:
    """``Y^T Y`` ``[F, F]`` in float64 of the item factors ``[N, F]``."""
    y = item_factors.astype(np.float64)
    return y.T @ y


class ALS(RetrieverBase):
    """ALS recall channel (see :class:`ALSConfig` and :mod:`funnelrec.recall.als`).

    Queries without a history item the model knows get nothing, even when the model saw the
    user: its fitted factor would carry events after the query's time.

    Example:
        >>> import polars as pl
        >>> ds = Dataset.from_frame(pl.DataFrame({"user_id": [1, 1, 2, 2, 3],
        ...     "item_id": [7, 8, 7, 8, 7], "timestamp": [1, 2, 3, 4, 5]}))
        >>> ALS(ALSConfig(factors=2)).fit(ds).recommend([3], k=2)["item_id"].to_list()
        [8]
    """

    supports_cold_users: ClassVar[bool] = False
    supports_new_items: ClassVar[bool] = False

    config: ALSConfig

    def __init__(self, config: ALSConfig | None = None) -> None:
        self.config = config if config is not None else ALSConfig()
        self.user_factors: NDArray[np.float32] = np.zeros((0, self.config.factors), np.float32)
        self.item_factors: NDArray[np.float32] = np.zeros((0, self.config.factors), np.float32)
        self._trained: NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._gram: NDArray[np.float64] | None = None  # Y^T Y for fold-ins, on first use

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Factorise the confidence matrix of the distinct positive pairs.

        Args:
            data: the training Dataset (its ``positives``).
            rng: seeds ``implicit``'s factor initialisation (``random_state``).

        Returns:
            ``self`` with ``user_factors [n_users, F]`` and ``item_factors [n_items, F]``.
        """
        # implicit takes ~0.7 s to import and only fitting needs it (retrieval is NumPy).
        from implicit.als import AlternatingLeastSquares

        cfg = self.config
        users, items = distinct_pairs(data)
        user_items = sp.csr_matrix(
            (np.ones(users.shape[0], dtype=np.float32), (users, items)),
            shape=(data.n_users, data.n_items),
        )
        seed = int(rng.integers(0, 2**31 - 1))
        threads = cfg.fit_threads
        if threads is None:
            threads = 1 if users.shape[0] < PARALLEL_FROM_PAIRS else 0
        # implicit parallelises over users itself; a threaded BLAS inside each of its threads
        # only oversubscribes the cores (implicit warns about it), hence BLAS at 1 thread.
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=cfg.alpha,
                iterations=cfg.iterations,
                dtype=np.float32,
                use_gpu=False,
                num_threads=threads,
                random_state=seed,
            )
            model.fit(user_items, show_progress=False)
        self._set(np.asarray(model.user_factors), np.asarray(model.item_factors))
        return self

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` items per query by ``user factor [F] . item factors [n_items, F]``.

        Known users use their fitted factor, other users with a history their :func:`fold_in`
        factor; items without a positive in training are never candidates.

        Args:
            queries: the batch ``[B]``.
            k: candidates per query (default ``config.k``).

        Returns:
            ``ChannelResult`` ``[B, k]`` (-1 / -inf padding).
        """
        k = self.config.k if k is None else k
        n_items = self.item_factors.shape[0]
        column_of = np.arange(n_items, dtype=np.int32)
        x, rows, cols = history_matrix(queries, column_of, n_items)
        served = np.diff(x.indptr) > 0
        out_idx = np.full((len(queries), k), -1, dtype=np.int32)
        out_score = np.full((len(queries), k), -np.inf, dtype=np.float32)
        step = max(1, SCORE_BLOCK // max(n_items, 1))
        with one_thread():
            users = self._query_factors(queries, x)
            for start in range(0, len(queries), step):
                stop = min(start + step, len(queries))
                scores = users[start:stop] @ self.item_factors.T
                scores[:, ~self._trained] = -np.inf
                scores[~served[start:stop]] = -np.inf
                if self.config.exclude_seen:
                    inside = (rows >= start) & (rows < stop)
                    scores[rows[inside] - start, cols[inside]] = -np.inf
                out_idx[start:stop], out_score[start:stop] = dense_topk(scores, column_of, k)
        return ChannelResult(self.config.kind, out_idx, out_score)

    def _query_factors(self, queries: Queries, x: sp.csr_matrix) -> NDArray[np.float32]:
        """``[B, F]`` fitted factors of known users, fold-in factors of the others (also of
        users fitted without any positive: implicit left them at zero)."""
        user = queries.user_idx.astype(np.int64)
        known = (user >= 0) & (user < self.user_factors.shape[0])
        factors = np.zeros((len(queries), self.config.factors), dtype=np.float32)
        factors[known] = self.user_factors[user[known]]
        known[known] = np.any(factors[known] != 0, axis=1)
        unknown = np.flatnonzero(~known)
        if unknown.shape[0]:
            cfg = self.config
            if self._gram is None:
                self._gram = item_factor_gram(self.item_factors)
            factors[unknown] = fold_in(
                x[unknown], self.item_factors, cfg.regularization, cfg.alpha, self._gram
            )
        return factors

    def state(self) -> dict[str, NDArray]:
        """``user_factors [n_users, F]`` and ``item_factors [n_items, F]``, float32."""
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def from_state(cls, config: ALSConfig, state: dict[str, NDArray]) -> ALS:
        """Rebuild a fitted model from ``config`` and the arrays of :meth:`state`."""
        if set(state) != set(STATE_KEYS):
            raise ConfigError(f"ALS state needs exactly {STATE_KEYS}, got {sorted(state)}")
        users = np.asarray(state["user_factors"], dtype=np.float32)
        items = np.asarray(state["item_factors"], dtype=np.float32)
        for name, arr in (("user_factors", users), ("item_factors", items)):
            if arr.ndim != 2 or arr.shape[1] != config.factors:
                raise ConfigError(f"ALS {name} must be [n, {config.factors}], got {arr.shape}")
        model = cls(config)
        model._set(users, items)
        return model

    def _set(self, users: NDArray[np.float32], items: NDArray[np.float32]) -> None:
        self.user_factors = np.ascontiguousarray(users, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(items, dtype=np.float32)
        # implicit leaves an item without any positive at zero: a score of 0 that means nothing.
        self._trained = np.any(self.item_factors != 0, axis=1)
        self._gram = None
