"""Shared-Bottom: one MLP shared by all tasks, then one tower per task (the MTL baseline)."""

from __future__ import annotations

from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, FlatInput, RankModel, seeded
from funnelrec.rank.models.config import SharedBottomConfig
from funnelrec.rank.modules.mlp import MLP
from funnelrec.rank.modules.moe import ExpertBank


class SharedBottom(RankModel):
    """Shared bottom MLP + per-task towers (batched in one ExpertBank).

    Example:
        >>> import torch
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
        >>> model = SharedBottom(SharedBottomConfig(), spec)
        >>> batch = {"sparse": torch.ones(6, 3, dtype=torch.long), "dense": torch.zeros(6, 2)}
        >>> sorted(model(batch))
        ['buy', 'click']
    """

    def __init__(self, config: SharedBottomConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        self.config = config
        with seeded(config.seed):
            self.input = FlatInput(
                spec, config.embed_dim, config.embed_init_std, config.sequence_pooling
            )
            self.bottom = MLP(self.input.out_dim, config.bottom)
            self.towers = ExpertBank(self.bottom.out_dim, len(self.tasks), config.tower, 1)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]`` (and ``seq_*`` with mean pooling).

        Returns:
            ``{task: logit [B]}``.
        """
        shared = self.bottom(self.input(batch)[1])  # [B, H]
        return self.as_dict(self.towers(shared).squeeze(-1).t())


__all__ = ["SharedBottom"]
