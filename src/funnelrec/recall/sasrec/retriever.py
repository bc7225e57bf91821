"""The SASRec recall channel: fit (:mod:`.fit`), retrieve (last position's output -> index ->
drop seen), similarity vectors, state/from_state."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Self

import numpy as np
import torch
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.data.state import prefixed
from funnelrec.errors import ConfigError
from funnelrec.index import BaseIndex, Metric, assert_metric, build_index, index_from_state
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase
from funnelrec.recall.sasrec.config import SASRecConfig
from funnelrec.recall.sasrec.data import query_sequences
from funnelrec.recall.sasrec.fit import fit_model
from funnelrec.recall.sasrec.model import SASRecModel
from funnelrec.recall.vector_search import calibrate_on_users, search_unseen
from funnelrec.train.loop import TrainResult, resolve_device

logger = logging.getLogger(__name__)

METRIC: Metric = "ip"
"""The training logit is the raw inner product of the user state and the item embedding."""


class SASRec(RetrieverBase):
    """Self-attentive sequential recall (see :class:`SASRecConfig` and :mod:`.model`).

    Serves queries with at least one history item the model was trained on; other queries
    (no history, or only items ingested after training) get no candidates, as ItemCF, EASE
    and ALS: with no sequence there is no last position to read a user vector from, and the
    popularity and cold-start channels serve those users. Items ingested after training are
    not retrievable (an id-only model has no vector for them).

    ``stats`` after :meth:`fit`: ``train_s``, ``train_samples_per_s`` (windows per second),
    ``epochs``, ``best_epoch``, ``valid_ndcg@10``, ``train_windows``, ``train_targets``,
    ``index_build_s``; cumulatively over retrieve calls ``retrieve_queries``, ``retrieve_s``.

    Example:
        >>> import polars as pl
        >>> inter = pl.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [10, 11, 12, 10, 11],
        ...     "timestamp": [0, 1, 2, 0, 1]})
        >>> cfg = SASRecConfig(k=2, device="cpu", dim=8, train={"epochs": 2})
        >>> model = SASRec(cfg).fit(Dataset.from_frame(inter))
        >>> model.similarity_vectors().shape
        (3, 8)
    """

    supports_cold_users: ClassVar[bool] = False
    supports_new_items: ClassVar[bool] = False

    config: SASRecConfig

    def __init__(self, config: SASRecConfig | None = None) -> None:
        self.config = config if config is not None else SASRecConfig()
        self.stats: dict[str, float] = {}
        self.train_result: TrainResult | None = None
        self._device = resolve_device(self.config.device)
        self._model: SASRecModel | None = None
        self._vectors = np.zeros((0, self.config.dim), dtype=np.float32)
        self._index: BaseIndex | None = None

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Train on ``data``'s positives and index every item's embedding.

        Args:
            data: the training Dataset.
            rng: unused: everything is seeded from ``config.seed`` so the channel trains
                identically wherever it runs.
        """
        del rng
        model, result, stats = fit_model(self.config, data, self._device)
        self.train_result = result
        self.stats = {
            **stats,
            "train_s": result.seconds,
            "train_samples_per_s": result.samples_per_s,
            "epochs": float(len(result.epochs)),
        }
        start = time.perf_counter()
        index = build_index(self.config.index, METRIC, data.n_items)
        self._set_model(model, index)
        self.stats["index_build_s"] = time.perf_counter() - start
        self.stats |= calibrate_on_users(
            index,
            self._vectors,
            data,
            lambda queries: self.user_vectors(queries)[1],
            self.config.k,
            self.config.seed,
        )
        return self

    def _set_model(self, model: SASRecModel, index: BaseIndex | None) -> None:
        """Keep ``model`` (eval mode) and its item vectors; build ``index`` over them, or,
        with None, keep the index already set (restored from state)."""
        self._model = model.eval()
        with torch.no_grad():
            self._vectors = model.item_vectors().float().cpu().numpy().copy()
        if index is not None:
            assert_metric(index, METRIC)
            index.build(self._vectors, np.arange(model.n_items, dtype=np.int64))
            self._index = index

    # ------------------------------------------------------------- inference
    @torch.inference_mode()
    def _embed(self, seq: NDArray[np.int64]) -> NDArray[np.float32]:
        """``[B, D]`` user vectors of right-aligned sequences ``[B, L]``."""
        model = self.model
        out = np.zeros((seq.shape[0], self.config.dim), dtype=np.float32)
        step = self.config.inference_batch_size
        for start in range(0, seq.shape[0], step):
            batch = torch.from_numpy(seq[start : start + step]).to(self._device)
            out[start : start + step] = model.user(batch).float().cpu().numpy()
        return out

    def user_vectors(self, queries: Queries) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """``(rows [B'], vectors [B', D])``: the queries with a known history item and the
        transformer output at their last position."""
        rows, seq = query_sequences(queries, self.config.max_len, self.model.n_items)
        return rows, self._embed(seq)

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` items per query by inner product with the user vector.

        Fetches ``k + longest history in the batch`` from the index, drops each query's
        history items (``exclude_seen``) and keeps the first ``k``; queries without a known
        history item get an all-padding row.

        Returns:
            ``ChannelResult`` ``[B, k]`` (-1 / -inf padding), descending score.
        """
        k = self.config.k if k is None else k
        start = time.perf_counter()
        b = len(queries)
        rows, vectors = self.user_vectors(queries)
        out_idx, out_score, _ = search_unseen(
            self.index, vectors, queries, k, self.config.exclude_seen, rows
        )
        stats = self.stats
        stats["retrieve_queries"] = stats.get("retrieve_queries", 0.0) + b
        stats["retrieve_s"] = stats.get("retrieve_s", 0.0) + time.perf_counter() - start
        return ChannelResult(self.config.kind, out_idx, out_score)

    # ---------------------------------------------------------------- state
    @property
    def model(self) -> SASRecModel:
        if self._model is None:
            raise RuntimeError("SASRec is not fitted: call fit() or from_state() first")
        return self._model

    @property
    def index(self) -> BaseIndex:
        if self._index is None:
            raise RuntimeError("SASRec is not fitted: call fit() or from_state() first")
        return self._index

    def similarity_vectors(self) -> NDArray[np.float32] | None:
        """``[n_items, D]`` the item embeddings: what the re-ranker measures similarity with."""
        return self._vectors

    def state(self) -> dict[str, NDArray[Any]]:
        """Flat arrays: ``model.*`` (the state dict), ``n_items`` and ``index.*``; restored by
        :meth:`from_state` without pickle."""
        out: dict[str, NDArray[Any]] = {
            f"model.{name}": tensor.detach().cpu().numpy()
            for name, tensor in self.model.state_dict().items()
        }
        out["n_items"] = np.array(self.model.n_items, dtype=np.int64)
        out.update({f"index.{key}": value for key, value in self.index.state().items()})
        return out

    @classmethod
    def from_state(cls, config: SASRecConfig, state: dict[str, NDArray[Any]]) -> Self:
        """Rebuild a fitted channel from ``config`` and the arrays of :meth:`state`.

        Raises:
            ConfigError: the state lacks arrays, or its weights do not fit ``config``.
        """
        if "n_items" not in state:
            raise ConfigError("sasrec state lacks 'n_items'")
        out = cls(config)
        model = SASRecModel(config, int(state["n_items"]))
        weights = {k: torch.from_numpy(np.array(v)) for k, v in prefixed(state, "model.").items()}
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as error:  # missing / unexpected keys, other shapes
            raise ConfigError(f"sasrec state does not fit its config: {error}") from error
        out._set_model(model.to(out._device), None)
        out._index = index_from_state(config.index, METRIC, prefixed(state, "index."))
        return out
