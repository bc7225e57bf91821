"""Building blocks of the long-sequence rankers (SIM, ETA, SDIM, TWIN).

A long-sequence ranker reads thousands of behaviours per sample, so the work is split in two:

* a **search** stage (SIM's General Search Unit) scores every behaviour cheaply and without
  gradient, ``[B, L]`` scores and no wider, and keeps the ``k`` best (:func:`select_top_k`,
  evaluated in slices of the sequence by :func:`chunked`);
* an **exact** stage (the Exact Search Unit, :class:`MultiHeadTargetAttention`) attends over the
  ``[B, k, D]`` selected behaviours only, with gradient.

Behaviour time enters through :class:`GapBuckets` (log-spaced buckets of the time gap) and the
ETA / SDIM hashing through :class:`SimHash` (a fixed random projection kept as a buffer, so
``.to(device)`` moves it and the state dict persists it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from funnelrec.rank.modules.mlp import linear

MAX_LOG_GAP = 20.0
"""Upper end of the gap buckets in ``log1p(seconds)`` (about 15 years); larger gaps share the
last bucket."""


def chunked(score: Callable[[slice], Tensor], length: int, chunk: int) -> Tensor:
    """``score`` over slices of the sequence axis, concatenated, without gradient.

    Bounds the search stage's intermediates to ``[B, chunk, ...]`` whatever ``L`` is.

    Args:
        score: maps a slice of positions to ``[B, len(slice), ...]``.
        length: ``L``.
        chunk: slice length.

    Returns:
        ``[B, L, ...]``.

    Example:
        >>> chunked(lambda s: torch.arange(10)[None, s], 10, 4).tolist()
        [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]
    """
    with torch.no_grad():
        return torch.cat([score(slice(s, s + chunk)) for s in range(0, length, chunk)], dim=1)


def select_top_k(scores: Tensor, keep: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Positions of the ``k`` best-scoring behaviours among those kept.

    Entries outside ``keep`` (padding, other categories) score ``-inf``, so they are picked
    only when fewer than ``k`` are kept, and then come back marked invalid.

    Args:
        scores: ``[B, L]`` finite relevance (higher is better); no gradient is taken.
        keep: ``[B, L]`` bool, the behaviours that may be selected.
        k: how many to select (``min(k, L)`` are returned).

    Returns:
        ``index [B, k]`` int64 positions and ``valid [B, k]`` bool (False where the pick is
        not a kept behaviour).

    Example:
        >>> s = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
        >>> index, valid = select_top_k(s, torch.tensor([[True, False, True, True]]), 2)
        >>> sorted(index[0].tolist()), valid.tolist()
        ([2, 3], [[True, True]])
    """
    filled = scores.detach().masked_fill(~keep, float("-inf"))
    index = torch.topk(filled, min(k, scores.shape[1]), dim=1, sorted=False).indices
    return index, keep.gather(1, index)


def gather_positions(x: Tensor, index: Tensor) -> Tensor:
    """``x[b, index[b, j], ...]``: ``[B, L, ...]`` and ``[B, k]`` -> ``[B, k, ...]``."""
    expand = index.view(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, expand)


class GapBuckets(nn.Module):
    """Learned embedding of the behaviour's time gap, in log-spaced buckets.

    ``seq_gap`` is ``log1p(seconds)``, so equal-width buckets on ``[0, MAX_LOG_GAP]`` are
    log-spaced in seconds.

    Args:
        n_buckets: number of buckets.
        dim: embedding width (``2E`` to add it to a behaviour's ``[item, category]``).
        init_std: normal init std (0 makes every bucket start at zero).

    Example:
        >>> gaps = GapBuckets(32, 8)
        >>> gaps.bucket(torch.tensor([0.0, 3.0, 99.0])).tolist(), gaps(torch.zeros(2, 5)).shape
        ([0, 4, 31], torch.Size([2, 5, 8]))
    """

    boundaries: Tensor

    def __init__(self, n_buckets: int, dim: int, init_std: float = 0.05) -> None:
        super().__init__()
        edges = torch.linspace(0.0, MAX_LOG_GAP, n_buckets + 1)[1:-1]
        self.register_buffer("boundaries", edges, persistent=False)
        self.embedding = nn.Embedding(n_buckets, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)

    def bucket(self, gap: Tensor) -> Tensor:
        """``[...]`` float log1p seconds -> ``[...]`` int64 bucket in ``[0, n_buckets)``."""
        return torch.bucketize(gap.contiguous().to(self.boundaries.dtype), self.boundaries)

    def forward(self, gap: Tensor) -> Tensor:
        """``[...]`` -> ``[..., dim]``."""
        return self.embedding(self.bucket(gap))


