"""Hard negatives while the two-tower trains: how many of each kind an epoch's examples get,
each training user's window of mined negatives (re-mined from the current item vectors on
the configured schedule), and the draw of a batch's negatives from those windows and the
positives' categories.

The state lives for one fit (:class:`HardNegatives` is made per fit and dropped after it),
so a fitted channel holds no mining arrays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from torch import nn

from funnelrec.arrays import unique_sorted
from funnelrec.index import Metric, assert_metric, build_index
from funnelrec.recall.two_tower.config import HardNegativeConfig, TwoTowerConfig
from funnelrec.recall.two_tower.data import BatchInputs, exclusion_csr, last_items
from funnelrec.recall.two_tower.sampling import (
    category_negatives,
    mine_hard_negatives,
    mining_window,
    n_hard_per_example,
    sample_windows,
    split_evenly,
)

logger = logging.getLogger(__name__)

EmbedItems = Callable[[NDArray[np.int64]], NDArray[np.float32]]
"""``[M]`` item indices -> ``[M, D]`` item vectors of the model being trained."""
EmbedUsers = Callable[[NDArray[np.integer], NDArray[np.int64]], NDArray[np.float32]]
"""Attribute codes ``[B, A]`` and histories ``[B, L]`` -> ``[B, D]`` user vectors."""


class HardNegatives:
    """One fit's hard negatives (``config.hard_negatives``; none when it is None).

    Args:
        config: the channel's config.
        inputs: the fit's batch inputs (examples, user attributes, item features, sizes).
        model: the model being trained (in eval mode while mining, then back).
        metric: the metric the mining index searches (the towers' training similarity).
        embed_items, embed_users: ``model``'s item and user vectors.
    """

    def __init__(
        self,
        config: TwoTowerConfig,
        inputs: BatchInputs,
        model: nn.Module,
        metric: Metric,
        embed_items: EmbedItems,
        embed_users: EmbedUsers,
    ) -> None:
        self.config = config
        self.inputs = inputs
        self.model = model
        self.metric = metric
        self.embed_items = embed_items
        self.embed_users = embed_users
        self.seconds = 0.0
        self._windows: NDArray[np.int32] | None = None
        self._window_row = np.zeros(0, dtype=np.int64)
        self._exclusion: tuple[NDArray[np.int64], ...] | None = None
        self._per_example = {"mined": 0, "category": 0}

    def start_epoch(self, epoch: int) -> None:
        """Set the epoch's negatives per example by kind, and (re-)mine the windows when the
        schedule says so."""
        hard = self.config.hard_negatives
        self._per_example = {"mined": 0, "category": 0}
        if hard is None or epoch < hard.warmup_epochs:
            return
        cfg = self.config
        total = n_hard_per_example(hard, cfg.batch_size, cfg.n_uniform_negatives)
        self._per_example.update(
            zip(hard.sources, split_evenly(total, len(hard.sources)), strict=True)
        )
        since = epoch - hard.warmup_epochs
        if self._per_example["mined"] and (since % hard.mine_every == 0 or self._windows is None):
            self._mine(hard, mining_window(hard, since // hard.mine_every))

    def draw(self, rows: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
        """``[len(rows), H]`` hard negatives of the examples ``rows`` (H may be 0)."""
        examples = self.inputs.examples
        parts = [np.zeros((rows.shape[0], 0), dtype=np.int64)]
        if self._per_example["mined"] and self._windows is not None:
            users = self._window_row[examples.user[rows]]
            parts.append(sample_windows(self._windows, users, self._per_example["mined"], rng))
        if self._per_example["category"]:
            cats = self.inputs.features.category[: self.inputs.sizes.n_items]
            parts.append(
                category_negatives(examples.item[rows], cats, self._per_example["category"], rng)
            )
        return np.concatenate(parts, axis=1)

    def _mine(self, hard: HardNegativeConfig, window: tuple[int, int]) -> None:
        """Mine each training user's rank window from an index over the current item vectors."""
        start = time.perf_counter()
        inputs = self.inputs
        examples = inputs.examples
        if self._exclusion is None:
            users = unique_sorted(examples.user)
            self._exclusion = (users, *exclusion_csr(examples, users))
            self._window_row = np.full(inputs.user_attr.shape[0], -1, dtype=np.int64)
            self._window_row[users] = np.arange(users.shape[0])
        users, ex_ptr, ex_idx = self._exclusion
        was_training = self.model.training
        self.model.eval()
        vectors = self.embed_items(np.arange(inputs.sizes.n_items, dtype=np.int64))
        index = build_index(hard.mining_index, self.metric, vectors.shape[0])
        assert_metric(index, self.metric)
        index.build(vectors, np.arange(vectors.shape[0], dtype=np.int64))
        hist = last_items(
            examples.seq_item,
            examples.user_ptr[users],
            examples.user_ptr[users + 1],
            self.config.towers.history_len,
            -1,
        )
        user_vectors = self.embed_users(inputs.user_attr[users], hist)
        self._windows = mine_hard_negatives(user_vectors, index, ex_ptr, ex_idx, window)
        self.model.train(was_training)
        seconds = time.perf_counter() - start
        self.seconds += seconds
        logger.info("mined ranks %s for %d users in %.2fs", window, users.shape[0], seconds)
