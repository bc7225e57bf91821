"""What every ranking model shares: config fields, the flat input layer, seeding, outputs.

Every model is built as ``Model(config, spec)`` from its frozen config and a
:class:`~funnelrec.features.spec.FeatureSpec`, reads a batch under the keys of
:mod:`funnelrec.features.spec` and returns ``{task: logit [B]}`` for every task in ``spec.tasks``
(logits, never probabilities; the loss lives in :mod:`funnelrec.rank.task`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.modules.embedding import FieldEmbedding
from funnelrec.train.seeding import forked_seed

Batch = Mapping[str, Tensor]


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded by ``seed`` and restore the caller's state
    afterwards (no effect on the global RNG seen outside; ``None`` = do nothing)."""
    if seed is None:
        yield
        return
    with forked_seed(seed, torch.device("cpu")):
        yield


def sequence_mask(seq_item: Tensor) -> Tensor:
    """``[B, L]`` bool, True at real behaviours (``seq_item`` 0 is padding)."""
    return seq_item != 0


class FlatInput(nn.Module):
    """Sparse fields (+ optional mean-pooled behaviours) + dense features as one vector.

    Args:
        spec: the input shapes.
        embed_dim: ``E``.
        init_std: embedding init std.
        sequence_pooling: ``"none"`` or ``"mean"``.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click",))
        >>> layer = FlatInput(spec, 8)
        >>> batch = {"sparse": torch.ones(6, 3, dtype=torch.long), "dense": torch.zeros(6, 2)}
        >>> fields, flat = layer(batch)
        >>> fields.shape, flat.shape, layer.out_dim
        (torch.Size([6, 3, 8]), torch.Size([6, 26]), 26)
    """

    def __init__(
        self,
        spec: FeatureSpec,
        embed_dim: int,
        init_std: float = 0.05,
        sequence_pooling: Literal["none", "mean"] = "none",
    ) -> None:
        super().__init__()
        self.spec = spec
        self.embedding = FieldEmbedding(spec.sparse_cardinalities, embed_dim, init_std)
        self.pool = sequence_pooling == "mean" and spec.seq_len > 0
        pooled = 2 * embed_dim if self.pool else 0
        self.out_dim = spec.n_sparse * embed_dim + pooled + spec.n_dense

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Embed a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]``; with mean pooling also
                ``seq_item`` / ``seq_category`` ``[B, L]``.

        Returns:
            ``fields [B, F, E]`` and ``flat [B, F * E (+ 2E) + D]``.
        """
        if self.pool:
            spec = self.spec
            codes = torch.stack([batch["seq_item"], batch["seq_category"]], dim=-1)  # [B, L, 2]
            fields, keys = self.embedding.forward_with(
                batch["sparse"], codes, (spec.item_field, spec.category_field)
            )
            parts = [fields.flatten(1), mean_pool(keys.flatten(-2), batch["seq_item"])]
        else:
            fields = self.embedding(batch["sparse"])
            parts = [fields.flatten(1)]
        if self.spec.n_dense:
            parts.append(batch["dense"].to(fields.dtype))
        flat = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return fields, flat


def mean_pool(keys: Tensor, seq_item: Tensor) -> Tensor:
    """Mean of the real behaviours ``[B, L, D]`` -> ``[B, D]`` (zero for an empty history).

    Args:
        keys: ``[B, L, D]`` behaviour embeddings.
        seq_item: ``[B, L]`` (0 = padding).
    """
    mask = sequence_mask(seq_item).to(keys.dtype)
    total = torch.bmm(mask.unsqueeze(1), keys).squeeze(1)
    return total / mask.sum(dim=1, keepdim=True).clamp_min(1.0)


class RankModel(nn.Module):
    """Base class: keeps the spec and the task order, turns ``[B, T]`` logits into a dict."""

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        if not spec.tasks:
            raise ValueError("the FeatureSpec declares no tasks")
        self.spec = spec
        self.tasks: tuple[str, ...] = tuple(spec.tasks)

    def as_dict(self, logits: Tensor) -> dict[str, Tensor]:
        """``[B, T]`` (columns in ``spec.tasks`` order) -> ``{task: [B]}``."""
        return {task: logits[:, i] for i, task in enumerate(self.tasks)}


class GatedRankModel(RankModel):
    """A multi-task model whose tasks read mixtures of experts through softmax gates.

    Subclasses set :attr:`expert_names` and implement :meth:`gate_weights`.
    """

    expert_names: tuple[str, ...] = ()

    def gate_weights(self, batch: Batch) -> Tensor:
        """Per-task gate weights ``[T, B, N]`` (rows sum to 1 over the N experts)."""
        raise NotImplementedError

    def gate_utilisation(self, batch: Batch) -> dict[str, np.ndarray]:
        """Mean gate weight per expert over ``batch``, per task.

        Runs without gradients in the current mode (call ``model.eval()`` first for numbers
        free of dropout).

        Returns:
            ``{task: [N]}`` float64 arrays summing to 1, indexed like :attr:`expert_names`.
        """
        with torch.no_grad():
            weights = self.gate_weights(batch).double().mean(dim=1).cpu().numpy()
        return {task: weights[i] for i, task in enumerate(self.tasks)}

    def gate_utilisation_over(self, batches: Iterable[Batch]) -> dict[str, np.ndarray]:
        """:meth:`gate_utilisation` over a dataset (batches weighted by their size)."""
        total: np.ndarray | None = None
        count = 0
        for batch in batches:
            with torch.no_grad():
                weights = self.gate_weights(batch).double()
            sums = weights.sum(dim=1).cpu().numpy()  # [T, N]
            total = sums if total is None else total + sums
            count += int(weights.shape[1])
        if total is None or count == 0:
            raise ValueError("no batches")
        return {task: total[i] / count for i, task in enumerate(self.tasks)}
