"""The SASRec loss: the two-tower's sampled softmax, over every target position of a batch.

A batch of ``B`` windows has ``P`` target positions (``B * L`` less padding). The two-tower's
candidate set per example is the batch's ``P`` positives (duplicates included) plus ``U``
shared uniform items, each logit logQ-corrected with ``Q(j) = P * p_j + U / N``
(:func:`funnelrec.recall.two_tower.sampling.item_log_q`), the positive's other copies and a
uniform draw of the positive masked. ``P x P`` logits are too many here (12.8k x 12.8k at
batch 256 x 50), so the batch's targets are kept once each (``M`` distinct items) and item
``j`` appearing ``c_j`` times gets ``+ log c_j`` (``c`` copies of one logit are one logit
plus ``log c`` in a softmax). The positive's own column counts once (``c = 1``: its other
copies are the masked accidental hits). The loss therefore equals
:class:`~funnelrec.recall.two_tower.task.SampledSoftmaxTask` on the expanded logits (tested)
at ``O(P * (M + U))`` cost, with one full pass over the logits before the cross-entropy.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class SequenceSoftmaxTask:
    """Turns :class:`~funnelrec.recall.sasrec.model.SASRecModel` logits into the loss.

    Args:
        logq_correction: subtract ``cand_logq`` from every column (all are sampled).

    Example:
        >>> task = SequenceSoftmaxTask(logq_correction=False)
        >>> batch = {"target": torch.tensor([0, 1]), "cand_log_count": torch.zeros(2),
        ...          "cand_logq": torch.zeros(2), "hit_row": torch.zeros(0, dtype=torch.long),
        ...          "hit_col": torch.zeros(0, dtype=torch.long)}
        >>> round(float(task({"candidates": torch.zeros(2, 2)}, batch)["loss"]), 4)  # log 2
        0.6931
    """

    def __init__(self, logq_correction: bool = True) -> None:
        self.logq_correction = logq_correction

    def logits(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> Tensor:
        """Corrected and masked logits ``[P, C]``; row ``p``'s target is column ``target[p]``.

        Args:
            outputs: ``candidates [P, C]`` (the ``M`` distinct targets, then ``U`` uniform).
            batch: ``target [P]``, ``cand_log_count [C]`` (log of each distinct target's count
                in the batch, 0 for uniform columns), ``cand_logq [C]``, and the accidental
                hits ``hit_row / hit_col [H]`` (uniform columns equal to the row's target).
        """
        raw = outputs["candidates"]
        target = batch["target"].unsqueeze(1)
        bias = batch["cand_log_count"]
        own = raw.gather(1, target)  # the positive counts once: no log count
        if self.logq_correction:
            bias = bias - batch["cand_logq"]
            own = own - batch["cand_logq"][batch["target"]].unsqueeze(1)
        # In place on the fresh sum (its backward does not read it): one full pass, no copies.
        logits = (raw + bias.unsqueeze(0)).scatter_(1, target, own)
        hits = batch["hit_row"]
        floor = torch.full(hits.shape, torch.finfo(logits.dtype).min, device=logits.device)
        return logits.index_put_((batch["hit_row"], batch["hit_col"]), floor)

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """``loss``: the mean cross-entropy over the batch's target positions."""
        return {"loss": nn.functional.cross_entropy(self.logits(outputs, batch), batch["target"])}
