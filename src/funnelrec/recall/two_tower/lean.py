"""The user tower's lean forward for the few users of a served request.

A served request embeds one user: through ``nn.Module`` calls that is ~11 module dispatches and
~0.4 ms of Python and PyTorch overhead for ~20 us of arithmetic, and the NumPy preparation of
its inputs (right-aligned history, id and category codes, masked tokens) is another ~15 calls.
The lean path builds the masked history tokens and the MLP input in two compiled passes
straight from the query's history, over views of the tower's weights, and runs only the
position sum, the MLP and the norm as bare PyTorch functions.

It gives the module's vectors bit for bit: the gathers and element-wise products are exact,
and the reductions stay PyTorch's: the sum over history positions (a cascade, not a
sequential sum) and the matrix products (MKL, not NumPy's OpenBLAS, which rounds
differently). Only mean pooling has a lean path; attention pooling keeps the module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from funnelrec.recall.two_tower.model import TowerSizes, UserTower

NORMALIZE_EPS = 1e-12
"""``F.normalize``'s default ``eps``."""


@numba.njit(cache=True)
def _history_tokens(
    ptr, item, category, n_items, length, history_id, history_category, pad_id
):  # pragma: no cover - compiled
    """``(tokens [B, L, E], counts [B])``: each query's last ``L`` history items, right-aligned
    (what ``last_items`` + ``user_inputs`` give the module), as ``(id + category embedding)
    * mask``, and the number of real positions.

    Padding (and negative items) reads the padding id and category 0 with mask 0; items past
    the trained ones read the unknown id, items past ``category`` category 0."""
    b, e = ptr.shape[0] - 1, history_id.shape[1]
    tokens = np.empty((b, length, e), dtype=np.float32)
    counts = np.zeros(b, dtype=np.float32)
    for r in range(b):
        for p in range(length):
            src = ptr[r + 1] - length + p
            it = item[src] if src >= ptr[r] else -1
            tid, cat, mask = pad_id, 0, np.float32(0.0)
            if it >= 0:
                tid = it if it < n_items else n_items
                cat = category[it] if it < category.shape[0] else 0
                mask = np.float32(1.0)
            for j in range(e):
                tokens[r, p, j] = (history_id[tid, j] + history_category[cat, j]) * mask
            counts[r] += mask
    return tokens, counts


@numba.njit(cache=True)
def _tower_input(total, counts, user_attr, attr_table, attr_offset):  # pragma: no cover
    """``[B, E * (1 + A)]`` the MLP input: pooled history (``total / max(count, 1)``), then
    each attribute's embedding row (``attr_table[attr_offset[a] + code]``)."""
    b, e = total.shape
    n_attr = attr_offset.shape[0] - 1
    x = np.empty((b, e * (1 + n_attr)), dtype=np.float32)
    for r in range(b):
        denom = max(counts[r], np.float32(1.0))
        for j in range(e):
            x[r, j] = total[r, j] / denom
        for a in range(n_attr):
            code = user_attr[r, a]
            if code < 0 or attr_offset[a] + code >= attr_offset[a + 1]:
                raise IndexError("user attribute code outside its embedding table")
            row = attr_offset[a] + code
            for j in range(e):
                x[r, e * (1 + a) + j] = attr_table[row, j]
    return x


@dataclass(frozen=True, slots=True)
class LeanUserTower:
    """:class:`UserTower` (mean pooling, on the CPU) as arrays and bare tensor functions.

    The history tables and the MLP weights are views of the tower's parameters, the attribute
    tables a copy: build one from a tower in eval mode after training.

    Attributes:
        history_id: ``[n_items + 2, E]`` history id embeddings (the padding row is zero).
        history_category: ``[n_categories + 1, E]`` category embeddings.
        attr_table: ``[sum of cardinalities, E]`` the attribute embeddings stacked.
        attr_offset: ``[A + 1]`` each attribute's first row in ``attr_table``.
        mlp: the MLP's steps: ``(weight, bias)`` of a linear layer, or None for a ReLU.
        sizes: the tower's vocabulary sizes.
        history_len: ``L``, the positions pooled.
    """

    history_id: NDArray[np.float32]
    history_category: NDArray[np.float32]
    attr_table: NDArray[np.float32]
    attr_offset: NDArray[np.int64]
    mlp: tuple[tuple[Tensor, Tensor | None] | None, ...]
    sizes: TowerSizes
    history_len: int

    @classmethod
    def from_tower(
        cls, tower: UserTower, sizes: TowerSizes, history_len: int
    ) -> LeanUserTower | None:
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
        tables = []
        for emb in tower.attrs:
            if not isinstance(emb, nn.Embedding):
                return None
            tables.append(_array(emb.weight))
        width = tower.history_id.weight.shape[1]
        return cls(
            history_id=_array(tower.history_id.weight),
            history_category=_array(tower.history_category.weight),
            attr_table=np.concatenate([np.zeros((0, width), np.float32), *tables]),
            attr_offset=np.cumsum([0, *(t.shape[0] for t in tables)], dtype=np.int64),
            mlp=tuple(steps),
            sizes=sizes,
            history_len=history_len,
        )

    def __call__(
        self,
        user_attr: NDArray[np.integer],
        history_ptr: NDArray[np.int64],
        history_item: NDArray[np.integer],
        item_category: NDArray[np.int64],
    ) -> NDArray[np.float32]:
        """``[B, D]`` unit user vectors, equal to ``UserTower.forward`` on the module's inputs
        (``user_inputs`` of the last ``history_len`` items).

        Args:
            user_attr: ``[B, A]`` attribute codes.
            history_ptr: ``[B + 1]`` offsets of each query's history in ``history_item``.
            history_item: ``[H]`` item_idx, oldest first per query (negative = skipped).
            item_category: ``[N]`` category code of each item the channel knows.
        """
        tokens, counts = _history_tokens(
            np.asarray(history_ptr, dtype=np.int64),
            history_item,
            item_category,
            self.sizes.n_items,
            self.history_len,
            self.history_id,
            self.history_category,
            self.sizes.pad_id,
        )
        # The module's masked sum over positions, by PyTorch (its cascade order, bit for bit).
        total = torch.from_numpy(tokens).sum(dim=1).numpy()
        attr = np.asarray(user_attr, dtype=np.int64)
        x = torch.from_numpy(_tower_input(total, counts, attr, self.attr_table, self.attr_offset))
        # Detached weights and a NumPy input: no autograd bookkeeping without a grad-mode
        # context (entering one costs more than a small layer).
        for step in self.mlp:
            x = torch.relu(x) if step is None else nn.functional.linear(x, *step)
        # F.normalize's steps without its wrappers: PyTorch's norm, then an exact division.
        norm = torch.linalg.vector_norm(x, 2, -1, True).numpy()
        return x.numpy() / np.maximum(norm, np.float32(NORMALIZE_EPS))


def _array(weight: Tensor) -> NDArray[np.float32]:
    """A NumPy view of a CPU parameter (shares its memory)."""
    return weight.detach().numpy()
