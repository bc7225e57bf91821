"""The Swing retriever: ItemCF's neighbour table and retrieval, filled by the Swing kernel."""

from __future__ import annotations

import logging
from typing import Self

import numba
import numpy as np
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.recall.itemcf.kernel import MIN_SIM
from funnelrec.recall.itemcf.model import ItemCF
from funnelrec.recall.itemcf.sequences import Sequences, build_sequences
from funnelrec.recall.swing.config import SwingConfig
from funnelrec.recall.swing.kernel import swing_topk

logger = logging.getLogger(__name__)


class Swing(ItemCF):
    """Swing user-pair item-item recall channel (see :mod:`funnelrec.recall.swing`).

    Only the fit differs from :class:`~funnelrec.recall.itemcf.ItemCF`: retrieval
    (history-weighted neighbour scores), ``state``/``from_state`` and the similarity matrix
    the evidence features read are ItemCF's, which reads only the history fields
    (``history_len``, ``recency_decay``, ``history_half_life_s``) both configs share.

    Example:
        >>> import polars as pl
        >>> inter = pl.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 11],
        ...     "timestamp": [0, 1, 0, 1], "event": ["click"] * 4, "value": [1.0] * 4})
        >>> model = Swing(SwingConfig(neighbors=1)).fit(
        ...     Dataset.build(inter), rng=np.random.default_rng(0))
        >>> model.neighbor_idx.tolist()
        [[1], [0]]
    """

    config: SwingConfig  # type: ignore[assignment]  # ItemCF's retrieval reads shared fields

    def __init__(self, config: SwingConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else SwingConfig()

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        """Compute the top-``neighbors`` Swing neighbours of every item.

        Args:
            data: the training Dataset; its ``positives`` are used.
            rng: unused (the fit is deterministic); accepted for the Retriever protocol.
        """
        del rng
        cfg = self.config
        n_items = data.n_items
        seq = build_sequences(data.positives, data.n_users, n_items)
        user_weight = np.power(seq.user_len.astype(np.float64) + cfg.user_alpha, -cfg.user_beta)
        item_ptr, item_user = capped_item_users(seq, cfg.max_users_per_item)
        out_idx = np.full((n_items, cfg.neighbors), -1, dtype=np.int32)
        out_sim = np.zeros((n_items, cfg.neighbors), dtype=np.float32)
        with numba.parallel_chunksize(1):  # dynamic scheduling: item costs are very uneven
            swing_topk(
                seq.user_ptr,
                seq.item,
                user_weight,
                item_ptr,
                item_user,
                float(cfg.alpha),
                MIN_SIM,
                np.int64(max(1, min(n_items, 8 * numba.get_num_threads()))),
                out_idx,
                out_sim,
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "swing fit: %d (item, user) pairs kept of %d, %d neighbour entries",
                item_user.shape[0],
                seq.item.shape[0],
                int((out_idx >= 0).sum()),
            )
        self._set(out_idx, out_sim)
        return self


def capped_item_users(
    seq: Sequences, cap: int | None
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """Each item's users, at most ``cap`` of them: those whose last interaction with the item
    is most recent (ties by smaller user index); users ascending within an item.

    Returns:
        ``(item_ptr [n_items + 1] int64, item_user [M] int32)`` in CSR layout.

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"user_idx": [0, 1, 2], "item_idx": [0, 0, 0],
        ...                    "timestamp": [3, 1, 2]})
        >>> capped_item_users(build_sequences(df, 3, 1), 2)[1].tolist()
        [0, 2]
    """
    counts = seq.item_users
    if cap is None or counts.size == 0 or int(counts.max()) <= cap:
        return seq.item_ptr, seq.occ_user
    item = np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)
    time = seq.time[seq.occ_pos]
    order = np.lexsort((seq.occ_user, -time, item))
    rank = np.arange(item.shape[0], dtype=np.int64) - seq.item_ptr[item[order]]
    kept = order[rank < cap]
    kept = kept[np.lexsort((seq.occ_user[kept], item[kept]))]
    new_counts = np.minimum(counts, cap)
    item_ptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(new_counts, out=item_ptr[1:])
    return item_ptr, seq.occ_user[kept]
