"""The user tower's lean forward for the few users of a served request.

A served request embeds one user: through ``nn.Module`` calls that is ~11 module dispatches and
~0.4 ms of Python and PyTorch overhead, for ~20 us of arithmetic. The lean path gathers and
pools the history embeddings in NumPy over views of the tower's weights and runs only the MLP
and the normalisation as bare PyTorch functions.

It gives the module's vectors bit for bit: the gathers and element-wise products are exact,
and the reductions stay PyTorch's: the sum over history positions (a cascade, not NumPy's
order) and the matrix products (MKL, not NumPy's OpenBLAS, which rounds differently). Only
mean pooling has a lean path; attention pooling keeps the module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from funnelrec.recall.two_tower.model import UserTower

NORMALIZE_EPS = 1e-12
"""``F.normalize``'s default ``eps``."""


@dataclass(frozen=True, slots=True)
class LeanUserTower:
    """:class:`UserTower` (mean pooling, on the CPU) as arrays and bare tensor functions.

    The arrays are views of the tower's parameters (no copies): build one after training,
    from a tower in eval mode.

    Attributes:
        history_id: ``[n_items + 2, E]`` history id embeddings (the padding row is zero).
        history_category: ``[n_categories + 1, E]`` category embeddings.
        attrs: ``[card_a, E]`` per user attribute.
        mlp: the MLP's steps: ``(weight, bias)`` of a linear layer, or None for a ReLU.
        pad_id: the history padding id.
    """

    history_id: NDArray[np.float32]
    history_category: NDArray[np.float32]
    attrs: tuple[NDArray[np.float32], ...]
    mlp: tuple[tuple[Tensor, Tensor | None] | None, ...]
    pad_id: int

    @classmethod
    def from_tower(cls, tower: UserTower) -> LeanUserTower | None:
        """The lean form of ``tower``, or None when it has none (attention pooling, weights
        off the CPU, a layer other than Linear / ReLU)."""
        if tower.pooling.mode != "mean" or tower.history_id.weight.device.type != "cpu":
            return None
        steps: list[tuple[Tensor, Tensor | None] | None] = []
        for layer in tower.mlp:
            if isinstance(layer, nn.Linear):
                bias = None if layer.bias is None else layer.bias.detach()
                steps.append((layer.weight.detach(), bias))
            elif isinstance(layer, nn.ReLU):
                steps.append(None)
            else:
                return None
        return cls(
            history_id=_array(tower.history_id.weight),
            history_category=_array(tower.history_category.weight),
            attrs=tuple(_array(emb.weight) for emb in tower.attrs),
            mlp=tuple(steps),
            pad_id=int(tower.history_id.padding_idx or 0),
        )

    def __call__(
        self,
        user_attr: NDArray[np.integer],
        hist_item: NDArray[np.integer],
        hist_category: NDArray[np.integer],
    ) -> NDArray[np.float32]:
        """``[B, D]`` unit user vectors, equal to ``UserTower.forward`` on the same inputs.

        Args:
            user_attr: ``[B, A]`` attribute codes.
            hist_item: ``[B, L]`` history ids (``pad_id`` padding, right-aligned).
            hist_category: ``[B, L]`` their category codes.
        """
        parts = [self._pooled_history(hist_item, hist_category)]
        parts += [table[user_attr[:, a]] for a, table in enumerate(self.attrs)]
        # Detached weights and a NumPy input: no autograd bookkeeping without a grad-mode
        # context (entering one costs more than a small layer).
        x = torch.from_numpy(np.concatenate(parts, axis=1))
        for step in self.mlp:
            x = torch.relu(x) if step is None else nn.functional.linear(x, *step)
        # F.normalize's steps without its wrappers: PyTorch's norm, then an exact division.
        norm = torch.linalg.vector_norm(x, 2, -1, True).numpy()
        return x.numpy() / np.maximum(norm, np.float32(NORMALIZE_EPS))

    def _pooled_history(
        self, hist_item: NDArray[np.integer], hist_category: NDArray[np.integer]
    ) -> NDArray[np.float32]:
        """``[B, E]`` mean of the real positions' ``id + category`` embeddings (zero if none).

        The sum over positions is PyTorch's: it adds blocks of 16 positions in a cascade,
        not in NumPy's order, so the last bit would differ."""
        weights = (hist_item != self.pad_id).astype(np.float32)
        tokens = self.history_id[hist_item]
        tokens += self.history_category[hist_category]
        tokens *= weights[:, :, None]
        total = torch.from_numpy(tokens).sum(dim=1).numpy()
        return total / np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1.0))


def _array(weight: Tensor) -> NDArray[np.float32]:
    """A NumPy view of a CPU parameter (shares its memory)."""
    return weight.detach().numpy()
