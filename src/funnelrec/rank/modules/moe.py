"""Banks of parallel MLPs (experts, gates, per-task towers) evaluated without Python loops.

An :class:`ExpertBank` holds ``N`` MLPs of identical shape as stacked weights
``[N, in, out]`` per layer; every layer is one batched GEMM (``torch.baddbmm``), whether the
input is shared by all members (MMoE experts and gates, Shared-Bottom and ESMM towers: the
input is broadcast with a stride-0 ``expand``, no copy, and the backward runs as two large
GEMMs, see :class:`_SharedInputBank`) or one per member (PLE experts above the first level,
per-task towers after a mixture). Activations stay contiguous in ``[N, B, H]``, so no layer
pays for a transpose copy. Mixtures of experts are one batched product (:func:`mix`).

Measured on a 2-core CPU (``benchmarks/ranking_throughput.py``): an MMoE with 8 experts
``[256, 128]`` trains ~1.1x and infers ~1.2x as fast as the same network written with a Python
loop over ``nn.Sequential`` experts; the naive batched variants (a transposed ``[B, N * H]``
first layer, or autograd's own backward of the expand) were 5-10% *slower* than that loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from funnelrec.rank.modules.config import MLPConfig
from funnelrec.rank.modules.mlp import activation_layer, linear
from funnelrec.train.config import Activation


class _SharedInputBank(torch.autograd.Function):
    """``out[n] = x @ weight[n] + bias[n]`` for one input ``x`` shared by ``N`` members.

    Forward: one ``baddbmm`` over a stride-0 expand of ``x`` (output contiguous in
    ``[N, B, out]``). Backward: the member gradients are laid side by side once
    (``[B, N * out]``) so that ``grad_x`` and ``grad_weight`` are each ONE large GEMM with
    inner dimension ``N * out`` / ``B``, instead of ``N`` small ones plus a reduction over the
    members (autograd's backward of the expand), which is ~1.5x slower on CPU.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        n = weight.shape[0]
        return torch.baddbmm(bias.unsqueeze(1), x.unsqueeze(0).expand(n, -1, -1), weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        n, in_dim, out_dim = weight.shape
        side_by_side = grad.transpose(0, 1).reshape(x.shape[0], n * out_dim)  # [B, N * out]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            stacked = weight.transpose(1, 2).reshape(n * out_dim, in_dim)  # [N * out, in]
            grad_x = side_by_side @ stacked
        if ctx.needs_input_grad[1]:
            flat = x.t() @ side_by_side  # [in, N * out]
            grad_weight = flat.view(in_dim, n, out_dim).transpose(0, 1).contiguous()
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=1)
        return grad_x, grad_weight, grad_bias


class _BankLayer(nn.Module):
    """``N`` parallel ``Linear`` layers: ``weight [N, in, out]``, ``bias [N, out]``."""

    def __init__(self, n: int, in_dim: int, out_dim: int, activation: Activation) -> None:
        super().__init__()
        # Initialise each member exactly as a stand-alone nn.Linear followed by `activation`.
        layers = [linear(in_dim, out_dim, activation) for _ in range(n)]
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[B, in]`` (shared) or ``[N, B, in]`` (per member) -> ``[N, B, out]``."""
        if x.dim() == 2:
            return _SharedInputBank.apply(x, self.weight, self.bias)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class _BankNorm(nn.Module):
    """BatchNorm1d over each member's features (``N * out`` channels)."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n * dim)

    def forward(self, x: Tensor) -> Tensor:
        n, b, d = x.shape
        y = self.norm(x.transpose(0, 1).reshape(b, n * d))
        # A fresh contiguous tensor (not a view), so the in-place activation after it is cheap.
        return y.view(b, n, d).transpose(0, 1).contiguous()


class ExpertBank(nn.Module):
    """``N`` MLPs of the same shape, run together.

    Hidden layers follow ``config`` (widths, activation, dropout, batch norm); with ``out_dim``
    a final ``Linear`` without activation is appended (a tower ending in a logit, a gate).

    Args:
        in_dim: input width.
        n_members: ``N``.
        config: hidden layers of every member.
        out_dim: width of an extra output layer without activation (None = none).

    Example:
        >>> bank = ExpertBank(10, 4, MLPConfig(hidden=(8, 6)))
        >>> bank(torch.zeros(3, 10)).shape  # one input shared by the 4 experts
        torch.Size([4, 3, 6])
        >>> bank(torch.zeros(4, 3, 10)).shape  # one input per expert
        torch.Size([4, 3, 6])
    """

    def __init__(
        self, in_dim: int, n_members: int, config: MLPConfig, out_dim: int | None = None
    ) -> None:
        super().__init__()
        self.n_members = n_members
        layers: list[nn.Module] = []
        width = in_dim
        for size in config.hidden:
            layers.append(_BankLayer(n_members, width, size, config.activation))
            if config.batch_norm:
                layers.append(_BankNorm(n_members, size))
            layers.append(activation_layer(config.activation))
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = size
        if out_dim is not None:
            layers.append(_BankLayer(n_members, width, out_dim, "linear"))
            width = out_dim
        if not layers:
            raise ValueError("an ExpertBank needs hidden layers or an out_dim")
        self.out_dim = width
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Run all members.

        Args:
            x: ``[B, in]`` shared by all members, or ``[N, B, in]`` one input per member.

        Returns:
            ``[N, B, out]``.
        """
        if x.dim() == 3 and x.shape[0] != self.n_members:
            raise ValueError(f"per-member input has {x.shape[0]} members, bank {self.n_members}")
        return self.layers(x)


def masked_softmax(logits: Tensor, allowed: Tensor | None) -> Tensor:
    """Softmax over the last axis restricted to ``allowed`` entries (others get weight 0).

    Args:
        logits: ``[G, B, N]`` gate logits.
        allowed: ``[G, N]`` bool, or None for all.

    Returns:
        ``[G, B, N]`` rows summing to 1 over the allowed entries.
    """
    if allowed is not None:
        logits = logits.masked_fill(~allowed.unsqueeze(1), float("-inf"))
    return torch.softmax(logits, dim=-1)


def mix(weights: Tensor, experts: Tensor) -> Tensor:
    """Gate-weighted sums of expert outputs.

    Args:
        weights: ``[G, B, N]`` (one gate per output, e.g. per task).
        experts: ``[N, B, H]``.

    Returns:
        ``[G, B, H]`` with ``out[g, b] = sum_n weights[g, b, n] * experts[n, b]``.

    Example:
        >>> w = torch.tensor([[[0.25, 0.75]]])
        >>> e = torch.tensor([[[4.0]], [[8.0]]])
        >>> mix(w, e)
        tensor([[[7.]]])
    """
    out = torch.bmm(weights.transpose(0, 1), experts.transpose(0, 1))  # [B, G, H]
    return out.transpose(0, 1)
