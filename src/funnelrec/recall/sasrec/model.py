"""The SASRec network: item + position embeddings, pre-LN causal transformer blocks.

Index conventions (house rule 2): item ids ``0..n_items-1`` are the trained items and row
``n_items`` (:func:`pad_id`) is padding (``padding_idx``: always zero, never attended to by a
real position). Sequences are right-aligned: position ``L - 1`` holds the most recent item,
so the user vector is always the output at ``L - 1``.

One embedding table serves as input and output (SASRec's shared item embedding): the logit
of item ``j`` at a position is the inner product of the position's output with row ``j``,
which is exactly what the vector index searches at serving time (metric ``ip``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from funnelrec.recall.sasrec.config import SASRecConfig


def pad_id(n_items: int) -> int:
    """The padding row of a model over ``n_items`` items (one past the last item)."""
    return n_items


def attention_mask(seq: Tensor, pad: int) -> Tensor:
    """``[B, 1, L, L]`` bool, True where query position ``t`` may attend to key ``s``.

    Causal (``s <= t``) and only real keys, except that every position may attend to itself:
    a padded position then attends to itself alone instead of to nothing (which gives NaN),
    and no real position ever reads a padded one.

    Example:
        >>> attention_mask(torch.tensor([[9, 4, 5]]), pad=9)[0, 0].int().tolist()
        [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    length = seq.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
    real = (seq != pad)[:, None, None, :]  # [B, 1, 1, L] over keys
    eye = torch.eye(length, dtype=torch.bool, device=seq.device)
    return causal & (real | eye)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention under a given mask, ``[B, L, D] -> [B, L, D]``."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Attend ``x`` ``[B, L, D]`` under ``mask`` ``[B, 1, L, L]`` (True = may attend)."""
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, d // self.heads).unbind(dim=2)
        out = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(out.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(LN(x))`` then ``x + ffn(LN(x))``.

    Pre-LN (normalise before each sub-layer, as SASRec's own implementation) trains stably
    without learning-rate warm-up, which a loop shared with other models does not have.
    """

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        d = config.dim
        self.norm_attn = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, config.heads, config.dropout)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, config.ffn_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.ffn_dim, d),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``[B, L, D] -> [B, L, D]`` under ``mask`` ``[B, 1, L, L]``."""
        x = x + self.drop(self.attn(self.norm_attn(x), mask))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


class SASRecModel(nn.Module):
    """Item sequence ``[B, L]`` -> hidden states ``[B, L, D]`` -> next-item logits.

    Example:
        >>> model = SASRecModel(SASRecConfig(dim=8, max_len=4), n_items=5).eval()
        >>> model.user(torch.tensor([[5, 5, 1, 2]])).shape
        torch.Size([1, 8])
    """

    def __init__(self, config: SASRecConfig, n_items: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.max_len = config.max_len
        self.item = nn.Embedding(n_items + 1, config.dim, padding_idx=pad_id(n_items))
        self.position = nn.Embedding(config.max_len, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.dim)

    def encode(self, seq: Tensor) -> Tensor:
        """Hidden state of every position.

        Args:
            seq: ``[B, L]`` right-aligned item ids (``L <= max_len``), ``pad_id`` padding.

        Returns:
            ``[B, L, D]``; position ``t`` depends on ``seq[:, :t + 1]`` only.
        """
        length = seq.shape[1]
        positions = torch.arange(self.max_len - length, self.max_len, device=seq.device)
        x = self.drop(self.item(seq) + self.position(positions).unsqueeze(0))
        mask = attention_mask(seq, pad_id(self.n_items))
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def user(self, seq: Tensor) -> Tensor:
        """``[B, D]`` user vectors: the output at the last (most recent) position."""
        return self.encode(seq)[:, -1]

    def item_vectors(self) -> Tensor:
        """``[n_items, D]`` the output (= input) embeddings of the trained items."""
        return self.item.weight[: self.n_items]

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Training logits of a batch.

        Args:
            batch: ``seq [B, L]``; ``positions [P]`` flat indices into ``B * L`` of the
                positions with a target; ``cand_item [C]`` the batch's candidates (its
                distinct targets, then the shared uniform negatives).

        Returns:
            ``candidates [P, C]``: inner products of each target position's output with
            each candidate (corrections and masking are the task's job,
            :mod:`funnelrec.recall.sasrec.task`).
        """
        hidden = self.encode(batch["seq"])
        # index_select, not boolean or advanced indexing: its CPU backward is deterministic.
        h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["positions"])
        return {"candidates": h @ self.item.weight.index_select(0, batch["cand_item"]).T}
