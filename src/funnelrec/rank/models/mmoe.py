"""MMoE (Ma et al. 2018): shared experts, one softmax gate and one tower per task.

``N`` experts read the flat input; task ``t`` mixes their outputs with its own gate
``softmax(W_t x)`` and feeds the mixture into its tower, which ends in the task's logit.
Experts, gates and towers are each one :class:`~funnelrec.rank.modules.moe.ExpertBank`
(batched GEMMs, no Python loop over experts or tasks).
"""

from __future__ import annotations

from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, FlatInput, GatedRankModel, seeded
from funnelrec.rank.models.config import GATE, MMoEConfig
from funnelrec.rank.modules.moe import ExpertBank, mix


class MMoE(GatedRankModel):
    """Multi-gate mixture of experts.

    Example:
        >>> import torch
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
        >>> model = MMoE(MMoEConfig(n_experts=3), spec)
        >>> batch = {"sparse": torch.ones(6, 3, dtype=torch.long), "dense": torch.zeros(6, 2)}
        >>> model(batch)["buy"].shape, model.gate_utilisation(batch)["click"].shape
        (torch.Size([6]), (3,))
    """

    def __init__(self, config: MMoEConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        self.config = config
        n_tasks = len(self.tasks)
        self.expert_names = tuple(f"expert/{i}" for i in range(config.n_experts))
        with seeded(config.seed):
            self.input = FlatInput(
                spec, config.embed_dim, config.embed_init_std, config.sequence_pooling
            )
            d = self.input.out_dim
            self.experts = ExpertBank(d, config.n_experts, config.expert)
            self.gates = ExpertBank(d, n_tasks, GATE, out_dim=config.n_experts)
            self.towers = ExpertBank(self.experts.out_dim, n_tasks, config.tower, out_dim=1)

    def _gates(self, x: Tensor) -> Tensor:
        return self.gates(x).softmax(dim=-1)  # [T, B, N]

    def gate_weights(self, batch: Batch) -> Tensor:
        """Per-task gate weights ``[T, B, N]``."""
        return self._gates(self.input(batch)[1])

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]`` (and ``seq_*`` with mean pooling).

        Returns:
            ``{task: logit [B]}``.
        """
        _, x = self.input(batch)  # [B, d]
        experts = self.experts(x)  # [N, B, H]
        mixed = mix(self._gates(x), experts)  # [T, B, H]
        logits = self.towers(mixed).squeeze(-1)  # [T, B]
        return self.as_dict(logits.t())


__all__ = ["MMoE"]
