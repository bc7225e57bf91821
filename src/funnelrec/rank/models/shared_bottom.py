"""Shared-Bottom: one MLP shared by all tasks, then one tower per task (the MTL baseline)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import Tensor

from funnelrec.rank.models.base import Batch, FlatInput, FlatInputConfig, RankModel, seeded
from funnelrec.rank.models.mmoe import tower_config
from funnelrec.rank.modules.mlp import MLP, MLPConfig
from funnelrec.rank.modules.moe import ExpertBank
from funnelrec.features.spec import FeatureSpec


class SharedBottomConfig(FlatInputConfig):
    """Shared-Bottom settings.

    Example:
        >>> SharedBottomConfig().tower.hidden
        (64,)
    """

    kind: Literal["shared_bottom"] = "shared_bottom"
    bottom: MLPConfig = Field(default_factory=MLPConfig, description="The shared MLP.")
    tower: MLPConfig = Field(default_factory=tower_config, description="Per-task tower.")


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


__all__ = ["SharedBottom", "SharedBottomConfig"]
