"""SIM (Pi et al. 2020, "Search-based User Interest Modeling with Lifelong Sequential
Behavior Data for Click-Through Rate Prediction"): search the long sequence, then attend.

The General Search Unit (GSU) keeps ``k`` of the ``L`` behaviours without gradient:

* **hard search** (:class:`SIMHard`): the ``k`` most recent behaviours whose category equals
  the candidate's (an unknown category, code 0, matches nothing); it reads only codes;
* **soft search** (:class:`SIMSoft`): the ``k`` behaviours of largest inner product between
  their ``[item, category]`` embedding and the candidate's (the shared table, no gradient
  through the selection).

The Exact Search Unit (ESU) is a multi-head target attention over the ``k`` picks, each the
``[item, category]`` embedding plus a learned embedding of its time gap in log-spaced buckets;
SIM's short-term interest is a DIN over the most recent ``short_len`` behaviours. Only the
GSU sees all ``L`` behaviours, as ``[B, L]`` scores; the ESU works on ``[B, k, 2E]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, sequence_mask
from funnelrec.rank.models.config import SIMHardConfig, SIMSoftConfig
from funnelrec.rank.models.long_sequence import SearchModel


class SIMHard(SearchModel):
    """SIM with hard (category) search and one head per task.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 1, 4, 1, 2, ("click",))
        >>> model = SIMHard(SIMHardConfig(k=2, embed_dim=4), spec)
        >>> batch = {"sparse": torch.ones(2, 3, dtype=torch.long), "dense": torch.zeros(2, 1),
        ...          "seq_item": torch.tensor([[1, 2, 3, 0], [0, 0, 0, 0]]),
        ...          "seq_category": torch.tensor([[1, 2, 1, 0], [0, 0, 0, 0]]),
        ...          "seq_gap": torch.rand(2, 4)}
        >>> model(batch)["click"].shape
        torch.Size([2])
        >>> picked = model.pick(batch)
        >>> sorted(picked.index[0].tolist()), picked.valid[1].tolist()
        ([0, 2], [False, False])
    """

    config: SIMHardConfig

    def __init__(self, config: SIMHardConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)

    def relevance(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Recency as the score (``-position``), kept where the category matches.

        Returns:
            ``scores [B, L]`` and ``keep [B, L]`` (real behaviours of the candidate's
            known category).
        """
        seq_item, seq_category = batch["seq_item"], batch["seq_category"]
        target = batch["sparse"][:, self.spec.category_field].unsqueeze(1)  # [B, 1]
        keep = sequence_mask(seq_item) & (seq_category == target) & (target != 0)
        position = torch.arange(seq_item.shape[1], device=seq_item.device, dtype=torch.float32)
        return (-position).expand(seq_item.shape), keep


class SIMSoft(SearchModel):
    """SIM with soft (embedding inner product) search and one head per task.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 1, 4, 1, 2, ("click",))
        >>> model = SIMSoft(SIMSoftConfig(k=2, embed_dim=4), spec)
        >>> batch = {"sparse": torch.ones(2, 3, dtype=torch.long), "dense": torch.zeros(2, 1),
        ...          "seq_item": torch.tensor([[1, 2, 3, 0], [0, 0, 0, 0]]),
        ...          "seq_category": torch.tensor([[1, 2, 1, 0], [0, 0, 0, 0]]),
        ...          "seq_gap": torch.rand(2, 4)}
        >>> model(batch)["click"].shape
        torch.Size([2])
    """

    config: SIMSoftConfig

    def __init__(self, config: SIMSoftConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)

    def relevance(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Inner product of each behaviour's ``[item, category]`` embedding with the
        candidate's.

        Returns:
            ``scores [B, L]`` and ``keep [B, L]`` (the real behaviours).
        """
        query = self.candidate(batch).unsqueeze(-1)  # [B, 2E, 1]

        def score(positions: slice) -> Tensor:
            return torch.bmm(self.behaviours(batch, positions), query).squeeze(-1)

        return self.scan(batch, score), sequence_mask(batch["seq_item"])


__all__ = ["SIMHard", "SIMSoft"]
