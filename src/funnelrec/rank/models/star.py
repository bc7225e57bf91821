"""STAR (Sheng et al. 2021): one model serving several scenarios, with a multi-task head.

The flat input (every sparse field, the scenario's included, + dense features) goes through
:class:`~funnelrec.rank.modules.star.PartitionedNorm` (per-scenario batch statistics and
scale/shift on top of shared ones) and a star-topology FCN (scenario ``s`` uses the shared
weights times its own, element-wise, and the shared bias plus its own); one tower per task
reads its output, as in Shared-Bottom. An auxiliary network on the scenario embedding adds
a per-task logit, so that a scenario's base rate does not have to pass through the FCN.

The scenario is the sparse field ``scenario`` (:mod:`funnelrec.features.scenario`); a spec
without one gives a single scenario (code 0), i.e. a shared-bottom network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from funnelrec.features.scenario import scenario_field
from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, FlatInput, RankModel, seeded
from funnelrec.rank.models.config import STARConfig
from funnelrec.rank.modules.mlp import MLP, linear
from funnelrec.rank.modules.moe import ExpertBank
from funnelrec.rank.modules.star import PartitionedNorm, ScenarioPartition, StarMLP


class STAR(RankModel):
    """Star-topology adaptive recommender with per-task towers.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c", "scenario"), (5, 7, 3, 4), 2, 4, 1, 2,
        ...     ("click", "buy"))
        >>> model = STAR(STARConfig(star={"hidden": (16,)}), spec)
        >>> sparse = torch.tensor([[1, 2, 1, s] for s in (1, 2, 3, 1, 0, 2)])
        >>> out = model({"sparse": sparse, "dense": torch.zeros(6, 2)})
        >>> sorted(out), out["buy"].shape, model.n_scenarios
        (['buy', 'click'], torch.Size([6]), 4)
    """

    def __init__(self, config: STARConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        self.config = config
        self.scenario_field = scenario_field(spec)
        field = self.scenario_field
        self.n_scenarios = 1 if field is None else int(spec.sparse_cardinalities[field])
        n_tasks = len(self.tasks)
        with seeded(config.seed):
            self.input = FlatInput(
                spec, config.embed_dim, config.embed_init_std, config.sequence_pooling
            )
            d = self.input.out_dim
            self.norm = PartitionedNorm(d, self.n_scenarios) if config.partitioned_norm else None
            self.star = StarMLP(d, config.star, self.n_scenarios)
            self.towers = ExpertBank(self.star.out_dim, n_tasks, config.tower, 1)
            self.aux: nn.Sequential | None = None
            if config.auxiliary is not None:
                aux_mlp = MLP(config.embed_dim, config.auxiliary)
                self.aux_embedding = nn.Parameter(
                    torch.randn(self.n_scenarios, config.embed_dim) * config.embed_init_std
                )
                self.aux = nn.Sequential(aux_mlp, linear(aux_mlp.out_dim, n_tasks, "linear"))

    def scenarios(self, batch: Batch) -> Tensor:
        """``[B]`` int64 scenario codes of a batch (all 0 without a scenario field)."""
        sparse = batch["sparse"]
        if self.scenario_field is None:
            return torch.zeros(sparse.shape[0], dtype=torch.long, device=sparse.device)
        return sparse[:, self.scenario_field]

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]`` (the scenario field among them), ``dense [B, D]`` (and
                ``seq_*`` with mean pooling).

        Returns:
            ``{task: logit [B]}``.
        """
        _, x = self.input(batch)  # [B, d]
        scenario = self.scenarios(batch)  # [B]
        partition = ScenarioPartition(scenario, self.n_scenarios)
        parts = partition.split(x)
        if self.norm is not None:
            parts = self.norm(parts, x)
        shared = partition.join(self.star(parts))  # [B, H]
        logits = self.towers(shared).squeeze(-1).t()  # [B, T]
        if self.aux is not None:
            # The auxiliary network reads only the scenario: run it once per scenario
            # ([S, T]) and gather, instead of once per row.
            logits = logits + self.aux(self.aux_embedding)[scenario]
        return self.as_dict(logits)


__all__ = ["STAR"]
