"""ESMM (Ma et al. 2018): conversion modelled over the entire exposure space.

The first task of ``spec.tasks`` is CTR; every other task ``t`` is a post-click event (cart,
order, ...) whose label is observed on *every* exposure (``label_t = 1`` only if the item was
clicked and then converted). A CTR tower and one conditional tower per other task read the
same shared embeddings; the model outputs

    p_ctr = sigmoid(a),    p_t = p_ctr * p(t | click) = sigmoid(a) * sigmoid(b_t),

so the conditional towers are trained through ``p_t`` on all exposures (no selection bias
from training CVR on clicked samples only, and CVR's sparse labels share CTR's embeddings).

The contract asks for logits, so ``p_t`` is returned as ``logit(p_t)``. With
``log p_t = logsigmoid(a) + logsigmoid(b)`` and
``1 - p_t = (e^-a + e^-b + e^-(a+b)) / ((1 + e^-a)(1 + e^-b))``,

    logit(p_t) = log p_t - log(1 - p_t) = -logsumexp(-a, -b, -(a + b)),

the same quantity as ``log p - log(-expm1(log p))`` but free of cancellation when ``p_t`` is
close to 1 (where ``expm1`` underflows to 0 in float32) and finite for any finite ``a, b``.
Because ``logsumexp`` over a superset of ``{-a}`` is ``>= -a`` in floating point too,
``logit(p_t) <= a`` and hence ``pCTCVR <= pCTR`` for every sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, FlatInput, RankModel, seeded
from funnelrec.rank.models.config import ESMMConfig
from funnelrec.rank.modules.moe import ExpertBank


def product_logit(a: Tensor, b: Tensor) -> Tensor:
    """``logit(sigmoid(a) * sigmoid(b))``, stably (elementwise, broadcasting).

    Example:
        >>> a, b = torch.tensor([0.0, 30.0, -5.0]), torch.tensor([0.0, 40.0, 2.0])
        >>> p = torch.sigmoid(product_logit(a, b))
        >>> bool(torch.allclose(p, torch.sigmoid(a) * torch.sigmoid(b)))
        True
    """
    a, b = torch.broadcast_tensors(a, b)
    return -torch.logsumexp(torch.stack([-a, -b, -(a + b)]), dim=0)


class ESMM(RankModel):
    """Entire-space multi-task model: ``p_t = p_ctr * p(t | click)``.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "order"))
        >>> model = ESMM(ESMMConfig(), spec)
        >>> batch = {"sparse": torch.ones(6, 3, dtype=torch.long), "dense": torch.randn(6, 2)}
        >>> out = model(batch)
        >>> bool((torch.sigmoid(out["order"]) <= torch.sigmoid(out["click"])).all())
        True
    """

    def __init__(self, config: ESMMConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        if len(self.tasks) < 2:
            raise ValueError("ESMM needs a CTR task and at least one post-click task")
        self.config = config
        with seeded(config.seed):
            self.input = FlatInput(
                spec, config.embed_dim, config.embed_init_std, config.sequence_pooling
            )
            # Member 0 is the CTR tower, member t the conditional tower of task t.
            self.towers = ExpertBank(self.input.out_dim, len(self.tasks), config.tower, 1)

    def tower_logits(self, batch: Batch) -> Tensor:
        """Raw tower outputs ``[T, B]``: row 0 the CTR logit, row ``t`` the logit of
        ``p(task_t | click)``."""
        return self.towers(self.input(batch)[1]).squeeze(-1)

    def conditional_logits(self, batch: Batch) -> dict[str, Tensor]:
        """``{task: logit of p(task | click) [B]}`` for every post-click task (pCVR)."""
        towers = self.tower_logits(batch)
        return {task: towers[i] for i, task in enumerate(self.tasks) if i > 0}

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]`` (and ``seq_*`` with mean pooling).

        Returns:
            ``{ctr_task: logit(pCTR) [B], t: logit(pCTR * p(t | click)) [B], ...}``.
        """
        towers = self.tower_logits(batch)  # [T, B]
        ctr = towers[:1]
        joint = product_logit(ctr, towers[1:])  # [T - 1, B]
        return self.as_dict(torch.cat([ctr, joint]).t())


__all__ = ["ESMM", "product_logit"]
