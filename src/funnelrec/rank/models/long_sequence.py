"""What the long-sequence rankers (SIM, ETA, SDIM, TWIN) share: input, short-term DIN, head.

Every long-sequence model reads the whole ``[B, L]`` behaviour sequence (``L`` in the
thousands) in two stages:

1. :meth:`LongSequenceModel.pick` (the search stage, no gradient) chooses the behaviours the
   long-term unit reads, as their ``[B, K, 2]`` item/category codes (``K = k`` for the
   search models, ``K = L`` for SDIM);
2. :meth:`LongSequenceModel.long_interest` pools their embeddings into ``[B, 2E]``.

The candidate, the picked behaviours and (when ``short_len > 0``) the most recent
``short_len`` behaviours are embedded in ONE gather of the fused table, in the same rows (a
behaviour item and a candidate item share their embedding, as in DIN). The short-term DIN
interest (SIM's "short-term interest"), the long-term interest, the flat field embeddings and
the dense features feed an MLP with one linear head per task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, RankModel, seeded, sequence_mask
from funnelrec.rank.models.config import LongSequenceConfig, SearchConfig
from funnelrec.rank.modules.attention import TargetAttention
from funnelrec.rank.modules.embedding import FieldEmbedding
from funnelrec.rank.modules.long_sequence import (
    GapBuckets,
    MultiHeadTargetAttention,
    chunked,
    select_top_k,
)
from funnelrec.rank.modules.mlp import MLP, linear


@dataclass(frozen=True, slots=True)
class Picked:
    """The behaviours the long-term unit reads.

    ``codes [B, K, 2]`` item/category codes, ``gap [B, K]`` log1p seconds, ``valid [B, K]``
    bool (False at padding and at picks that did not pass the search), ``index [B, K]`` their
    positions in the sequence.
    """

    codes: Tensor
    gap: Tensor
    valid: Tensor
    index: Tensor


def sequence_codes(batch: Batch, positions: slice | Tensor = slice(None)) -> Tensor:
    """``[B, P, 2]`` item and category codes of the behaviours at ``positions`` (a slice, or
    ``[B, P]`` int64 positions per row); only those are copied."""
    item, category = batch["seq_item"], batch["seq_category"]
    if isinstance(positions, Tensor):
        return torch.stack([item.gather(1, positions), category.gather(1, positions)], dim=-1)
    return torch.stack([item[:, positions], category[:, positions]], dim=-1)


def pick_positions(batch: Batch, index: Tensor, valid: Tensor) -> Picked:
    """The behaviours at ``index`` ``[B, K]`` of each row."""
    return Picked(sequence_codes(batch, index), batch["seq_gap"].gather(1, index), valid, index)


class LongSequenceModel(RankModel):
    """Base class: subclasses set up their long-term parts in :meth:`build_long` and
    implement :meth:`pick` and :meth:`long_interest`."""

    config: LongSequenceConfig

    def __init__(self, config: LongSequenceConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        if spec.seq_len < 1:
            raise ValueError(f"{type(self).__name__} needs a behaviour sequence (seq_len >= 1)")
        self.config = config
        self.pair = (spec.item_field, spec.category_field)
        self.short_len = min(config.short_len, spec.seq_len)
        e = config.embed_dim
        with seeded(config.seed):
            self.embedding = FieldEmbedding(spec.sparse_cardinalities, e, config.embed_init_std)
            self.short = TargetAttention(2 * e, config.short_attention) if self.short_len else None
            self.build_long()
            self.in_dim = spec.n_sparse * e + 2 * e * (2 if self.short_len else 1) + spec.n_dense
            self.deep = MLP(self.in_dim, config.deep)
            self.head = linear(self.deep.out_dim, len(self.tasks), "linear")

    def build_long(self) -> None:
        """Create the long-term unit's modules (runs seeded, after the embedding)."""
        raise NotImplementedError

    def pick(self, batch: Batch) -> Picked:
        """The search stage: which behaviours the long-term unit reads (no gradient)."""
        raise NotImplementedError

    def long_interest(self, query: Tensor, behaviours: Tensor, picked: Picked) -> Tensor:
        """Pool ``behaviours`` ``[B, K, 2E]`` (the embedded picks) for ``query`` ``[B, 2E]``
        into ``[B, 2E]``."""
        raise NotImplementedError

    def candidate(self, batch: Batch) -> Tensor:
        """``[B, 2E]`` candidate ``[item, category]`` embedding, without gradient."""
        with torch.no_grad():
            sparse = batch["sparse"][:, list(self.pair)]
            return self.embedding.lookup_fields(sparse, self.pair).flatten(1)

    def behaviours(self, batch: Batch, positions: slice) -> Tensor:
        """``[B, len(positions), 2E]`` embeddings of a slice of the sequence."""
        codes = sequence_codes(batch, positions)
        return self.embedding.lookup_fields(codes, self.pair).flatten(-2)

    def scan(self, batch: Batch, score: Callable[[slice], Tensor]) -> Tensor:
        """``score`` over slices of ``config.search_chunk`` positions, no gradient: ``[B, L]``."""
        return chunked(score, batch["seq_item"].shape[1], self.config.search_chunk)

    def embed(self, batch: Batch, codes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Fields, candidate, short-term behaviours and ``codes`` in one gather.

        Args:
            batch: ``sparse [B, F]``, ``seq_item`` / ``seq_category`` ``[B, L]``.
            codes: ``[B, K, 2]`` picked item/category codes.

        Returns:
            ``fields [B, F, E]``, ``query [B, 2E]``, ``short [B, S, 2E]`` and
            ``picked [B, K, 2E]``.
        """
        recent = sequence_codes(batch, slice(self.short_len))
        both = torch.cat([recent, codes], dim=1)
        fields, rows = self.embedding.forward_with(batch["sparse"], both, self.pair)
        short, picked = rows.flatten(-2).split([recent.shape[1], codes.shape[1]], dim=1)
        return fields, fields[:, list(self.pair)].flatten(1), short, picked

    def finish(
        self, batch: Batch, fields: Tensor, query: Tensor, short: Tensor, interest: Tensor
    ) -> dict[str, Tensor]:
        """Short-term DIN, then the MLP and the heads: ``{task: logit [B]}``."""
        parts = [fields.flatten(1), interest]
        if self.short is not None:
            mask = sequence_mask(batch["seq_item"][:, : self.short_len])
            parts.append(self.short(query, short, mask))
        if self.spec.n_dense:
            parts.append(batch["dense"].to(fields.dtype))
        return self.as_dict(self.head(self.deep(torch.cat(parts, dim=1))))

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]``, ``seq_item`` / ``seq_category``
                ``[B, L]`` (0 = padding), ``seq_gap [B, L]``.

        Returns:
            ``{task: logit [B]}``.
        """
        picked = self.pick(batch)
        fields, query, short, behaviours = self.embed(batch, picked.codes)
        interest = self.long_interest(query, behaviours, picked)
        return self.finish(batch, fields, query, short, interest)


class SearchModel(LongSequenceModel):
    """Search-then-attend models (SIM, ETA): :meth:`relevance` scores every behaviour, the k
    best real ones go to the Exact Search Unit, a multi-head target attention over each
    behaviour's ``[item, category]`` embedding plus a learned time-gap embedding."""

    config: SearchConfig

    def build_long(self) -> None:
        width = 2 * self.config.embed_dim
        self.gaps = GapBuckets(self.config.n_gap_buckets, width, self.config.embed_init_std)
        self.esu = MultiHeadTargetAttention(width, self.config.n_heads)

    def relevance(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """GSU ``scores [B, L]`` (higher = more relevant) and ``keep [B, L]`` bool."""
        raise NotImplementedError

    def pick(self, batch: Batch) -> Picked:
        scores, keep = self.relevance(batch)
        return pick_positions(batch, *select_top_k(scores, keep, self.config.k))

    def long_interest(self, query: Tensor, behaviours: Tensor, picked: Picked) -> Tensor:
        return self.esu(query, behaviours + self.gaps(picked.gap), picked.valid)


__all__ = [
    "LongSequenceModel",
    "Picked",
    "SearchModel",
    "pick_positions",
    "sequence_codes",
]
