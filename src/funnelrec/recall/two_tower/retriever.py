"""The two-tower recall channel: fit (examples -> shared loop -> item vectors -> index),
retrieve (user tower -> ANN search -> drop seen), add_items, state/from_state."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import ClassVar, Self

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray
from torch import Tensor

from funnelrec.data.dataset import Dataset
from funnelrec.data.state import prefixed
from funnelrec.data.vocab import Vocabulary
from funnelrec.errors import ConfigError, MissingInputError
from funnelrec.features.text import TextEncoder
from funnelrec.index import BaseIndex, Metric, assert_metric, build_index, index_from_state
from funnelrec.recall.base import ChannelResult, Queries, Retriever, RetrieverBase
from funnelrec.recall.two_tower.config import TwoTowerConfig
from funnelrec.recall.two_tower.data import (
    BatchInputs,
    ItemFeatureEncoder,
    ItemFeatures,
    assemble_batch,
    build_examples,
    last_items,
    shard_batch,
    user_inputs,
)
from funnelrec.recall.two_tower.lean import LeanUserTower
from funnelrec.recall.two_tower.mining import HardNegatives
from funnelrec.recall.two_tower.model import TowerSizes, TwoTowerModel, init_parameters
from funnelrec.recall.two_tower.sampling import item_log_q, uniform_negatives
from funnelrec.recall.two_tower.task import SampledSoftmaxTask
from funnelrec.recall.two_tower.warm_start import TowerVocabularies, transfer
from funnelrec.recall.vector_search import calibrate_on_users, search_unseen
from funnelrec.train.distributed import sparse_gradients_reduce
from funnelrec.train.loop import TrainResult, resolve_device, train

logger = logging.getLogger(__name__)

METRIC: Metric = "ip"
"""Both towers L2-normalise, so the training cosine is the inner product the index searches."""
LEAN_MAX_USERS = 64
"""Query batches up to this size embed their users through :class:`LeanUserTower` (a served
request); bigger ones (evaluation, mining) through the module, in ``inference_batch_size``
steps."""


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


class TwoTower(RetrieverBase):
    """Two-tower retrieval (see :class:`TwoTowerConfig` and :mod:`.model`).

    ``stats`` holds measured throughput after :meth:`fit` / :meth:`retrieve`:
    ``train_samples_per_s`` (wall time of the whole loop, batch assembly and hard-negative
    mining included), ``train_s``, ``train_examples``, ``final_loss``, ``mining_s``,
    ``index_build_s``, ``index_items``, and cumulatively over retrieve calls
    ``retrieve_queries``, ``retrieve_s``, ``queries_per_s``, ``search_queries_per_s``.

    Example:
        >>> import polars as pl
        >>> from funnelrec.features.text import TextEncoderConfig
        >>> inter = pl.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 12],
        ...     "timestamp": [0, 1, 0, 1], "event": ["click"] * 4, "value": [1.0] * 4})
        >>> cfg = TwoTowerConfig(k=2, text=None, device="cpu", batch_size=4)
        >>> model = TwoTower(cfg).fit(Dataset.build(inter), rng=np.random.default_rng(0))
        >>> model.item_vectors.shape
        (3, 64)
    """

    supports_cold_users: ClassVar[bool] = True
    supports_new_items: ClassVar[bool] = True

    config: TwoTowerConfig

    def __init__(self, config: TwoTowerConfig | None = None) -> None:
        config = config if config is not None else TwoTowerConfig()
        self.config = config
        self.stats: dict[str, float] = {}
        self.train_result: TrainResult | None = None
        self._device = resolve_device(config.device)
        self._model: TwoTowerModel | None = None
        self._lean: LeanUserTower | None = None
        self._lean_built = False  # _lean stays None after a build when the tower has none
        self._encoder: ItemFeatureEncoder | None = None
        self._features: ItemFeatures | None = None
        self._user_attr = np.zeros((0, 0), dtype=np.int32)
        self._vectors = np.zeros((0, config.towers.dim), dtype=np.float32)
        self._index: BaseIndex | None = None
        # Warm start: the earlier fit the next fit begins from, and what this fit's rows are.
        self._earlier: TwoTower | None = None
        self._vocabularies: TowerVocabularies | None = None

    def start_from(self, earlier: Retriever) -> bool:
        """Begin the next fit from ``earlier``: a two-tower fitted in this process on a subset
        of that fit's data (:mod:`.warm_start`), trained ``warm_start_epochs`` more. False
        (the fit starts from scratch) when ``earlier`` is not one or ``warm_start_epochs`` is 0.
        """
        self._earlier = None
        if not isinstance(earlier, TwoTower) or earlier._vocabularies is None:
            return False  # another channel, or loaded from an artifact (no vocabularies kept)
        if self.config.warm_start_epochs > 0:
            self._earlier = earlier
        return self._earlier is not None

    # ------------------------------------------------------------------ fit
    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Train both towers on ``data`` and index every item's vector.

        Args:
            data: the training Dataset (positives, items table, users table).
            rng: unused: parameter init, shuffling and sampling are seeded from
                ``config.seed`` so the channel trains identically wherever it runs.

        Returns:
            ``self``, fitted.
        """
        del rng
        cfg = self.config
        np_rng = np.random.default_rng(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        encoder, features = ItemFeatureEncoder.fit(data, cfg.towers.time_buckets, cfg.text)
        examples = build_examples(data, cfg.positives, cfg.dedupe_targets)
        if len(examples) < 2:
            # A sampled-softmax batch needs two examples (each is the other's negative).
            raise MissingInputError(
                f"two-tower channel: {len(examples)} training example(s), fewer than the 2 "
                "a batch needs"
            )
        model, vocabularies, warm_rows = self._initial_model(data, encoder, generator)
        sizes = model.sizes
        loop = cfg.train
        if warm_rows is not None:
            loop = cfg.train.model_copy(update={"epochs": cfg.warm_start_epochs})
        model.to(self._device)
        self._model, self._encoder, self._features = model, encoder, features
        self._lean, self._lean_built = None, False
        self._user_attr = data.user_attr
        counts = np.bincount(examples.item, minlength=data.n_items)
        inputs = BatchInputs(
            examples=examples,
            user_attr=self._user_attr,
            features=features,
            sizes=sizes,
            log_q=item_log_q(counts, cfg.batch_size, cfg.n_uniform_negatives),
            history_len=cfg.towers.history_len,
            id_dropout=cfg.id_dropout,
        )
        self.stats = {"train_examples": float(len(examples))}
        if warm_rows is not None:
            self.stats["warm_start_item_rows"] = float(warm_rows)
        hard = HardNegatives(cfg, inputs, model, METRIC, self._embed_items, self._embed_users)
        task = SampledSoftmaxTask(logq_correction=cfg.logq_correction)
        result = train(
            model,
            task,
            lambda epoch: self._epoch_batches(inputs, epoch, np_rng, hard),
            loop,
            device=self._device,
            shard=shard_batch,
        )
        self.train_result = result
        self._vocabularies = vocabularies
        self.stats.update(
            {
                "mining_s": hard.seconds,
                "train_s": result.seconds,
                "train_samples_per_s": result.samples_per_s,
                "epochs": float(len(result.epochs)),
                # no "loss" when every step was skipped (non-finite): nan, not a KeyError
                "final_loss": (result.epochs or [{}])[-1].get("loss", float("nan")),
            }
        )
        self._vectors = self._embed_items(np.arange(data.n_items, dtype=np.int64))
        start = time.perf_counter()
        index = build_index(cfg.index, METRIC, data.n_items)
        assert_metric(index, METRIC)
        index.build(self._vectors, np.arange(data.n_items, dtype=np.int64))
        self._index = index
        self.stats["index_build_s"] = time.perf_counter() - start
        self.stats["index_items"] = float(data.n_items)
        self.stats |= calibrate_on_users(
            index, self._vectors, data, self.user_vectors, cfg.k, cfg.seed
        )
        logger.info(
            "two-tower fit: %d examples, %.0f samples/s, index %d items in %.2fs",
            len(examples),
            result.samples_per_s,
            data.n_items,
            self.stats["index_build_s"],
        )
        return self

    def _initial_model(
        self, data: Dataset, encoder: ItemFeatureEncoder, generator: torch.Generator
    ) -> tuple[TwoTowerModel, TowerVocabularies, int | None]:
        """The towers sized for ``data``, initialised from ``generator``, then overwritten from
        the earlier fit :meth:`start_from` named: the model, what its table rows stand for,
        and the item rows a warm start carried over (None: no warm start)."""
        sizes = TowerSizes(
            n_items=data.n_items,
            n_categories=len(data.category_vocab),
            attr_cardinalities=data.user_attr_encoder.cardinalities,
            content_dim=encoder.content_dim,
        )
        towers = self.config.towers
        if towers.sparse_embeddings and not sparse_gradients_reduce():
            logger.info("two-tower: dense embedding gradients (NCCL has no sparse all-reduce)")
            towers = towers.model_copy(update={"sparse_embeddings": False})
        model = TwoTowerModel(towers, sizes)
        init_parameters(model, generator)
        vocabularies = TowerVocabularies(
            data.item_vocab, encoder.category_vocab, data.user_attr_encoder, sizes
        )
        return model, vocabularies, self._warm_start(model, vocabularies)

    def _warm_start(self, model: TwoTowerModel, vocabularies: TowerVocabularies) -> int | None:
        """Copy the earlier fit :meth:`start_from` named (once) into ``model``: the item rows
        carried over, or None without one."""
        earlier, self._earlier = self._earlier, None
        if earlier is None or earlier._vocabularies is None:
            return None
        rows = transfer(earlier.model, earlier._vocabularies, model, vocabularies).item_rows
        logger.info(
            "two-tower: warm start from the earlier fit (%d of %d item rows), %d epoch(s)",
            rows,
            vocabularies.sizes.n_items + 1,
            self.config.warm_start_epochs,
        )
        return rows

    def _epoch_batches(
        self, inputs: BatchInputs, epoch: int, rng: np.random.Generator, hard: HardNegatives
    ) -> Iterator[dict[str, Tensor]]:
        """Shuffle, (re-)mine hard negatives when due, and yield the epoch's batches."""
        cfg = self.config
        hard.start_epoch(epoch)
        order = rng.permutation(len(inputs.examples))
        for start in range(0, order.shape[0], cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            if rows.shape[0] < 2:
                continue
            uniform = uniform_negatives(inputs.sizes.n_items, cfg.n_uniform_negatives, rng)
            yield assemble_batch(inputs, rows, uniform, hard.draw(rows, rng), rng)

    # ------------------------------------------------------------- inference
    @torch.no_grad()
    def _embed_items(self, items: NDArray[np.int64]) -> NDArray[np.float32]:
        """``[M, D]`` item vectors (trained items with their id, others with the unknown id)."""
        model, features = self.model, self.features
        out = np.zeros((items.shape[0], self.config.towers.dim), dtype=np.float32)
        step = self.config.inference_batch_size
        for start in range(0, items.shape[0], step):
            t = _to(features.tensors(items[start : start + step], model.sizes), self._device)
            vec = model.item(t["id"], t["category"], t["time"], t["content"])
            out[start : start + step] = vec.float().cpu().numpy()
        return out

    @torch.inference_mode()  # no autograd bookkeeping: ~15 of ~200 us of a served forward
    def _embed_users(
        self, user_attr: NDArray[np.integer], hist: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        """``[B, D]`` user vectors from attribute codes ``[B, A]`` and histories ``[B, L]``."""
        model, features = self.model, self.features
        out = np.zeros((hist.shape[0], self.config.towers.dim), dtype=np.float32)
        step = self.config.inference_batch_size
        for start in range(0, hist.shape[0], step):
            sl = slice(start, start + step)
            t = _to(user_inputs(user_attr[sl], hist[sl], features, model.sizes), self._device)
            vec = model.user(t["user_attr"], t["hist_item"], t["hist_category"])
            out[sl] = vec.float().cpu().numpy()
        return out

    def query_attributes(self, queries: Queries) -> NDArray[np.int32]:
        """``[B, A]`` attribute codes: the query's own when given, else the training table's
        for known users, else 0 (unknown)."""
        n_attr = self._user_attr.shape[1]
        if queries.user_attr is not None:
            if queries.user_attr.shape != (len(queries), n_attr):
                raise ValueError(
                    f"queries.user_attr has shape {queries.user_attr.shape}, the model expects "
                    f"[{len(queries)}, {n_attr}]"
                )
            return np.asarray(queries.user_attr, dtype=np.int32)
        out = np.zeros((len(queries), n_attr), dtype=np.int32)
        user = queries.user_idx.astype(np.int64)
        known = (user >= 0) & (user < self._user_attr.shape[0])
        out[known] = self._user_attr[user[known]]
        return out

    def user_vectors(self, queries: Queries) -> NDArray[np.float32]:
        """``[B, D]`` unit user vectors of a query batch (last ``history_len`` positives)."""
        lean = self._lean_tower() if len(queries) <= LEAN_MAX_USERS else None
        if lean is not None:
            return lean(
                self.query_attributes(queries),
                queries.history_ptr,
                queries.history_item,
                self.features.category,
            )
        hist = last_items(
            queries.history_item,
            queries.history_ptr[:-1],
            queries.history_ptr[1:],
            self.config.towers.history_len,
            -1,
        )
        return self._embed_users(self.query_attributes(queries), hist)

    def _lean_tower(self) -> LeanUserTower | None:
        """The user tower's lean form (built at first use; None while training or when the
        tower has none)."""
        if self.model.training:
            return None
        if not self._lean_built:
            model = self.model
            self._lean = LeanUserTower.from_tower(
                model.user_tower, model.sizes, self.config.towers.history_len
            )
            self._lean_built = True
        return self._lean

    def retrieve(self, queries: Queries, k: int | None = None) -> ChannelResult:
        """Top-``k`` items per query by inner product of unit user and item vectors.

        Fetches ``k + longest history in the batch`` from the index, drops each query's
        history items (``exclude_seen``) and keeps the first ``k``. Users with no history and
        unknown attributes still get the vector of an "empty" user, so every query is served.

        Args:
            queries: the batch ``[B]``.
            k: candidates per query (default ``config.k``).

        Returns:
            ``ChannelResult`` ``[B, k]`` (-1 / -inf padding), descending score.
        """
        k = self.config.k if k is None else k
        start = time.perf_counter()
        b = len(queries)
        vectors = self.user_vectors(queries)
        out_idx, out_score, search_s = search_unseen(
            self.index, vectors, queries, k, self.config.exclude_seen
        )
        seconds = time.perf_counter() - start
        stats = self.stats
        stats["retrieve_queries"] = stats.get("retrieve_queries", 0.0) + b
        stats["retrieve_s"] = stats.get("retrieve_s", 0.0) + seconds
        stats["search_s"] = stats.get("search_s", 0.0) + search_s
        stats["queries_per_s"] = stats["retrieve_queries"] / max(stats["retrieve_s"], 1e-9)
        stats["search_queries_per_s"] = stats["retrieve_queries"] / max(stats["search_s"], 1e-9)
        return ChannelResult(self.config.kind, out_idx, out_score)

    # ------------------------------------------------------------ new items
    def add_items(self, items: pl.DataFrame, item_idx: NDArray[np.integer]) -> None:
        """Embed items ingested after training (unknown-id row + category, time, text) and add
        them to the index: they are retrievable on return.

        Args:
            items: items table rows (``category``, ``created_at``, ``title``, ... as available).
            item_idx: ``[M]`` their new item indices, none already known to the channel.
        """
        ids = np.asarray(item_idx, dtype=np.int64)
        if ids.shape != (items.height,):
            raise ValueError(f"{items.height} items but item_idx has shape {ids.shape}")
        if ids.shape[0] == 0:
            return
        features = self.features
        n_known = len(features)
        if ids.min() < n_known or np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError(f"add_items needs new, distinct indices >= {n_known}")
        new = self.encoder.encode(items)
        size = int(ids.max()) + 1
        grown = ItemFeatures(
            np.zeros(size - n_known, dtype=np.int64),
            np.zeros(size - n_known, dtype=np.int64),
            np.zeros((size - n_known, features.content.shape[1]), dtype=np.float32),
        )
        local = ids - n_known
        grown.category[local] = new.category
        grown.time[local] = new.time
        grown.content[local] = new.content
        self._features = features.concat(grown)
        vectors = self._embed_items(ids)
        vec_grown = np.zeros((size - self._vectors.shape[0], self._vectors.shape[1]), np.float32)
        self._vectors = np.concatenate([self._vectors, vec_grown])
        self._vectors[ids] = vectors
        self.index.add(vectors, ids)

    # ---------------------------------------------------------------- state
    @property
    def device(self) -> torch.device:
        """Where the towers run (``config.device`` resolved)."""
        return self._device

    @property
    def model(self) -> TwoTowerModel:
        if self._model is None:
            raise RuntimeError("TwoTower is not fitted: call fit() or from_state() first")
        return self._model

    @property
    def features(self) -> ItemFeatures:
        if self._features is None:
            raise RuntimeError("TwoTower is not fitted: call fit() or from_state() first")
        return self._features

    @property
    def encoder(self) -> ItemFeatureEncoder:
        if self._encoder is None:
            raise RuntimeError("TwoTower is not fitted: call fit() or from_state() first")
        return self._encoder

    @property
    def index(self) -> BaseIndex:
        if self._index is None:
            raise RuntimeError("TwoTower is not fitted: call fit() or from_state() first")
        return self._index

    @property
    def item_vectors(self) -> NDArray[np.float32]:
        """``[n_items, D]`` unit item vectors (rows of never-added indices are zero)."""
        return self._vectors

    def similarity_vectors(self) -> NDArray[np.float32] | None:
        """The item tower's vectors: what the re-ranker measures similarity with."""
        return self.item_vectors

    def state(self) -> dict[str, NDArray]:
        """Flat arrays: ``model.*`` (state dict), item vectors and features, encoders,
        ``index.*`` and ``text.*``; restored by :meth:`from_state` without pickle."""
        model, encoder, features = self.model, self.encoder, self.features
        sizes = model.sizes
        out: dict[str, NDArray] = {
            f"model.{name}": tensor.detach().cpu().numpy()
            for name, tensor in model.state_dict().items()
        }
        out.update(
            {
                "sizes": np.array(
                    [sizes.n_items, sizes.n_categories, sizes.content_dim], dtype=np.int64
                ),
                "attr_cardinalities": np.array(sizes.attr_cardinalities, dtype=np.int64),
                "user_attr": self._user_attr,
                "item_vectors": self._vectors,
                "item_category": features.category,
                "item_time": features.time,
                "item_content": features.content,
                "time_edges": encoder.time_edges,
                "has_time": np.array(encoder.has_time),
                "has_text": np.array(encoder.text is not None),
                "category_vocab": encoder.category_vocab.ids.cast(pl.String)
                .to_numpy()
                .astype(np.str_),
            }
        )
        out.update({f"index.{k}": v for k, v in self.index.state().items()})
        if encoder.text is not None:
            out.update({f"text.{k}": v for k, v in encoder.text.state().items()})
        return out

    @classmethod
    def from_state(cls, config: TwoTowerConfig, state: dict[str, NDArray]) -> TwoTower:
        """Rebuild a fitted channel from ``config`` and the arrays of :meth:`state`."""
        missing = {"sizes", "attr_cardinalities", "item_vectors", "category_vocab"} - set(state)
        if missing:
            raise ConfigError(f"two-tower state lacks {sorted(missing)}")
        n_items, n_categories, content_dim = (int(x) for x in state["sizes"])
        sizes = TowerSizes(
            n_items,
            n_categories,
            tuple(int(c) for c in state["attr_cardinalities"]),
            content_dim,
        )
        out = cls(config)
        model = TwoTowerModel(config.towers, sizes)
        weights = {k: torch.from_numpy(np.array(v)) for k, v in prefixed(state, "model.").items()}
        model.load_state_dict(weights, strict=True)
        model.to(out._device).eval()
        text: TextEncoder | None = None
        if bool(state["has_text"]):
            if config.text is None:
                raise ConfigError("the saved two-tower used a text encoder but config.text is None")
            text = TextEncoder.from_state(config.text, prefixed(state, "text."))
        vocab = Vocabulary(pl.Series("id", state["category_vocab"].tolist(), dtype=pl.String))
        out._model = model
        out._encoder = ItemFeatureEncoder(vocab, state["time_edges"], bool(state["has_time"]), text)
        out._features = ItemFeatures(
            np.asarray(state["item_category"], dtype=np.int64),
            np.asarray(state["item_time"], dtype=np.int64),
            np.asarray(state["item_content"], dtype=np.float32),
        )
        out._user_attr = np.asarray(state["user_attr"], dtype=np.int32)
        out._vectors = np.asarray(state["item_vectors"], dtype=np.float32)
        out._index = index_from_state(config.index, METRIC, prefixed(state, "index."))
        return out
