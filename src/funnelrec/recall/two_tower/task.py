"""The two-tower loss: a sampled softmax over in-batch, uniform and hard negatives.

For example ``i`` with positive item ``p_i`` the candidate set is

* the ``B`` in-batch positives (column ``i`` is the positive itself),
* ``U`` uniformly sampled items shared by the batch (mixed negative sampling, Yang et al.
  2020),
* ``H`` hard negatives of its own (EBR, Huang et al. 2020).

**logQ correction** (Yi et al. 2019): in-batch and uniform candidates are sampled, not drawn
from the full softmax, so each of their logits gets ``- log Q(j)`` with ``Q(j)`` the expected
number of times item ``j`` appears among them, ``B * p_j + U / N`` (``p_j`` = the item's
share of the training examples). The correction applies to every sampled column, the
positive's own column included, and never to hard negatives (chosen by score, not frequency).

**Accidental hits**: a candidate equal to ``p_i`` other than column ``i`` (the same item is the
positive of another example, was drawn uniformly, or was mined) is masked out with ``-inf``;
so are padded hard negatives (item ``-1``).

The loss is the mean cross-entropy with target column ``i``.

**Distributed** (a worker's shard, :func:`~funnelrec.recall.two_tower.data.shard_batch`): the
rows are the worker's ``B_r`` examples starting at global row ``row_offset``, the in-batch
columns are the ``B`` positives gathered from every worker, and ``pos_item`` / ``pos_logq``
describe those ``B`` columns, so the logQ correction and the accidental-hit mask apply to the
gathered set exactly as to a single-process batch; row ``i``'s target is column
``row_offset + i``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


def _row_offset(batch: Mapping[str, Tensor]) -> int:
    """Global index of the batch's first row (0 unless it is a worker's shard)."""
    offset = batch.get("row_offset")
    return 0 if offset is None else int(offset)


class SampledSoftmaxTask:
    """Turns :class:`~funnelrec.recall.two_tower.model.TwoTowerModel` logits into the loss.

    Args:
        logq_correction: subtract ``pos_logq`` / ``uniform_logq`` from sampled columns.
        mask_accidental_hits: mask candidates equal to the row's positive (except its own).

    Example:
        >>> task = SampledSoftmaxTask(logq_correction=False)
        >>> outputs = {"in_batch": torch.zeros(2, 2), "uniform": torch.zeros(2, 0),
        ...            "hard": torch.zeros(2, 0)}
        >>> batch = {"pos_item": torch.tensor([0, 1]), "pos_logq": torch.zeros(2),
        ...          "uniform_item": torch.zeros(0, dtype=torch.long),
        ...          "uniform_logq": torch.zeros(0), "hard_item": torch.zeros(2, 0).long()}
        >>> round(float(task(outputs, batch)["loss"]), 4)  # log(2)
        0.6931
    """

    def __init__(self, logq_correction: bool = True, mask_accidental_hits: bool = True) -> None:
        self.logq_correction = logq_correction
        self.mask_accidental_hits = mask_accidental_hits

    def logits(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> Tensor:
        """Corrected and masked logits ``[B, B + U + H]``; the target of row ``i`` is ``i``.

        Args:
            outputs: ``in_batch [B, B]``, ``uniform [B, U]``, ``hard [B, H]``.
            batch: ``pos_item [B]``, ``pos_logq [B]``, ``uniform_item [U]``,
                ``uniform_logq [U]``, ``hard_item [B, H]`` (-1 = padding); a shard also
                ``row_offset`` (its first row's global index).
        """
        in_batch, uniform, hard = outputs["in_batch"], outputs["uniform"], outputs["hard"]
        pos_item = batch["pos_item"]
        uniform_item = batch["uniform_item"]
        hard_item = batch["hard_item"]
        offset = _row_offset(batch)
        rows, columns = in_batch.shape
        row_item = pos_item[offset : offset + rows]
        if self.logq_correction:
            in_batch = in_batch - batch["pos_logq"].unsqueeze(0)
            uniform = uniform - batch["uniform_logq"].unsqueeze(0)
        neg_inf = torch.finfo(in_batch.dtype).min
        device = in_batch.device
        target = torch.arange(rows, device=device) + offset
        own = target[:, None] == torch.arange(columns, device=device)[None, :]
        if self.mask_accidental_hits:
            same = (row_item[:, None] == pos_item[None, :]) & ~own
            in_batch = in_batch.masked_fill(same, neg_inf)
            uniform = uniform.masked_fill(uniform_item[None, :] == row_item[:, None], neg_inf)
            hard = hard.masked_fill(hard_item == row_item[:, None], neg_inf)
        hard = hard.masked_fill(hard_item < 0, neg_inf)
        return torch.cat([in_batch, uniform, hard], dim=1)

    def __call__(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """``loss`` (mean cross-entropy) plus diagnostics: ``pos_rank_in_batch`` (mean 0-based
        rank of the positive among the row's candidates) and ``hard_share`` (share of the
        softmax mass on hard negatives)."""
        logits = self.logits(outputs, batch)
        target = torch.arange(logits.shape[0], device=logits.device) + _row_offset(batch)
        loss = nn.functional.cross_entropy(logits, target)
        with torch.no_grad():
            pos = logits.gather(1, target[:, None])
            rank = (logits > pos).float().sum(dim=1).mean()
            b, u = outputs["in_batch"].shape[1], outputs["uniform"].shape[1]
            hard_share = logits.softmax(dim=1)[:, b + u :].sum(dim=1).mean()
        return {"loss": loss, "pos_rank_in_batch": rank, "hard_share": hard_share}
