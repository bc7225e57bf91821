"""DIN target attention: the candidate item attends over the user's behaviour sequence.

The activation unit of DIN (Zhou et al. 2018) scores each behaviour ``k_j`` against the
candidate (query) ``q`` with an MLP over ``[q, k_j, q - k_j, q * k_j]`` and pools
``sum_j w_j k_j``. Without normalisation (the paper's choice) the pooled vector keeps the
intensity of the user's interest; ``softmax`` normalises the weights over the real positions.

The first layer is evaluated in a factorised but exactly equivalent form. With its weight
split into blocks ``[W_q | W_k | W_d | W_p]`` (each ``[H, D]``),

    W [q, k, q - k, q * k] + b = ((W_q + W_d) q + b) + (W_k - W_d + W_p diag(q)) k,

so the query part is one ``[B, H]`` product per sample and the key part one batched product
``[L, D] x [D, H]`` per sample with the per-sample matrix ``M_b = (W_k - W_d)^T + q_b W_p^T``;
the ``[B, L, 4D]`` concatenation is never built and the first layer costs ``L D H`` instead
of ``4 L D H`` multiply-adds per sample.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from funnelrec.rank.modules.config import MLPConfig
from funnelrec.rank.modules.mlp import MLP, activation_layer, linear
from funnelrec.train.init import make_activation


class LastDimBatchNorm(nn.Module):
    """``BatchNorm1d`` over the last axis of a ``[..., C]`` tensor (statistics over all
    leading axes)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C]`` -> ``[..., C]``."""
        return self.norm(x.reshape(-1, x.shape[-1])).view(x.shape)


class TargetAttention(nn.Module):
    """Masked DIN attention pooling.

    Args:
        dim: width ``D`` of the query and of each key.
        config: hidden layers of the activation unit (at least one), e.g. ``(64, 32)``.
        normalise: ``"none"`` (DIN: raw scores, padding weighted 0) or ``"softmax"`` over the
            real positions (an all-padding row pools to the zero vector).

    Example:
        >>> att = TargetAttention(4, MLPConfig(hidden=(8,)))
        >>> q, k = torch.randn(2, 4), torch.randn(2, 3, 4)
        >>> mask = torch.tensor([[True, True, False], [False, False, False]])
        >>> pooled = att(q, k, mask)
        >>> pooled.shape, bool(pooled[1].abs().sum() == 0)
        (torch.Size([2, 4]), True)
    """

    def __init__(
        self, dim: int, config: MLPConfig, normalise: Literal["none", "softmax"] = "none"
    ) -> None:
        super().__init__()
        if not config.hidden:
            raise ValueError("the activation unit needs at least one hidden layer")
        self.dim = dim
        self.normalise = normalise
        first = config.hidden[0]
        self.first = linear(4 * dim, first, config.activation, bias=not config.batch_norm)
        # `post` runs on [B, L, H]. In-place activation only straight on the batched product's
        # output: in place on a view (the reshaped batch norm output) would cost autograd a
        # full copy of the gradient.
        post: list[nn.Module] = []
        if config.batch_norm:
            post += [LastDimBatchNorm(first), make_activation(config.activation)]
        else:
            post.append(activation_layer(config.activation))
        if config.dropout > 0:
            post.append(nn.Dropout(config.dropout))
        self.post = nn.Sequential(*post)
        self.rest = MLP(first, config.model_copy(update={"hidden": config.hidden[1:]}))
        self.out = linear(self.rest.out_dim, 1, "linear")

    def scores(self, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
        """Attention weights ``[B, L]`` (0 at padding).

        Args:
            query: ``[B, D]``.
            keys: ``[B, L, D]``.
            mask: ``[B, L]`` bool, True at real positions.
        """
        b, length, d = keys.shape
        w_q, w_k, w_d, w_p = self.first.weight.split(d, dim=1)  # each [H, D]
        q_part = nn.functional.linear(query, w_q + w_d, self.first.bias)  # [B, H]
        per_sample = (w_k - w_d).t().unsqueeze(0) + query.unsqueeze(2) * w_p.t()  # [B, D, H]
        hidden = self.post(torch.baddbmm(q_part.unsqueeze(1), keys, per_sample))  # [B, L, H]
        logits = self.out(self.rest(hidden.view(b * length, -1))).view(b, length)
        if self.normalise == "softmax":
            # A finite fill keeps all-padding rows NaN-free; the mask then zeroes them.
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
            logits = torch.softmax(logits, dim=1)
        return logits * mask.to(logits.dtype)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor) -> Tensor:
        """Pool ``keys`` ``[B, L, D]`` by their relevance to ``query`` ``[B, D]``.

        Args:
            query: ``[B, D]`` the candidate.
            keys: ``[B, L, D]`` the behaviours.
            mask: ``[B, L]`` bool, True at real (non-padding) positions.

        Returns:
            ``[B, D]``.
        """
        weights = self.scores(query, keys, mask)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
