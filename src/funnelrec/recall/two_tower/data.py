"""Two-tower inputs: item features, training examples and batches, all from a Dataset.

* :class:`ItemFeatureEncoder` turns an items table into the item tower's non-id inputs
  (category code, creation-time bucket, text embedding), both for the training catalogue and
  for items ingested later (same vocabularies, bucket edges and fitted text encoder).
* :func:`build_examples` makes one example per positive: the user and, as its history, the
  user's positives *strictly before* it (kept as offsets into one time-sorted array, so a
  batch gathers its ``[B, L]`` histories on the fly).
* :func:`assemble_batch` gathers a batch and its ``M`` distinct candidate items (positives,
  uniform and hard negatives) into the tensors :class:`~.model.TwoTowerModel` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray
from torch import Tensor

from funnelrec.data.dataset import Dataset
from funnelrec.data.vocab import Vocabulary
from funnelrec.features.text import TextEncoder, TextEncoderConfig, item_text
from funnelrec.recall.two_tower.model import TowerSizes
from funnelrec.train.distributed import shard_bounds


# ------------------------------------------------------------------------------ items
@dataclass(frozen=True)
class ItemFeatures:
    """Non-id item inputs, one row per item index.

    Attributes:
        category: ``[N]`` int64 codes, ``1..C`` known, 0 = unknown.
        time: ``[N]`` int64 creation-time bucket codes, 0 = unknown.
        content: ``[N, T]`` float32 text embeddings (``T`` may be 0).
    """

    category: NDArray[np.int64]
    time: NDArray[np.int64]
    content: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.category.shape[0])

    def concat(self, other: ItemFeatures) -> ItemFeatures:
        return ItemFeatures(
            np.concatenate([self.category, other.category]),
            np.concatenate([self.time, other.time]),
            np.concatenate([self.content, other.content]),
        )

    def tensors(self, items: NDArray[np.integer], sizes: TowerSizes) -> dict[str, Tensor]:
        """Item tower inputs for ``items`` ``[M]``: ``id``, ``category``, ``time`` ``[M]``,
        ``content`` ``[M, T]``; items beyond the trained ones get the unknown id."""
        items = np.asarray(items, dtype=np.int64)
        ids = np.where(items < sizes.n_items, items, sizes.unknown_id)
        return {
            "id": torch.from_numpy(ids),
            "category": torch.from_numpy(self.category[items]),
            "time": torch.from_numpy(self.time[items]),
            "content": torch.from_numpy(np.ascontiguousarray(self.content[items])),
        }


class ItemFeatureEncoder:
    """Items table -> :class:`ItemFeatures` with the vocabularies fitted on training items.

    Args:
        category_vocab: category string <-> index (code = index + 1).
        time_edges: ``[K]`` int64 ascending creation-time bucket edges (code =
            ``searchsorted(edges, t, "right") + 1``).
        has_time: the training data had creation times (else every time code is 0).
        text: the fitted text encoder, or None (no content feature).
    """

    def __init__(
        self,
        category_vocab: Vocabulary,
        time_edges: NDArray[np.int64],
        has_time: bool,
        text: TextEncoder | None,
    ) -> None:
        self.category_vocab = category_vocab
        self.time_edges = np.asarray(time_edges, dtype=np.int64)
        self.has_time = has_time
        self.text = text

    @property
    def content_dim(self) -> int:
        return 0 if self.text is None else self.text.dim

    @classmethod
    def fit(
        cls, data: Dataset, n_buckets: int, text: TextEncoderConfig | None
    ) -> tuple[ItemFeatureEncoder, ItemFeatures]:
        """Fit on the training catalogue; returns the encoder and the ``[n_items]`` features.

        Bucket edges are the creation-time quantiles of the training items, so items created
        after training fall in the newest bucket.
        """
        n = data.n_items
        cats = data.item_categories
        category = np.zeros(n, dtype=np.int64) if cats is None else cats.astype(np.int64) + 1
        created = data.item_created_at
        edges = np.zeros(0, dtype=np.int64)
        time = np.zeros(n, dtype=np.int64)
        if created is not None and n:
            qs = np.linspace(0.0, 1.0, n_buckets + 1)[1:-1]
            edges = np.unique(np.quantile(created, qs, method="lower").astype(np.int64))
            time = np.searchsorted(edges, created, side="right").astype(np.int64) + 1
        encoder: TextEncoder | None = None
        content = np.zeros((n, 0), dtype=np.float32)
        if text is not None and data.items is not None:
            texts = item_text(data.items)
            encoder = TextEncoder(text).fit(texts)
            content = np.zeros((n, encoder.dim), dtype=np.float32)
            content[data.items["item_idx"].to_numpy()] = encoder.encode(texts)
        features = ItemFeatures(category, time, content)
        return cls(data.category_vocab, edges, created is not None, encoder), features

    def encode(self, items: pl.DataFrame) -> ItemFeatures:
        """Features of the rows of ``items`` (missing columns / nulls / unseen values -> 0)."""
        n = items.height
        category: NDArray[np.integer] = np.zeros(n, dtype=np.int64)  # int64 at the end
        if "category" in items.columns and len(self.category_vocab):
            category = self.category_vocab.encode(items["category"].cast(pl.String)) + 1
        time = np.zeros(n, dtype=np.int64)
        if self.has_time and "created_at" in items.columns:
            created = items["created_at"].cast(pl.Int64)
            code = np.searchsorted(self.time_edges, created.fill_null(0).to_numpy(), "right") + 1
            time = np.where(created.is_null().to_numpy(), 0, code)
        content = np.zeros((n, self.content_dim), dtype=np.float32)
        if self.text is not None and n:
            content = self.text.encode(item_text(items))
        return ItemFeatures(category.astype(np.int64), time.astype(np.int64), content)


# --------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Examples:
    """Training examples and the time-sorted positives their histories are cut from.

    Attributes:
        user: ``[N]`` int64 user of each example.
        item: ``[N]`` int64 its positive item.
        hist_start: ``[N]`` int64 first position of the user's positives in ``seq_item``.
        hist_end: ``[N]`` int64 end (exclusive) of the positives strictly before the example.
        seq_item: ``[P]`` int64 every positive's item, grouped by user, time-sorted.
        user_ptr: ``[n_users + 1]`` int64 each user's segment of ``seq_item``.
    """

    user: NDArray[np.int64]
    item: NDArray[np.int64]
    hist_start: NDArray[np.int64]
    hist_end: NDArray[np.int64]
    seq_item: NDArray[np.int64]
    user_ptr: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.user.shape[0])


def _valid(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter((pl.col("user_idx") >= 0) & (pl.col("item_idx") >= 0))


def build_examples(data: Dataset, positives: str, dedupe: bool) -> Examples:
    """One example per target interaction with its strictly-earlier history.

    Args:
        data: the training Dataset; histories always come from ``data.positives`` (as at
            serving time).
        positives: ``"clicks"`` (targets = ``data.positives``) or ``"exposures"`` (targets =
            every interaction, impressions included).
        dedupe: keep only the first target of each (user, item) pair.

    Returns:
        :class:`Examples`, ordered by time.
    """
    hist = _valid(data.positives).select("user_idx", "item_idx", "timestamp")
    hist = hist.sort("user_idx", "timestamp", maintain_order=True)
    source = data.positives if positives == "clicks" else data.interactions
    targets = _valid(source).select("user_idx", "item_idx", "timestamp")
    targets = targets.sort("timestamp", maintain_order=True)
    if dedupe:
        targets = targets.unique(["user_idx", "item_idx"], keep="first", maintain_order=True)
    seq_user = hist["user_idx"].to_numpy().astype(np.int64)
    seq_item = hist["item_idx"].to_numpy().astype(np.int64)
    user = targets["user_idx"].to_numpy().astype(np.int64)
    item = targets["item_idx"].to_numpy().astype(np.int64)
    # Rank timestamps jointly so (user, time rank) packs into one sortable int64 key.
    times = np.concatenate([hist["timestamp"].to_numpy(), targets["timestamp"].to_numpy()])
    _, rank = np.unique(times, return_inverse=True)
    stride = np.int64(rank.max(initial=0) + 2)
    seq_key = seq_user * stride + rank[: seq_user.shape[0]]
    target_key = user * stride + rank[seq_user.shape[0] :]
    hist_end = np.searchsorted(seq_key, target_key, side="left").astype(np.int64)
    counts = np.bincount(seq_user, minlength=data.n_users)
    user_ptr = np.zeros(data.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=user_ptr[1:])
    return Examples(user, item, user_ptr[user], hist_end, seq_item, user_ptr)


def last_items(
    seq_item: NDArray[np.integer],
    start: NDArray[np.integer],
    end: NDArray[np.integer],
    length: int,
    pad: int,
) -> NDArray[np.int64]:
    """``[B, length]`` the last ``length`` items of each ``seq_item[start:end]``, right-aligned.

    Example:
        >>> last_items(np.array([5, 6, 7]), np.array([0, 2]), np.array([2, 2]), 3, -9).tolist()
        [[-9, 5, 6], [-9, -9, -9]]
    """
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    pos = end[:, None] - length + np.arange(length, dtype=np.int64)[None, :]
    valid = pos >= start[:, None]
    if seq_item.shape[0] == 0:
        return np.full(pos.shape, pad, dtype=np.int64)
    gathered = np.asarray(seq_item, dtype=np.int64)[np.clip(pos, 0, seq_item.shape[0] - 1)]
    return np.where(valid, gathered, pad)


def user_inputs(
    user_attr: NDArray[np.integer],
    hist_items: NDArray[np.int64],
    features: ItemFeatures,
    sizes: TowerSizes,
) -> dict[str, Tensor]:
    """User tower inputs from attribute codes ``[B, A]`` and right-aligned histories ``[B, L]``
    (``-1`` = padding): ``user_attr``, ``hist_item`` (pad / unknown ids mapped), and
    ``hist_category``."""
    pad = hist_items < 0
    known = np.clip(hist_items, 0, None)
    ids = np.where(pad, sizes.pad_id, np.where(known < sizes.n_items, known, sizes.unknown_id))
    in_range = known < len(features)
    cats = np.where(pad | ~in_range, 0, features.category[np.where(in_range, known, 0)])
    return {
        "user_attr": torch.from_numpy(np.ascontiguousarray(user_attr, dtype=np.int64)),
        "hist_item": torch.from_numpy(ids.astype(np.int64)),
        "hist_category": torch.from_numpy(cats.astype(np.int64)),
    }


def exclusion_csr(
    examples: Examples, users: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per user in ``users`` ``[U]``: every item that is one of its positives or targets.

    Returns:
        ``(ptr [U + 1], items [X])`` CSR, items sorted per row.
    """
    frame = pl.DataFrame(
        {
            "user": np.concatenate(
                [
                    np.repeat(
                        np.arange(examples.user_ptr.shape[0] - 1), np.diff(examples.user_ptr)
                    ),
                    examples.user,
                ]
            ),
            "item": np.concatenate([examples.seq_item, examples.item]),
        }
    ).unique()
    row = pl.DataFrame({"user": users, "row": np.arange(users.shape[0], dtype=np.int64)})
    frame = frame.join(row, on="user", how="inner").sort("row", "item")
    counts = np.bincount(frame["row"].to_numpy(), minlength=users.shape[0])
    ptr = np.zeros(users.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, frame["item"].to_numpy().astype(np.int64)


# ---------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class BatchInputs:
    """What :func:`assemble_batch` needs besides the rows (fixed for a whole training run)."""

    examples: Examples
    user_attr: NDArray[np.int32]
    features: ItemFeatures
    sizes: TowerSizes
    log_q: NDArray[np.float32]
    history_len: int
    id_dropout: float


def assemble_batch(
    inputs: BatchInputs,
    rows: NDArray[np.int64],
    uniform: NDArray[np.int64],
    hard: NDArray[np.int64],
    rng: np.random.Generator,
) -> dict[str, Tensor]:
    """The tensors of one training batch.

    Args:
        inputs: examples, features and constants.
        rows: ``[B]`` example indices.
        uniform: ``[U]`` uniform negatives shared by the batch.
        hard: ``[B, H]`` hard negatives per example (-1 = none).
        rng: draws the id dropout.

    Returns:
        ``user_attr [B, A]``, ``hist_item / hist_category [B, L]``, candidate inputs
        ``cand_id / cand_category / cand_time [M]`` and ``cand_content [M, T]`` for the ``M``
        distinct items, positions ``pos [B]``, ``uniform [U]``, ``hard [B, H]`` into them, the
        true items ``pos_item [B]``, ``uniform_item [U]``, ``hard_item [B, H]`` and the logQ
        terms ``pos_logq [B]``, ``uniform_logq [U]``.
    """
    ex = inputs.examples
    sizes = inputs.sizes
    pos_item = ex.item[rows]
    hist = last_items(ex.seq_item, ex.hist_start[rows], ex.hist_end[rows], inputs.history_len, -1)
    batch = user_inputs(inputs.user_attr[ex.user[rows]], hist, inputs.features, sizes)
    b, h = hard.shape
    hard_fill = np.where(hard >= 0, hard, pos_item[:, None])
    every = np.concatenate([pos_item, uniform, hard_fill.ravel()])
    cand, inverse = np.unique(every, return_inverse=True)
    cand_inputs = inputs.features.tensors(cand, sizes)
    cand_id = cand_inputs["id"]
    if inputs.id_dropout > 0:
        drop = torch.from_numpy(rng.random(cand.shape[0]) < inputs.id_dropout)
        cand_id = torch.where(drop, torch.tensor(sizes.unknown_id), cand_id)
    inverse = inverse.astype(np.int64)
    u = uniform.shape[0]
    batch.update(
        {
            "cand_id": cand_id,
            "cand_category": cand_inputs["category"],
            "cand_time": cand_inputs["time"],
            "cand_content": cand_inputs["content"],
            "pos": torch.from_numpy(inverse[:b]),
            "uniform": torch.from_numpy(inverse[b : b + u]),
            "hard": torch.from_numpy(inverse[b + u :].reshape(b, h)),
            "pos_item": torch.from_numpy(pos_item),
            "uniform_item": torch.from_numpy(uniform.astype(np.int64)),
            "hard_item": torch.from_numpy(hard.astype(np.int64)),
            "pos_logq": torch.from_numpy(inputs.log_q[pos_item]),
            "uniform_logq": torch.from_numpy(inputs.log_q[uniform]),
        }
    )
    return batch


_ROW_KEYS = ("user_attr", "hist_item", "hist_category", "hard_item")
_CANDIDATE_KEYS = ("cand_id", "cand_category", "cand_time", "cand_content")


def shard_batch(batch: Mapping[str, Tensor], worker: int, world: int) -> dict[str, Tensor]:
    """A worker's part of a global batch from :func:`assemble_batch` (distributed training).

    The worker keeps its slice of the rows (``shard_bounds``) and the candidate items those
    rows need (their positives and hard negatives, and every uniform negative, which all rows
    share), with the positions re-pointed into them. ``pos_item`` / ``pos_logq`` stay global:
    they describe the in-batch columns the model gathers from every worker. The id dropout was
    drawn once over the global batch, so every worker sees the same dropped ids.

    Returns:
        The batch's keys, plus ``row_offset`` (the first row's global index) and
        ``shard_sizes [W]`` (every worker's rows, the gather's layout).
    """
    n = int(batch["pos"].shape[0])
    lo, hi = shard_bounds(n, worker, world)
    pos, uniform, hard = batch["pos"][lo:hi], batch["uniform"], batch["hard"][lo:hi]
    needed = torch.unique(torch.cat([pos, uniform, hard.reshape(-1)]))  # sorted

    def repoint(positions: Tensor) -> Tensor:
        return torch.searchsorted(needed, positions.contiguous())

    out = {key: batch[key][lo:hi] for key in _ROW_KEYS}
    out.update({key: batch[key].index_select(0, needed) for key in _CANDIDATE_KEYS})
    sizes = [shard_bounds(n, r, world) for r in range(world)]
    out.update(
        {
            "pos": repoint(pos),
            "uniform": repoint(uniform),
            "hard": repoint(hard),
            "pos_item": batch["pos_item"],
            "pos_logq": batch["pos_logq"],
            "uniform_item": batch["uniform_item"],
            "uniform_logq": batch["uniform_logq"],
            "row_offset": torch.tensor(lo),
            "shard_sizes": torch.tensor([b - a for a, b in sizes]),
        }
    )
    return out
