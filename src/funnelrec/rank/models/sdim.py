"""SDIM (Cao et al. 2022, "Sampling Is All You Need on Modeling Long-Term User Behaviors for
CTR Prediction"): hash-based sampling instead of search and attention.

The candidate and every behaviour (``[item, category]`` embeddings) are hashed ``m`` times
(``n_hashes`` rounds of ``tau = hash_bits`` SimHash bits each, a fixed random projection kept
as a buffer). In each round the behaviours that land in the candidate's bucket are summed and
L2-normalised; the long-term interest is the mean over the rounds. Two vectors share a round's
bucket with probability ``(1 - angle / pi) ** tau``, so this approximates attention with
weights that decay with the angle, at a cost linear in ``L`` and with no ``L``-wide attention:
the hashing runs without gradient in slices of the sequence; the gradient reaches the
embeddings through the sums. A round in which no behaviour collides contributes zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, sequence_mask
from funnelrec.rank.models.config import SDIMConfig
from funnelrec.rank.models.long_sequence import LongSequenceModel, Picked, sequence_codes
from funnelrec.rank.modules.long_sequence import SimHash, chunked, collisions


class SDIM(LongSequenceModel):
    """SDIM with one head per task.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 1, 4, 1, 2, ("click",))
        >>> model = SDIM(SDIMConfig(embed_dim=4, n_hashes=4, hash_bits=2), spec)
        >>> batch = {"sparse": torch.ones(2, 3, dtype=torch.long), "dense": torch.zeros(2, 1),
        ...          "seq_item": torch.tensor([[1, 2, 3, 0], [0, 0, 0, 0]]),
        ...          "seq_category": torch.tensor([[1, 2, 1, 0], [0, 0, 0, 0]]),
        ...          "seq_gap": torch.rand(2, 4)}
        >>> model(batch)["click"].shape
        torch.Size([2])
    """

    config: SDIMConfig

    def __init__(self, config: SDIMConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)

    def build_long(self) -> None:
        c = self.config
        self.simhash = SimHash(2 * c.embed_dim, c.n_hashes * c.hash_bits)

    def pick(self, batch: Batch) -> Picked:
        """Every behaviour (SDIM does not search); padding is invalid."""
        seq_item = batch["seq_item"]
        index = torch.arange(seq_item.shape[1], device=seq_item.device).expand(seq_item.shape)
        return Picked(sequence_codes(batch), batch["seq_gap"], sequence_mask(seq_item), index)

    def collisions(self, query: Tensor, behaviours: Tensor, valid: Tensor) -> Tensor:
        """``[B, L, m]`` bool: behaviour ``l`` is real and in the candidate's bucket in round
        ``r`` (no gradient).

        Args:
            query: ``[B, 2E]``.
            behaviours: ``[B, L, 2E]``.
            valid: ``[B, L]`` bool.
        """
        tau = self.config.hash_bits
        target = self.simhash(query).unsqueeze(1)  # [B, 1, m * tau]

        def collide(positions: slice) -> Tensor:
            bits = self.simhash(behaviours[:, positions])  # [B, c, m * tau]
            return collisions(bits, target, tau) & valid[:, positions, None]

        return chunked(collide, behaviours.shape[1], self.config.search_chunk)

    def long_interest(self, query: Tensor, behaviours: Tensor, picked: Picked) -> Tensor:
        """Mean over rounds of the L2-normalised sum of the colliding behaviours: ``[B, 2E]``."""
        hits = self.collisions(query, behaviours, picked.valid).to(behaviours.dtype)
        sums = torch.bmm(hits.transpose(1, 2), behaviours)  # [B, m, 2E]
        return nn.functional.normalize(sums, dim=-1).mean(dim=1)


__all__ = ["SDIM"]
