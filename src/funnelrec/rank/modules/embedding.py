"""One fused embedding table for all sparse fields.

Every field ``f`` owns the rows ``[offsets[f], offsets[f] + cardinalities[f])`` of a single
``nn.Embedding``; a batch ``[B, F]`` of per-field codes is shifted by the offsets and looked up
in one call. Compared with ``F`` separate ``nn.Embedding`` modules this is one gather (and one
scatter-add in the backward pass) instead of ``F``, one parameter for the optimizer, and the
output is already the ``[B, F, E]`` block the interaction layers want (no ``torch.cat``).

Sequences that live in the id space of a field (a user's clicked items are codes of the item
field) are looked up in the same rows with :meth:`FieldEmbedding.lookup`, so a behaviour item
and the candidate item share their embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


class _GatherRows(torch.autograd.Function):
    """``weight[index]`` with a dense ``index_put_`` accumulation as its backward (CPU)."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.weight_shape = weight.shape
        return nn.functional.embedding(index, weight)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (index,) = ctx.saved_tensors
        rows, width = ctx.weight_shape
        flat = grad.reshape(-1, width)
        out = grad.new_zeros(rows, width)
        return out.index_put_((index.reshape(-1),), flat, accumulate=True), None


def gather_rows(weight: Tensor, index: Tensor) -> Tensor:
    """Rows ``weight[index]``: ``[V, E]``, ``[...]`` int64 -> ``[..., E]`` (dense gradient).

    The backward differs by device, the gradient does not. On CPU an ``index_put_``
    accumulation (:class:`_GatherRows`) beats ``nn.Embedding``'s backward. On CUDA it is the
    other way round by far: ``index_put_(accumulate=True)`` over duplicate-heavy indices (a
    batch of behaviour sequences) took 95% of a DIN train step at batch 16,384 on an H200
    (456 of 481 ms), while ``nn.Embedding``'s sort-and-segment-sum backward took 48 ms for all
    28 tables of the plain-PyTorch reference; so CUDA tensors take the native path.

    Example:
        >>> w = torch.arange(6.0).view(3, 2).requires_grad_()
        >>> gather_rows(w, torch.tensor([2, 2, 0])).sum().backward()
        >>> w.grad
        tensor([[1., 1.],
                [0., 0.],
                [2., 2.]])
    """
    if weight.device.type == "cuda":
        return nn.functional.embedding(index, weight)
    return _GatherRows.apply(weight, index)


class FieldEmbedding(nn.Module):
    """Embeds ``F`` categorical fields with one table of ``sum(cardinalities)`` rows.

    Args:
        cardinalities: codes per field (code 0 is each field's "unknown" row, as in
            :class:`~funnelrec.features.spec.FeatureSpec`).
        dim: embedding width ``E``.
        init_std: standard deviation of the normal initialisation.

    Example:
        >>> emb = FieldEmbedding((3, 5), dim=4)
        >>> emb(torch.tensor([[2, 4], [0, 1]])).shape
        torch.Size([2, 2, 4])
        >>> bool(torch.equal(emb.lookup(1, torch.tensor([4])), emb.table.weight[3 + 4][None]))
        True
    """

    offsets: Tensor
    limits: Tensor

    def __init__(self, cardinalities: Sequence[int], dim: int, init_std: float = 0.05) -> None:
        super().__init__()
        cards = [int(c) for c in cardinalities]
        if not cards or min(cards) < 1:
            raise ValueError(f"need at least one field with cardinality >= 1, got {cards}")
        self.cardinalities = tuple(cards)
        self.dim = dim
        starts = torch.tensor([0, *cards[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", starts, persistent=False)
        self.register_buffer("limits", torch.tensor(cards, dtype=torch.long), persistent=False)
        self.table = nn.Embedding(sum(cards), dim)
        nn.init.normal_(self.table.weight, std=init_std)

    @property
    def n_fields(self) -> int:
        return len(self.cardinalities)

    def forward(self, codes: Tensor) -> Tensor:
        """Embed all fields at once.

        Args:
            codes: ``[B, F]`` int64, field ``f`` in ``[0, cardinalities[f])``.

        Returns:
            ``[B, F, E]``.

        Raises:
            IndexError: (on CPU) a code is negative or not below its field's cardinality,
                which would otherwise silently read another field's rows.
        """
        if codes.device.type == "cpu":
            self._check(codes, self.limits)
        return gather_rows(self.table.weight, codes + self.offsets)

    def lookup(self, field: int, codes: Tensor) -> Tensor:
        """Embed codes of one field (any shape ``[...]``) -> ``[..., E]``, in the same rows
        :meth:`forward` uses for that field."""
        if codes.device.type == "cpu":
            self._check(codes, self.limits[field])
        return gather_rows(self.table.weight, codes + self.offsets[field])

    def lookup_fields(self, codes: Tensor, fields: Sequence[int]) -> Tensor:
        """Embed ``K`` codes of the given fields at once (one gather).

        Args:
            codes: ``[..., K]``, entry ``k`` a code of field ``fields[k]``.
            fields: ``K`` field indices.

        Returns:
            ``[..., K, E]``.
        """
        if codes.device.type == "cpu":
            self._check(codes, self.limits[list(fields)])
        return gather_rows(self.table.weight, codes + self.offsets[list(fields)])

    def forward_with(
        self, codes: Tensor, extra: Tensor, fields: Sequence[int]
    ) -> tuple[Tensor, Tensor]:
        """:meth:`forward` and :meth:`lookup_fields` in ONE gather (and one gradient
        accumulation into the table instead of two full-size ones).

        Args:
            codes: ``[B, F]`` as for :meth:`forward`.
            extra: ``[..., K]``, entry ``k`` a code of field ``fields[k]``.
            fields: ``K`` field indices.

        Returns:
            ``[B, F, E]`` and ``[..., K, E]``.
        """
        extra_limits = self.limits[list(fields)]
        if codes.device.type == "cpu":
            self._check(codes, self.limits)
            self._check(extra, extra_limits)
        index = torch.cat(
            [(codes + self.offsets).reshape(-1), (extra + self.offsets[list(fields)]).reshape(-1)]
        )
        # split (not slicing): its backward is one concatenation, not zero-fill + copy per part
        head, tail = gather_rows(self.table.weight, index).split([codes.numel(), extra.numel()])
        return head.view(*codes.shape, self.dim), tail.view(*extra.shape, self.dim)

    def _check(self, codes: Tensor, limits: Tensor) -> None:
        bad = (codes < 0) | (codes >= limits)
        if bool(bad.any()):
            where = torch.nonzero(bad)[0].tolist()
            raise IndexError(
                f"code {int(codes[tuple(where)])} at {where} is outside its field's range "
                f"[0, cardinality) (cardinalities {self.cardinalities})"
            )