class SimHash(nn.Module):
    """Sign bits of a fixed Gaussian projection (SimHash: Charikar 2002).

    Two vectors agree on each bit with probability ``1 - angle / pi``, so the Hamming
    distance of their signatures estimates their angle. The projection is drawn from the
    torch RNG at construction (seed it with the model's config) and kept as a persistent
    buffer, so a saved model hashes the same way after loading. Signatures are bool tensors
    (True = non-negative projection); distances and collisions are bitwise operations.

    Args:
        dim: input width.
        n_bits: signature length.

    Example:
        >>> h = SimHash(4, 16)
        >>> x = torch.randn(3, 4)
        >>> h(x).shape, h(x).dtype, bool(torch.equal(h(x), h(2 * x)))
        (torch.Size([3, 16]), torch.bool, True)
        >>> hamming(h(x), h(-x)).tolist()
        [16, 16, 16]
    """

    projection: Tensor

    def __init__(self, dim: int, n_bits: int) -> None:
        super().__init__()
        self.register_buffer("projection", torch.randn(dim, n_bits))

    def forward(self, x: Tensor) -> Tensor:
        """``[..., dim]`` -> ``[..., n_bits]`` bool signature (no gradient)."""
        return (x.detach() @ self.projection.to(x.dtype)) >= 0


def hamming(a: Tensor, b: Tensor) -> Tensor:
    """Number of differing bits of bool signatures ``[..., m]`` (broadcast) -> ``[...]`` int64."""
    return (a ^ b).sum(-1)


def collisions(a: Tensor, b: Tensor, width: int) -> Tensor:
    """Whether each group of ``width`` consecutive bits agrees entirely (one hash bucket per
    group): bool ``[..., m]`` signatures (broadcast) -> ``[..., m // width]`` bool.

    Example:
        >>> a = torch.tensor([True, False, True, True])
        >>> collisions(a, torch.tensor([True, False, False, True]), 2).tolist()
        [True, False]
    """
    differ = a ^ b
    return ~differ.view(*differ.shape[:-1], -1, width).any(-1)


