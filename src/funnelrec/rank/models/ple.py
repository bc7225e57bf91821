"""PLE (Tang et al. 2020): progressive layered extraction with task-specific and shared experts.

Each of the ``levels`` CGC (customised gate control) layers has ``n_specific`` experts per task
and ``n_shared`` shared experts. Task ``t``'s gate mixes its own experts and the shared ones;
below the last level a shared gate mixes all experts into the next level's shared input.
Level 0 reads the flat input for every expert and gate; level ``l > 0`` feeds task ``t``'s
experts and gate with task ``t``'s output of level ``l - 1`` and the shared experts/gate with
the shared output. After the last level each task's mixture goes to its tower.

Layout of the ``N = T * n_specific + n_shared`` experts of a level (see
:attr:`PLE.expert_names`): task 0's experts, task 1's, ..., then the shared ones. All experts
of a level are one :class:`~funnelrec.rank.modules.moe.ExpertBank`; the gates of a level are
softmaxes over all ``N`` with the experts a gate may not see masked out (weight exactly 0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, FlatInput, GatedRankModel, seeded
from funnelrec.rank.models.config import GATE, PLEConfig
from funnelrec.rank.modules.moe import ExpertBank, masked_softmax, mix


class CGCLayer(nn.Module):
    """One extraction level.

    Args:
        in_dim: input width.
        n_tasks: ``T``.
        config: expert counts and shapes.
        shared_gate: also produce the shared output (every level but the last).
    """

    allowed: Tensor
    expert_input: Tensor

    def __init__(self, in_dim: int, n_tasks: int, config: PLEConfig, shared_gate: bool) -> None:
        super().__init__()
        ns, nsh = config.n_specific, config.n_shared
        n = n_tasks * ns + nsh
        self.n_gates = n_tasks + int(shared_gate)
        self.experts = ExpertBank(in_dim, n, config.expert)
        self.gates = ExpertBank(in_dim, self.n_gates, GATE, out_dim=n)
        allowed = torch.zeros(self.n_gates, n, dtype=torch.bool)
        for t in range(n_tasks):
            allowed[t, t * ns : (t + 1) * ns] = True
            allowed[t, n_tasks * ns :] = True
        if shared_gate:
            allowed[n_tasks] = True
        owner = torch.arange(n_tasks).repeat_interleave(ns)
        owner = torch.cat([owner, torch.full((nsh,), n_tasks, dtype=torch.long)])
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("expert_input", owner, persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run the level.

        Args:
            x: ``[B, in]`` (first level: one input for everything) or ``[T + 1, B, in]``
                (task inputs then the shared input).

        Returns:
            ``out [G, B, H]`` (G = T, plus the shared output when ``shared_gate``) and the
            gate weights ``[G, B, N]``.
        """
        if x.dim() == 2:
            experts = self.experts(x)
            logits = self.gates(x)
        else:
            experts = self.experts(x.index_select(0, self.expert_input))
            logits = self.gates(x[: self.n_gates])
        weights = masked_softmax(logits, self.allowed)  # [G, B, N]
        return mix(weights, experts), weights


class PLE(GatedRankModel):
    """Progressive layered extraction.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
        >>> model = PLE(PLEConfig(levels=2, n_specific=1, n_shared=1), spec)
        >>> batch = {"sparse": torch.ones(6, 3, dtype=torch.long), "dense": torch.zeros(6, 2)}
        >>> model.expert_names
        ('click/0', 'buy/0', 'shared/0')
        >>> model.gate_utilisation(batch)["click"][1]  # click's gate never sees buy's expert
        np.float64(0.0)
    """

    def __init__(self, config: PLEConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        self.config = config
        n_tasks = len(self.tasks)
        self.expert_names = tuple(
            [f"{t}/{i}" for t in self.tasks for i in range(config.n_specific)]
            + [f"shared/{i}" for i in range(config.n_shared)]
        )
        with seeded(config.seed):
            self.input = FlatInput(
                spec, config.embed_dim, config.embed_init_std, config.sequence_pooling
            )
            width = config.expert.out_dim(self.input.out_dim)
            self.levels = nn.ModuleList(
                CGCLayer(
                    self.input.out_dim if level == 0 else width,
                    n_tasks,
                    config,
                    shared_gate=level < config.levels - 1,
                )
                for level in range(config.levels)
            )
            self.towers = ExpertBank(width, n_tasks, config.tower, out_dim=1)

    def _run(self, batch: Batch) -> tuple[Tensor, list[Tensor]]:
        x = self.input(batch)[1]
        gates = []
        for level in self.levels:
            x, weights = level(x)
            gates.append(weights)
        return x, gates

    def gate_weights(self, batch: Batch, level: int = -1) -> Tensor:
        """Task gate weights ``[T, B, N]`` of one level (default: the last, feeding the
        towers); zero for the other tasks' experts."""
        return self._run(batch)[1][level][: len(self.tasks)]

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]`` (and ``seq_*`` with mean pooling).

        Returns:
            ``{task: logit [B]}``.
        """
        mixed, _ = self._run(batch)  # [T, B, H]
        return self.as_dict(self.towers(mixed).squeeze(-1).t())


__all__ = ["PLE", "CGCLayer"]
