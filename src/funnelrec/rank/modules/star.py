"""STAR building blocks (Sheng et al. 2021, "One Model to Serve All: Star Topology Adaptive
Recommender for Multi-Domain CTR Prediction"): every scenario's network is the element-wise
product of shared and scenario-specific parameters, and normalisation keeps statistics per
scenario.

Scenario codes follow the sparse-field convention of
:class:`~funnelrec.features.spec.FeatureSpec`: ``0`` is "unknown / missing", real scenarios are
``1..S-1``. Code 0 is the population: its normalisation statistics are those of whole batches
and its scenario-specific parameters stay at their neutral start (factor 1, offset 0) unless
training samples carry it, so a request without a scenario is scored by the shared network.

A batch is split by scenario once (:class:`ScenarioPartition`: one sort, one gather) and every
layer runs one GEMM per scenario present; with a handful of scenarios this costs a few small
GEMMs instead of one per layer, and never materialises per-sample weight matrices.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional

from funnelrec.rank.modules.config import MLPConfig
from funnelrec.rank.modules.mlp import activation_layer, linear
from funnelrec.train.config import Activation


class ScenarioPartition:
    """The rows of a batch grouped by scenario.

    Args:
        scenario: ``[B]`` int64 codes in ``[0, n_scenarios)``.
        n_scenarios: ``S``.

    Example:
        >>> part = ScenarioPartition(torch.tensor([2, 0, 2, 1]), 3)
        >>> part.sizes
        [1, 1, 2]
        >>> x = torch.arange(4.0)[:, None]
        >>> bool(torch.equal(part.join(part.split(x)), x))
        True
    """

    def __init__(self, scenario: Tensor, n_scenarios: int) -> None:
        if scenario.numel() and (int(scenario.min()) < 0 or int(scenario.max()) >= n_scenarios):
            raise IndexError(f"scenario codes must lie in [0, {n_scenarios})")
        self.order = torch.argsort(scenario, stable=True)
        self.sizes: list[int] = torch.bincount(scenario, minlength=n_scenarios).tolist()

    def split(self, x: Tensor) -> list[Tensor]:
        """``[B, D]`` -> ``S`` blocks ``[B_s, D]`` (empty for an absent scenario)."""
        return list(x.index_select(0, self.order).split(self.sizes))

    def join(self, parts: list[Tensor]) -> Tensor:
        """The inverse of :meth:`split`: blocks back to ``[B, D]`` in the batch's row order."""
        grouped = torch.cat(parts)
        return torch.zeros_like(grouped).index_copy(0, self.order, grouped)


