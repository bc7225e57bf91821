"""ETA (Chen et al. 2021, "End-to-End User Behavior Retrieval in Click-Through Rate
Prediction Model"): search the long sequence by SimHash, then attend.

Every ``[item, category]`` embedding gets an ``m``-bit SimHash signature (the signs of a fixed
random projection, kept as a buffer); the search keeps the ``k`` behaviours with the smallest
Hamming distance to the candidate's signature (an XOR and a bit count of bool signatures). The
signatures follow the embeddings as they train (the paper's point: the retrieval is
end-to-end, with no separately trained index), but no gradient flows through them. The Exact
Search Unit and the short-term DIN are SIM's
(:class:`~funnelrec.rank.models.long_sequence.SearchModel`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, sequence_mask
from funnelrec.rank.models.config import ETAConfig
from funnelrec.rank.models.long_sequence import SearchModel, pick_positions
from funnelrec.rank.modules.long_sequence import SimHash, hamming, select_top_k


class ETA(SearchModel):
    """ETA with one head per task.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 1, 4, 1, 2, ("click",))
        >>> model = ETA(ETAConfig(k=2, embed_dim=4, n_bits=16), spec)
        >>> batch = {"sparse": torch.ones(2, 3, dtype=torch.long), "dense": torch.zeros(2, 1),
        ...          "seq_item": torch.tensor([[1, 2, 3, 0], [0, 0, 0, 0]]),
        ...          "seq_category": torch.tensor([[1, 2, 1, 0], [0, 0, 0, 0]]),
        ...          "seq_gap": torch.rand(2, 4)}
        >>> model(batch)["click"].shape
        torch.Size([2])
        >>> int(model.hamming(batch)[0, 0]) <= 16
        True
    """

    config: ETAConfig

    def __init__(self, config: ETAConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)

    def build_long(self) -> None:
        super().build_long()
        self.simhash = SimHash(2 * self.config.embed_dim, self.config.n_bits)

    def hamming(self, batch: Batch) -> Tensor:
        """``[B, L]`` Hamming distance between the candidate's and each behaviour's
        signature (float32, integral values in ``[0, m]``)."""
        signature = self.simhash(self.candidate(batch)).unsqueeze(1)  # [B, 1, m]

        def distance(positions: slice) -> Tensor:
            bits = self.simhash(self.behaviours(batch, positions))  # [B, c, m]
            return hamming(bits, signature).to(torch.float32)

        return self.scan(batch, distance)

    def relevance(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Minus the Hamming distance, ties (distances are integers) broken in favour of the
        more recent behaviour by ``- position / L``; ``keep`` = the real behaviours."""
        return -self.hamming(batch) - _recency(batch), sequence_mask(batch["seq_item"])

    def behaviour_projection(self, seq_item: Tensor, seq_category: Tensor) -> tuple[Tensor]:
        """The behaviours' signatures ``([B, L, m] bool,)``: they depend on neither the
        candidate nor the request time, so a served user's are computed once and cached
        (:mod:`funnelrec.rank.behaviour_cache`)."""
        codes = torch.stack([seq_item, seq_category], dim=-1)
        return (self.simhash(self.embedding.lookup_fields(codes, self.pair).flatten(-2)),)

    def forward(self, batch: Batch, cache: tuple[Tensor] | None = None) -> dict[str, Tensor]:
        """Score a batch; with ``cache`` = one user's :meth:`behaviour_projection` (``[1, L,
        m]``) for a batch whose rows all hold that user's sequence and gaps (a served
        request), the search reads those signatures: the same output, without signing the
        behaviours once per candidate."""
        if cache is None or cache[0].shape[0] != 1:
            return super().forward(batch)
        # Hamming distance of +-1 codes as one product: (m - <s_c, s_b>) / 2, exact in float32.
        signs = cache[0][0].to(torch.float32) * 2 - 1  # [L, m]
        candidate = self.simhash(self.candidate(batch)).to(torch.float32) * 2 - 1  # [B, m]
        distance = (signs.shape[1] - candidate @ signs.T) / 2  # [B, L]
        relevance = -distance - _recency(batch)
        keep = sequence_mask(batch["seq_item"][:1]).expand_as(relevance)
        picked = pick_positions(batch, *select_top_k(relevance, keep, self.config.k))
        fields, query, short, behaviours = self.embed(batch, picked.codes)
        interest = self.long_interest(query, behaviours, picked)
        return self.finish(batch, fields, query, short, interest)


def _recency(batch: Batch) -> Tensor:
    """``[L]`` ``position / L``: the tie-break towards recent behaviours."""
    seq_item = batch["seq_item"]
    length = seq_item.shape[1]
    return torch.arange(length, device=seq_item.device, dtype=torch.float32) / length


__all__ = ["ETA"]
