"""SASRec inputs: per-user item sequences, training windows, batches and query histories.

* :func:`user_sequences`: each user's distinct positives in time order, an item at its latest
  occurrence: the order :func:`funnelrec.recall.history.recent_items` reads a served query's
  history in, so training and serving see the same kind of sequence.
* :func:`hold_out_last`: the last item of some random users, for early stopping.
* :func:`training_windows`: every (item, next item) pair of a user exactly once, in
  right-aligned windows of at most ``max_len`` pairs (the most recent window full).
* :func:`assemble_batch`: a batch's tensors, its distinct targets and their logQ terms.
* :func:`query_sequences`: ``[B, L]`` right-aligned model inputs of a query batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray
from torch import Tensor

from funnelrec.data.csr import gather_ranges, take_rows
from funnelrec.data.dataset import Dataset
from funnelrec.recall.base import Queries
from funnelrec.recall.history import recent_items
from funnelrec.recall.two_tower.data import last_items
from funnelrec.recall.two_tower.sampling import item_log_q


@dataclass(frozen=True)
class Sequences:
    """Item sequences in CSR layout, oldest first per row.

    Attributes:
        ptr: ``[R + 1]`` int64 offsets into ``item``.
        item: ``[T]`` int64 item ids.
    """

    ptr: NDArray[np.int64]
    item: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.ptr.shape[0] - 1)

    @property
    def lengths(self) -> NDArray[np.int64]:
        return np.diff(self.ptr)


def user_sequences(data: Dataset) -> Sequences:
    """One row per user of ``data`` (``[n_users]``): its distinct positive items in time
    order, each at its latest occurrence (ties in time keep the log's order)."""
    frame = data.positives.select("user_idx", "item_idx", "timestamp")
    frame = frame.filter((pl.col("user_idx") >= 0) & (pl.col("item_idx") >= 0))
    frame = frame.with_row_index("order").sort("user_idx", "timestamp", "order")
    frame = frame.unique(["user_idx", "item_idx"], keep="last", maintain_order=True)
    counts = np.bincount(frame["user_idx"].to_numpy(), minlength=data.n_users)
    ptr = np.zeros(data.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return Sequences(ptr, frame["item_idx"].to_numpy().astype(np.int64))


def hold_out_last(
    seqs: Sequences, n_rows: int, rng: np.random.Generator
) -> tuple[Sequences, Sequences, NDArray[np.int64]]:
    """Hold out the last item of ``n_rows`` random rows with 3+ items (all when fewer).

    Rows of 3+ items keep at least one (item, next item) pair to train on after the hold-out.

    Returns:
        ``(train, valid_history, valid_target)``: every row of ``seqs`` less the held-out
        items; the held-out rows' remaining items ``[V]`` rows; their held-out item ``[V]``.
    """
    eligible = np.flatnonzero(seqs.lengths >= 3)
    n_valid = min(n_rows, eligible.shape[0])
    rows = np.sort(rng.choice(eligible, size=n_valid, replace=False)) if n_valid else eligible[:0]
    last = seqs.ptr[rows + 1] - 1
    keep = np.ones(seqs.item.shape[0], dtype=bool)
    keep[last] = False
    lengths = seqs.lengths.copy()
    lengths[rows] -= 1
    ptr = np.zeros_like(seqs.ptr)
    np.cumsum(lengths, out=ptr[1:])
    train = Sequences(ptr, seqs.item[keep])
    hist_ptr, gather = take_rows(ptr, rows)
    return train, Sequences(hist_ptr, train.item[gather]), seqs.item[last]


def training_windows(
    seqs: Sequences, max_len: int, pad: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Inputs and targets ``[S, max_len]`` (right-aligned, ``pad`` padding) of every row.

    A row of ``n`` items has ``n - 1`` pairs (input ``item[i]``, target ``item[i + 1]``),
    cut from the end into ``ceil((n - 1) / max_len)`` windows (newest first per row), so
    every pair is trained on exactly once and the most recent window is full.

    Example:
        >>> seqs = Sequences(np.array([0, 4, 5]), np.array([1, 2, 3, 4, 7]))
        >>> x, y = training_windows(seqs, 2, -1)
        >>> x.tolist(), y.tolist()
        ([[2, 3], [-1, 1]], [[3, 4], [-1, 2]])
    """
    pairs = np.maximum(seqs.lengths - 1, 0)
    n_windows = -(-pairs // max_len)
    row = np.repeat(np.arange(len(seqs), dtype=np.int64), n_windows)
    # Window w of a row (0 = most recent) ends (exclusive) at input position last - w * max_len.
    first = np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    back = np.arange(row.shape[0], dtype=np.int64) - first
    end = seqs.ptr[row + 1] - 1 - back * max_len
    start = seqs.ptr[row]
    inputs = last_items(seqs.item, start, end, max_len, pad)
    targets = last_items(seqs.item, start + 1, end + 1, max_len, pad)
    return inputs, targets


def assemble_batch(
    inputs: NDArray[np.int64],
    targets: NDArray[np.int64],
    uniform: NDArray[np.int64],
    item_counts: NDArray[np.int64],
    pad: int,
) -> dict[str, Tensor]:
    """The tensors of one training batch (see :class:`~.task.SequenceSoftmaxTask`).

    Leading columns that are padding in every window are dropped: the windows are
    right-aligned, so every real position keeps its position embedding and a batch of short
    histories costs its own length, not ``max_len``.

    Args:
        inputs: ``[B, L]`` the batch's windows.
        targets: ``[B, L]`` their next items (``pad`` where there is none).
        uniform: ``[U]`` uniform negatives shared by the batch.
        item_counts: ``[N]`` training targets per item (the sampling distribution ``p``).
        pad: the padding id.

    Returns:
        ``seq [B, L']``, ``positions [P]`` (flat indices of the target positions),
        ``cand_item [M + U]`` (the distinct targets, then ``uniform``), ``target [P]`` (each
        position's column), ``cand_log_count [M + U]`` (0 for uniform columns),
        ``cand_logq [M + U]`` (``Q(j) = P * p_j + U / N``) and the accidental hits
        ``hit_row / hit_col [H]`` (a uniform column equal to the row's target).
    """
    first = int(np.argmax((targets != pad).any(axis=0)))
    inputs, targets = inputs[:, first:], targets[:, first:]
    flat = targets.ravel()
    positions = np.flatnonzero(flat != pad)
    cand, target, count = np.unique(flat[positions], return_inverse=True, return_counts=True)
    target = target.astype(np.int64).reshape(-1)
    m = cand.shape[0]
    # Uniform draw j hits every position whose target is that item: they sit together in
    # the positions sorted by target column.
    where = np.minimum(np.searchsorted(cand, uniform), m - 1)
    drawn = np.flatnonzero(cand[where] == uniform)
    by_target = np.argsort(target, kind="stable")
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    hit_ptr, gather = gather_ranges(starts[where[drawn]], count[where[drawn]])
    hit_col = m + np.repeat(drawn, np.diff(hit_ptr))
    cand_item = np.concatenate([cand, uniform]).astype(np.int64)
    log_count = np.concatenate([np.log(count), np.zeros(uniform.shape[0])])
    log_q = item_log_q(item_counts, positions.shape[0], uniform.shape[0])
    return {
        "seq": torch.from_numpy(np.ascontiguousarray(inputs)),
        "positions": torch.from_numpy(positions.astype(np.int64)),
        "cand_item": torch.from_numpy(cand_item),
        "target": torch.from_numpy(target),
        "cand_log_count": torch.from_numpy(log_count.astype(np.float32)),
        "cand_logq": torch.from_numpy(log_q[cand_item]),
        "hit_row": torch.from_numpy(by_target[gather].astype(np.int64)),
        "hit_col": torch.from_numpy(hit_col.astype(np.int64)),
    }


def query_sequences(
    queries: Queries, max_len: int, n_items: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The model inputs of a query batch: its last ``max_len`` distinct known items.

    Items the model was not trained on (``-1``, or ids ``>= n_items``, ingested later) are
    skipped; queries left with no item get no row.

    Returns:
        ``(rows [B'], seq [B', max_len])``: the query rows with history and their
        right-aligned sequences (``n_items`` padding).
    """
    recent = recent_items(queries, max_len, np.ones(n_items, dtype=bool))
    rows, local = np.unique(recent.row, return_inverse=True)
    seq = np.full((rows.shape[0], max_len), n_items, dtype=np.int64)
    seq[local.reshape(-1), max_len - 1 - recent.rank] = recent.item
    return rows, seq