class MultiHeadTargetAttention(nn.Module):
    """The candidate attends over selected behaviours with scaled dot-product heads.

    ``logit_h(b) = <W_q^h q, W_k^h x_b> / sqrt(d_h) (+ bias_h(b))``, softmax over the valid
    behaviours, and the heads' ``sum_b w_h(b) W_v^h x_b`` go through an output projection.
    The behaviour side (:meth:`project`) does not depend on the candidate, so it can be
    computed once per user and reused (TWIN's cache). A row without a valid behaviour pools
    to exactly zero.

    Args:
        dim: width ``D`` of the candidate and of each behaviour.
        n_heads: number of heads (divides ``D``).

    Example:
        >>> att = MultiHeadTargetAttention(8, 2)
        >>> q, x = torch.randn(2, 8), torch.randn(2, 5, 8)
        >>> valid = torch.tensor([[True] * 5, [False] * 5])
        >>> out = att(q, x, valid)
        >>> out.shape, bool(out[1].abs().sum() == 0)
        (torch.Size([2, 8]), True)
    """

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        if n_heads < 1 or dim % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide the width {dim}")
        self.dim, self.n_heads = dim, n_heads
        self.query = linear(dim, dim, "linear")
        self.key_value = linear(dim, 2 * dim, "linear")
        self.out = linear(dim, dim, "linear")

    def project(self, behaviours: Tensor) -> tuple[Tensor, Tensor]:
        """Behaviour-side keys and values: ``[B, L, D]`` -> two ``[B, L, D]``."""
        keys, values = self.key_value(behaviours).chunk(2, dim=-1)
        return keys, values

    def query_vector(self, query: Tensor) -> Tensor:
        """``[B, D]`` candidate -> ``[B, D]`` projected query, pre-scaled by
        ``1 / sqrt(d_h)``."""
        return self.query(query) / math.sqrt(self.dim // self.n_heads)

    def folded_query(self, query: Tensor) -> tuple[Tensor, Tensor]:
        """The sum over heads of the logits, moved onto the raw behaviours.

        ``sum_h logit_h(b) = <q', W_k x_b + b_k> = <W_k^T q', x_b> + <q', b_k>`` for the
        projected query ``q'`` (:meth:`query_vector`), so behaviours can be scored without
        projecting them (one ``D``-wide dot product each).

        Args:
            query: ``[B, D]`` raw candidate.

        Returns:
            ``weight [B, D]`` and ``offset [B]`` with ``sum_h logit_h(b) = <weight, x_b> +
            offset``.
        """
        q = self.query_vector(query)
        w_k, b_k = self.key_value.weight[: self.dim], self.key_value.bias[: self.dim]
        return q @ w_k, q @ b_k

    def logits(self, query: Tensor, keys: Tensor) -> Tensor:
        """Per-head logits ``[B, H, L]`` of ``query`` ``[B, D]`` (from :meth:`query_vector`)
        against ``keys`` ``[B, L, D]``."""
        b, length, _ = keys.shape
        q = query.view(b, self.n_heads, 1, -1)
        k = keys.view(b, length, self.n_heads, -1).transpose(1, 2)  # [B, H, L, dh]
        return (q * k).sum(-1)

    def attend(
        self, query: Tensor, keys: Tensor, values: Tensor, valid: Tensor, bias: Tensor | None
    ) -> Tensor:
        """Pool projected behaviours.

        Args:
            query: ``[B, D]`` raw candidate.
            keys: ``[B, K, D]`` from :meth:`project`.
            values: ``[B, K, D]`` from :meth:`project`.
            valid: ``[B, K]`` bool, True at real behaviours.
            bias: optional ``[B, H, K]`` added to the logits.

        Returns:
            ``[B, D]``.
        """
        b, length, _ = keys.shape
        logits = self.logits(self.query_vector(query), keys)
        if bias is not None:
            logits = logits + bias
        mask = valid.unsqueeze(1)
        # A finite fill keeps all-invalid rows NaN-free; the mask then zeroes them.
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits, dim=-1) * mask.to(logits.dtype)  # [B, H, K]
        v = values.view(b, length, self.n_heads, -1).transpose(1, 2)  # [B, H, K, dh]
        pooled = torch.matmul(weights.unsqueeze(2), v).squeeze(2)  # [B, H, dh]
        return self.out(pooled.reshape(b, self.dim)) * valid.any(1, keepdim=True)

    def forward(
        self, query: Tensor, behaviours: Tensor, valid: Tensor, bias: Tensor | None = None
    ) -> Tensor:
        """:meth:`attend` over :meth:`project` of ``behaviours`` ``[B, K, D]`` -> ``[B, D]``."""
        return self.attend(query, *self.project(behaviours), valid, bias)


__all__ = [
    "MAX_LOG_GAP",
    "GapBuckets",
    "MultiHeadTargetAttention",
    "SimHash",
    "chunked",
    "collisions",
    "gather_positions",
    "hamming",
    "select_top_k",
]
