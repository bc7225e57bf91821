"""TWIN (Chang et al. 2023, "TWIN: TWo-stage Interest Network for Lifelong User Behavior
Modeling in CTR Prediction at Kuaishou"): the search uses the attention's own relevance.

SIM's and ETA's searches rank behaviours by a metric other than the one the attention then
applies, so the search can drop what the attention would weigh most. TWIN's General Search
Unit scores every behaviour with the Exact Search Unit's attention logit, made cheap by
splitting the behaviour's features:

* **inherent** features (here the ``[item, category]`` embedding) enter through the key and
  value projections ``K_b = W_k x_b``, ``V_b = W_v x_b``, which do not depend on the candidate
  or the request time: :meth:`TWIN.behaviour_projection` computes them, and a serving cache
  stores them per user (one row per behaviour, refreshed when the user acts or the model is
  retrained) so that a request costs one ``[L, D]`` product with the query instead of
  re-embedding and re-projecting the history;
* the **cross** feature (the time gap to the request) enters only as a learned per-head bias
  of its log-spaced bucket, a table lookup.

The logit of head ``h`` is ``<W_q^h q, K_b^h> / sqrt(d_h) + bias_h(gap_b)``; the search keeps
the ``k`` behaviours of largest mean-over-heads logit (``[B, L]`` scores, no gradient; inline,
the key projection is folded into the query so the ``L`` behaviours are never projected), the
attention re-uses the same logits over them. Pass the cached projections as
``model(batch, cache=(keys, values))`` (each ``[B, L, 2E]``; a user's ``[1, L, 2E]`` rows
``.expand(B, -1, -1)`` for their ``B`` candidates): the output equals the inline computation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, sequence_mask
from funnelrec.rank.models.config import TWINConfig
from funnelrec.rank.models.long_sequence import Picked, SearchModel, pick_positions
from funnelrec.rank.modules.long_sequence import (
    GapBuckets,
    MultiHeadTargetAttention,
    gather_positions,
    select_top_k,
)

Projection = tuple[Tensor, Tensor]


class TWIN(SearchModel):
    """TWIN with one head per task.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 1, 4, 1, 2, ("click",))
        >>> model = TWIN(TWINConfig(k=2, embed_dim=4), spec).eval()
        >>> batch = {"sparse": torch.ones(2, 3, dtype=torch.long), "dense": torch.zeros(2, 1),
        ...          "seq_item": torch.tensor([[1, 2, 3, 0], [0, 0, 0, 0]]),
        ...          "seq_category": torch.tensor([[1, 2, 1, 0], [0, 0, 0, 0]]),
        ...          "seq_gap": torch.rand(2, 4)}
        >>> cache = model.behaviour_projection(batch["seq_item"], batch["seq_category"])
        >>> cache[0].shape
        torch.Size([2, 4, 8])
        >>> torch.testing.assert_close(model(batch, cache)["click"], model(batch)["click"])
    """

    config: TWINConfig

    def __init__(self, config: TWINConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)

    def build_long(self) -> None:
        c = self.config
        # The cross term: one attention bias per head and gap bucket.
        self.gaps = GapBuckets(c.n_gap_buckets, c.n_heads, c.embed_init_std)
        self.esu = MultiHeadTargetAttention(2 * c.embed_dim, c.n_heads)

    def behaviour_projection(self, seq_item: Tensor, seq_category: Tensor) -> Projection:
        """Per-behaviour key and value projections (what a per-user cache stores).

        Args:
            seq_item: ``[B, L]`` item codes (0 = padding).
            seq_category: ``[B, L]`` their category codes.

        Returns:
            ``keys [B, L, 2E]`` and ``values [B, L, 2E]``; they do not depend on the candidate
            or the request time.
        """
        codes = torch.stack([seq_item, seq_category], dim=-1)
        return self.esu.project(self.embedding.lookup_fields(codes, self.pair).flatten(-2))

    def relevance_from(self, batch: Batch, keys: Tensor | None) -> Tensor:
        """``[B, L]`` mean-over-heads attention logit of every behaviour (no gradient).

        From cached ``keys [B, L, 2E]`` it is one dot product per behaviour with the
        projected query; inline (``keys=None``) the key projection is folded into the query
        (:meth:`~funnelrec.rank.modules.long_sequence.MultiHeadTargetAttention.folded_query`),
        the same logit without projecting the ``L`` behaviours.
        """
        with torch.no_grad():
            candidate = self.candidate(batch)
            query = self.esu.query_vector(candidate).unsqueeze(-1)  # [B, 2E, 1]
            weight, offset = self.esu.folded_query(candidate)

        def score(positions: slice) -> Tensor:
            if keys is None:
                x = self.behaviours(batch, positions)
                logit = torch.bmm(x, weight.unsqueeze(-1)).squeeze(-1) + offset.unsqueeze(1)
            else:
                logit = torch.bmm(keys[:, positions], query).squeeze(-1)
            bias = self.gaps(batch["seq_gap"][:, positions]).sum(-1)  # [B, c]
            return (logit + bias) / self.config.n_heads

        return self.scan(batch, score)

    def relevance(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The attention's relevance; ``keep`` = the real behaviours."""
        return self.relevance_from(batch, None), sequence_mask(batch["seq_item"])

    def attend(self, query: Tensor, projection: Projection, picked: Picked) -> Tensor:
        """The ESU over projected picks ``[B, k, 2E]`` with the gap bias: ``[B, 2E]``."""
        bias = self.gaps(picked.gap).transpose(1, 2)  # [B, H, k]
        return self.esu.attend(query, *projection, picked.valid, bias)

    def long_interest(self, query: Tensor, behaviours: Tensor, picked: Picked) -> Tensor:
        return self.attend(query, self.esu.project(behaviours), picked)

    def forward(self, batch: Batch, cache: Projection | None = None) -> dict[str, Tensor]:
        """Score a batch, optionally from cached behaviour projections.

        Args:
            batch: as for :class:`~funnelrec.rank.models.long_sequence.LongSequenceModel`.
            cache: ``(keys, values)`` from :meth:`behaviour_projection` for ``batch``'s
                sequences, or None to compute them; ``[1, L, 2E]`` each when every row of
                ``batch`` holds that one sequence with the same gaps (a served request).

        Returns:
            ``{task: logit [B]}``.
        """
        if cache is None:
            return super().forward(batch)
        keys, values = cache
        if keys.shape[0] == 1 < batch["seq_item"].shape[0]:
            return self._one_user(batch, keys[0], values[0])
        index, valid = select_top_k(
            self.relevance_from(batch, keys), sequence_mask(batch["seq_item"]), self.config.k
        )
        picked = pick_positions(batch, index, valid)
        fields, query, short, _ = self.embed(batch, picked.codes[:, :0])
        projection = (gather_positions(keys, index), gather_positions(values, index))
        return self.finish(batch, fields, query, short, self.attend(query, projection, picked))

    def _one_user(self, batch: Batch, keys: Tensor, values: Tensor) -> dict[str, Tensor]:
        """:meth:`forward` when every row holds the same behaviours and gaps (one user's
        request), from that user's ``keys``/``values`` ``[L, 2E]``.

        The behaviour side is then computed once, not once per candidate: the relevance is one
        ``[B, 2E] x [2E, L]`` product and the gap bias one ``[L]`` lookup, where the batched
        path multiplies ``B`` copies of the keys and buckets ``B x L`` gaps (measured at
        ``L = 1000``, 100 candidates, one thread: ~5x less time for this forward).
        """
        with torch.no_grad():
            query = self.esu.query_vector(self.candidate(batch))  # [B, 2E]
            bias = self.gaps(batch["seq_gap"][:1]).sum(-1)  # [1, L]
            relevance = (query @ keys.T + bias) / self.config.n_heads
        keep = sequence_mask(batch["seq_item"][:1]).expand_as(relevance)
        index, valid = select_top_k(relevance, keep, self.config.k)
        picked = pick_positions(batch, index, valid)
        fields, query, short, _ = self.embed(batch, picked.codes[:, :0])
        projection = (keys[index], values[index])
        return self.finish(batch, fields, query, short, self.attend(query, projection, picked))


__all__ = ["TWIN"]