class PartitionedNorm(nn.Module):
    """Batch normalisation with statistics per scenario (STAR's partitioned normalisation).

    ``z = (gamma * gamma_s) * (x - mean_s) / sqrt(var_s + eps) + (beta + beta_s)``: in training
    ``mean_s``/``var_s`` are the batch statistics of scenario ``s``'s rows, at inference their
    running averages. A scenario with one row in a batch is normalised with its running
    statistics (one row has no variance). Code 0 (unknown) keeps its own statistics when
    training rows carry it; while none do, its running statistics follow whole batches, so an
    unknown scenario at inference is normalised like the population.

    The batch statistics are constants to the gradient (computed without autograd, in
    float64). Back-propagating through them, as ``nn.BatchNorm1d`` does, subtracts two nearly
    equal sums whose rounding depends on how threads split the rows; Adam turned that into
    different models (two fits with one seed disagreed by 1e-4 in ``p_click`` on 2 threads,
    for a Shared-Bottom with batch_norm as for this layer). Without it they agree to 1e-7.

    Args:
        dim: ``D``.
        n_scenarios: ``S`` (code 0 included).
        momentum: running-average update rate.
        eps: added to the variance.

    Example:
        >>> norm = PartitionedNorm(2, 3)
        >>> part = ScenarioPartition(torch.tensor([1, 1, 2, 2]), 3)
        >>> x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [10.0, 10.0], [30.0, 30.0]])
        >>> out = part.join(norm(part.split(x), x))
        >>> [round(v, 3) for v in out[:, 0].tolist()]
        [-1.0, 1.0, -1.0, 1.0]
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(
        self, dim: int, n_scenarios: int, momentum: float = 0.1, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.scenario_gamma = nn.Parameter(torch.ones(n_scenarios, dim))
        self.scenario_beta = nn.Parameter(torch.zeros(n_scenarios, dim))
        self.register_buffer("running_mean", torch.zeros(n_scenarios, dim))
        self.register_buffer("running_var", torch.ones(n_scenarios, dim))

    @torch.no_grad()
    def _batch_stats(self, s: int, block: Tensor) -> tuple[Tensor, Tensor]:
        """Scenario ``s``'s batch mean and (biased) variance, as constants; the running
        averages (unbiased variance) are updated in place."""
        wide = block.double()
        mean, var = wide.mean(dim=0), wide.var(dim=0, unbiased=False)
        n, m = block.shape[0], self.momentum
        self.running_mean[s].mul_(1 - m).add_(m * mean.to(block.dtype))
        self.running_var[s].mul_(1 - m).add_(m * (var * n / (n - 1)).to(block.dtype))
        return mean.to(block.dtype), var.to(block.dtype)

    def forward(self, parts: list[Tensor], whole: Tensor) -> list[Tensor]:
        """Normalise the blocks of a :class:`ScenarioPartition`.

        Args:
            parts: ``S`` blocks ``[B_s, D]``.
            whole: ``[B, D]`` the batch (the population statistics of code 0 while no
                training row carries code 0).

        Returns:
            ``S`` normalised blocks.
        """
        out = []
        for s, block in enumerate(parts):
            mean, var = self.running_mean[s], self.running_var[s]
            if self.training and block.shape[0] > 1:
                mean, var = self._batch_stats(s, block)
            scale = (self.gamma * self.scenario_gamma[s]) * torch.rsqrt(var + self.eps)
            out.append((block - mean) * scale + (self.beta + self.scenario_beta[s]))
        if self.training and parts[0].shape[0] < 2 and whole.shape[0] > 1:
            self._batch_stats(0, whole)
        return out


class StarLinear(nn.Module):
    """One star-topology layer: scenario ``s`` uses ``W * W_s`` (element-wise) and ``b + b_s``.

    ``W``/``b`` are initialised as a ``nn.Linear`` for the following ``activation``; ``W_s``
    start at 1 and ``b_s`` at 0, so every scenario starts as the shared layer.

    Args:
        in_dim: input width.
        out_dim: output width.
        n_scenarios: ``S``.
        activation: what follows (initialisation only).
    """

    def __init__(self, in_dim: int, out_dim: int, n_scenarios: int, activation: Activation) -> None:
        super().__init__()
        self.shared = linear(in_dim, out_dim, activation)
        self.scenario_weight = nn.Parameter(torch.ones(n_scenarios, out_dim, in_dim))
        self.scenario_bias = nn.Parameter(torch.zeros(n_scenarios, out_dim))

    def forward(self, s: int, x: Tensor) -> Tensor:
        """``x`` ``[B_s, in]`` of scenario ``s`` -> ``[B_s, out]``."""
        weight = self.shared.weight * self.scenario_weight[s]
        return functional.linear(x, weight, self.shared.bias + self.scenario_bias[s])


class StarMLP(nn.Module):
    """The star-topology fully connected network: ``StarLinear -> activation -> [Dropout]``
    per hidden width of ``config`` (no batch norm: STAR normalises with
    :class:`PartitionedNorm`).

    Args:
        in_dim: input width.
        config: widths, activation, dropout.
        n_scenarios: ``S``.

    Example:
        >>> mlp = StarMLP(4, MLPConfig(hidden=(8, 3)), n_scenarios=2)
        >>> part = ScenarioPartition(torch.tensor([0, 1, 1]), 2)
        >>> part.join(mlp(part.split(torch.randn(3, 4)))).shape
        torch.Size([3, 3])
    """

    def __init__(self, in_dim: int, config: MLPConfig, n_scenarios: int) -> None:
        super().__init__()
        if config.batch_norm:
            raise ValueError("a STAR network normalises per scenario: set batch_norm=false")
        self.out_dim = config.out_dim(in_dim)
        widths = (in_dim, *config.hidden)
        self.layers = nn.ModuleList(
            StarLinear(a, b, n_scenarios, config.activation) for a, b in itertools.pairwise(widths)
        )
        self.activation = activation_layer(config.activation)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, parts: list[Tensor]) -> list[Tensor]:
        """``S`` blocks ``[B_s, in_dim]`` -> ``S`` blocks ``[B_s, out_dim]``."""
        for layer in self.layers:
            parts = [
                self.dropout(self.activation(layer(s, block))) for s, block in enumerate(parts)
            ]
        return parts
