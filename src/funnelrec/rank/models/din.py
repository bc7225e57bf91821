"""DIN (Zhou et al. 2018): the candidate item attends over the user's behaviour sequence.

The candidate is the ``[item, category]`` embedding of sparse fields ``spec.item_field`` and
``spec.category_field``; each behaviour is the ``[item, category]`` embedding of
``seq_item`` / ``seq_category`` looked up in the *same rows* of the one fused table (a
behaviour item and a candidate item share their embedding). Padding (``seq_item == 0``) gets
attention weight 0. The pooled interest joins the flat field embeddings and the dense
features in an MLP with one linear head per task.
"""

from __future__ import annotations

import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import (
    Batch,
    RankModel,
    seeded,
    sequence_mask,
)
from funnelrec.rank.models.config import DINConfig
from funnelrec.rank.modules.attention import TargetAttention
from funnelrec.rank.modules.embedding import FieldEmbedding
from funnelrec.rank.modules.mlp import MLP, linear


class DIN(RankModel):
    """Deep Interest Network with one head per task.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 1, 4, 1, 2, ("click",))
        >>> model = DIN(DINConfig(), spec)
        >>> batch = {"sparse": torch.ones(2, 3, dtype=torch.long), "dense": torch.zeros(2, 1),
        ...          "seq_item": torch.tensor([[1, 2, 0, 0], [0, 0, 0, 0]]),
        ...          "seq_category": torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])}
        >>> model(batch)["click"].shape
        torch.Size([2])
    """

    def __init__(self, config: DINConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        if spec.seq_len < 1:
            raise ValueError("DIN needs a behaviour sequence (spec.seq_len >= 1)")
        self.config = config
        e = config.embed_dim
        with seeded(config.seed):
            self.embedding = FieldEmbedding(spec.sparse_cardinalities, e, config.embed_init_std)
            self.attention = TargetAttention(2 * e, config.attention, config.normalise)
            self.in_dim = spec.n_sparse * e + 2 * e + spec.n_dense
            self.deep = MLP(self.in_dim, config.deep)
            self.head = linear(self.deep.out_dim, len(self.tasks), "linear")

    def embed(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Field embeddings, candidate and behaviours, from one gather of the shared table.

        Args:
            batch: ``sparse [B, F]``, ``seq_item`` / ``seq_category`` ``[B, L]``.

        Returns:
            ``fields [B, F, E]``, ``query [B, 2E]`` (candidate ``[item, category]``) and
            ``keys [B, L, 2E]`` (behaviours ``[item, category]``).
        """
        spec = self.spec
        pair = (spec.item_field, spec.category_field)
        codes = torch.stack([batch["seq_item"], batch["seq_category"]], dim=-1)  # [B, L, 2]
        fields, keys = self.embedding.forward_with(batch["sparse"], codes, pair)
        query = fields[:, list(pair)].flatten(1)  # [B, 2E]
        return fields, query, keys.flatten(-2)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]``, ``seq_item`` / ``seq_category``
                ``[B, L]`` (0 = padding).

        Returns:
            ``{task: logit [B]}``.
        """
        fields, query, keys = self.embed(batch)
        interest = self.attention(query, keys, sequence_mask(batch["seq_item"]))  # [B, 2E]
        parts = [fields.flatten(1), interest]
        if self.spec.n_dense:
            parts.append(batch["dense"].to(fields.dtype))
        return self.as_dict(self.head(self.deep(torch.cat(parts, dim=1))))


__all__ = ["DIN"]
