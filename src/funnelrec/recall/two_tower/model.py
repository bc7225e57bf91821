"""The two towers: user (attributes + recent behaviour) and item (id + category + time + text).

Index conventions (house rule 2: padding and unknown are explicit rows, never an implicit 0):

* item ids ``0..n_items-1`` are the trained items; row ``n_items`` (:attr:`TowerSizes.unknown_id`)
  is the "unknown id" row, used for items ingested after training and, during training, for
  the ``id_dropout`` share of items; history sequences additionally use row ``n_items + 1``
  (:attr:`TowerSizes.pad_id`) as padding (``padding_idx``, always zero, masked in pooling);
* category codes ``1..n_categories``, ``0`` = unknown/none (also used at padded positions);
* creation-time bucket codes ``1..time_buckets``, ``0`` = unknown;
* user attribute codes ``1..card-1`` per attribute, ``0`` = unknown (see
  :class:`~funnelrec.data.user_attributes.UserAttributeEncoder`).

Both towers end in an MLP and L2 normalisation; the training logits are cosines divided by
the temperature.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from funnelrec.recall.two_tower.config import TowerConfig
from funnelrec.train.distributed import gather_rows


@dataclass(frozen=True, slots=True)
class TowerSizes:
    """Vocabulary sizes the towers are built for (known at fit time, saved with the state).

    Attributes:
        n_items: trained items (ids ``0..n_items-1``).
        n_categories: known categories (codes ``1..n_categories``).
        attr_cardinalities: codes per user attribute, the unknown code 0 included.
        content_dim: width T of the text embedding (0 = no content feature).
    """

    n_items: int
    n_categories: int
    attr_cardinalities: tuple[int, ...]
    content_dim: int

    @property
    def unknown_id(self) -> int:
        return self.n_items

    @property
    def pad_id(self) -> int:
        return self.n_items + 1


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """``Linear -> ReLU`` between consecutive ``sizes``, no activation after the last layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HistoryPooling(nn.Module):
    """Pools a padded history ``[B, L, E]`` into ``[B, E]``.

    ``mean``: average of the non-padded positions (an empty history gives the zero vector).
    ``attention``: a learned query attends (multi-head) over the positions plus recency
    position embeddings, with a key padding mask; a learned "empty" token is always attendable,
    so an empty history gives a learned vector instead of NaN.
    """

    def __init__(self, config: TowerConfig) -> None:
        super().__init__()
        self.mode = config.pooling
        e = config.embed_dim
        if self.mode == "attention":
            self.position = nn.Embedding(config.history_len, e)
            self.query = nn.Parameter(torch.zeros(1, 1, e))
            self.empty = nn.Parameter(torch.zeros(1, 1, e))
            self.attn = nn.MultiheadAttention(e, config.heads, batch_first=True)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Pool ``tokens`` ``[B, L, E]`` where ``mask`` ``[B, L]`` is True at real items.

        The history is right-aligned: position ``L - 1`` is the most recent item.
        """
        if self.mode == "mean":
            weights = mask.to(tokens.dtype)
            total = (tokens * weights.unsqueeze(-1)).sum(dim=1)
            return total / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
        b, length, e = tokens.shape
        recency = torch.arange(length - 1, -1, -1, device=tokens.device)
        keys = tokens + self.position(recency).unsqueeze(0)
        keys = torch.cat([self.empty.expand(b, 1, e), keys], dim=1)
        padding = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
        out, _ = self.attn(
            self.query.expand(b, 1, e), keys, keys, key_padding_mask=padding, need_weights=False
        )
        return out.squeeze(1)


class UserTower(nn.Module):
    """User attributes + pooled recent history -> MLP -> unit vector ``[B, D]``."""

    def __init__(self, config: TowerConfig, sizes: TowerSizes) -> None:
        super().__init__()
        e = config.embed_dim
        sparse = config.sparse_embeddings
        self.attrs = nn.ModuleList(
            nn.Embedding(card, e, sparse=sparse) for card in sizes.attr_cardinalities
        )
        self.history_id = nn.Embedding(
            sizes.n_items + 2, e, padding_idx=sizes.pad_id, sparse=sparse
        )
        self.history_category = nn.Embedding(sizes.n_categories + 1, e, sparse=sparse)
        self.pooling = HistoryPooling(config)
        width = e * (1 + len(sizes.attr_cardinalities))
        self.mlp = mlp([width, *config.hidden, config.dim])

    def forward(self, user_attr: Tensor, hist_item: Tensor, hist_category: Tensor) -> Tensor:
        """Embed users.

        Args:
            user_attr: ``[B, A]`` attribute codes (0 = unknown).
            hist_item: ``[B, L]`` history ids, right-aligned, ``pad_id`` padding, ``unknown_id``
                for items the model was not trained on.
            hist_category: ``[B, L]`` their category codes (0 = unknown / padding).

        Returns:
            ``[B, D]`` L2-normalised user vectors.
        """
        mask = hist_item != self.history_id.padding_idx
        tokens = self.history_id(hist_item) + self.history_category(hist_category)
        parts = [self.pooling(tokens, mask)]
        parts += [emb(user_attr[:, a]) for a, emb in enumerate(self.attrs)]
        return nn.functional.normalize(self.mlp(torch.cat(parts, dim=1)), dim=-1)


class ItemTower(nn.Module):
    """Item id + category + creation-time bucket + projected text -> MLP -> ``[N, D]``."""

    def __init__(self, config: TowerConfig, sizes: TowerSizes) -> None:
        super().__init__()
        e = config.embed_dim
        sparse = config.sparse_embeddings
        self.item_id = nn.Embedding(sizes.n_items + 1, e, sparse=sparse)
        self.category = nn.Embedding(sizes.n_categories + 1, e, sparse=sparse)
        self.time = nn.Embedding(config.time_buckets + 1, e, sparse=sparse)
        self.content = nn.Linear(sizes.content_dim, e) if sizes.content_dim else None
        n_parts = 4 if self.content is not None else 3
        self.mlp = mlp([e * n_parts, *config.hidden, config.dim])

    def forward(self, item_id: Tensor, category: Tensor, time: Tensor, content: Tensor) -> Tensor:
        """Embed items.

        Args:
            item_id: ``[N]`` ids, ``unknown_id`` for new (or id-dropped) items.
            category: ``[N]`` category codes (0 = unknown).
            time: ``[N]`` creation-time bucket codes (0 = unknown).
            content: ``[N, T]`` text embeddings (``T`` may be 0).

        Returns:
            ``[N, D]`` L2-normalised item vectors.
        """
        parts = [self.item_id(item_id), self.category(category), self.time(time)]
        if self.content is not None:
            parts.append(self.content(content))
        return nn.functional.normalize(self.mlp(torch.cat(parts, dim=1)), dim=-1)


class TwoTowerModel(nn.Module):
    """Both towers and the training logits.

    ``forward(batch)`` embeds the batch's users and its ``M`` distinct candidate items once,
    then scores every user against the in-batch positives, the shared uniform negatives and
    its own hard negatives. Corrections and masking are the task's job
    (:mod:`funnelrec.recall.two_tower.task`).

    A worker's shard of a distributed batch (:func:`~.data.shard_batch`, marked by
    ``shard_sizes``) embeds only its own rows' positives and all-gathers them with gradient
    (:func:`funnelrec.train.distributed.gather_rows`), so its users still score against every
    positive of the global batch.

    Example:
        >>> sizes = TowerSizes(n_items=5, n_categories=2, attr_cardinalities=(3,), content_dim=0)
        >>> model = TwoTowerModel(TowerConfig(dim=8, embed_dim=8, hidden=()), sizes)
        >>> hist = torch.full((2, 50), sizes.pad_id)
        >>> model.user(torch.zeros(2, 1, dtype=torch.long), hist, torch.zeros_like(hist)).shape
        torch.Size([2, 8])
    """

    def __init__(self, config: TowerConfig, sizes: TowerSizes) -> None:
        super().__init__()
        self.config = config
        self.sizes = sizes
        self.user_tower = UserTower(config, sizes)
        self.item_tower = ItemTower(config, sizes)

    def user(self, user_attr: Tensor, hist_item: Tensor, hist_category: Tensor) -> Tensor:
        """``[B, D]`` user vectors (see :meth:`UserTower.forward`)."""
        return self.user_tower(user_attr, hist_item, hist_category)

    def item(self, item_id: Tensor, category: Tensor, time: Tensor, content: Tensor) -> Tensor:
        """``[N, D]`` item vectors (see :meth:`ItemTower.forward`)."""
        return self.item_tower(item_id, category, time, content)

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Training logits of a batch.

        Args:
            batch: ``user_attr [B, A]``, ``hist_item [B, L]``, ``hist_category [B, L]``;
                candidates ``cand_id / cand_category / cand_time [M]``, ``cand_content
                [M, T]``; positions into the candidates ``pos [B]``, ``uniform [U]``,
                ``hard [B, H]``.

        Returns:
            ``in_batch [B, B]`` (row i, column j: user i vs positive of example j),
            ``uniform [B, U]``, ``hard [B, H]`` (cosine / temperature), and the vectors
            ``user [B, D]``, ``candidates [M, D]``. On a worker's shard (``shard_sizes``
            ``[W]`` in the batch) ``B`` is its rows and ``in_batch`` is ``[B, B_global]``.
        """
        u = self.user(batch["user_attr"], batch["hist_item"], batch["hist_category"])
        v = self.item(
            batch["cand_id"], batch["cand_category"], batch["cand_time"], batch["cand_content"]
        )
        scale = 1.0 / self.config.temperature
        # index_select, not v[idx]: its CPU backward (index_add) is deterministic, the
        # advanced-indexing backward (index_put with accumulate) is not.
        pos = v.index_select(0, batch["pos"])
        if "shard_sizes" in batch:
            pos = gather_rows(pos, tuple(int(n) for n in batch["shard_sizes"].tolist()))
        uniform = v.index_select(0, batch["uniform"])
        hard_idx = batch["hard"]
        hard = v.index_select(0, hard_idx.reshape(-1)).reshape(*hard_idx.shape, v.shape[1])
        return {
            "in_batch": (u @ pos.T) * scale,
            "uniform": (u @ uniform.T) * scale,
            "hard": torch.einsum("bd,bhd->bh", u, hard) * scale,
            "user": u,
            "candidates": v,
        }


def init_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """Deterministic initialisation from ``generator`` (no global RNG).

    Embeddings ~ N(0, 0.05) (padding rows zero), Linear / attention projections Xavier-uniform
    with zero bias, the attention query / empty token ~ N(0, 0.05).
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.05, generator=generator)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.MultiheadAttention):
                if module.in_proj_weight is not None:
                    nn.init.xavier_uniform_(module.in_proj_weight, generator=generator)
                if module.in_proj_bias is not None:
                    module.in_proj_bias.zero_()
            elif isinstance(module, HistoryPooling) and module.mode == "attention":
                nn.init.normal_(module.query, 0.0, 0.05, generator=generator)
                nn.init.normal_(module.empty, 0.0, 0.05, generator=generator)
