"""DeepFM (Guo et al. 2017): a factorisation machine and a deep MLP over shared embeddings.

The FM part sees the ``F`` field embeddings plus one extra "dense field" vector (a linear
projection of the dense features), so dense features take part in the second-order
interactions; its first-order part is a per-code scalar weight plus a linear term of the dense
features. The deep part is an MLP over the flat input. Each task has its own linear head on
the deep output; the FM score is shared:

    logit_t = head_t(MLP(x)) + w0 + sum_f w[x_f] + <a, dense> + sum_{i<j} <v_i, v_j>
"""

from __future__ import annotations

from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, FlatInput, RankModel, seeded
from funnelrec.rank.models.config import DeepFMConfig
from funnelrec.rank.modules.embedding import FieldEmbedding
from funnelrec.rank.modules.mlp import MLP, linear


def fm_second_order(vectors: Tensor, extra: Tensor | None = None) -> Tensor:
    """Sum of all pairwise dot products ``sum_{i<j} <v_i, v_j>`` in ``O(F E)``.

    Args:
        vectors: ``[B, F, E]``.
        extra: optional ``[B, E]``, one more vector per sample (as if concatenated to
            ``vectors``, without building the concatenation).

    Returns:
        ``[B]``.

    Example:
        >>> import torch
        >>> v = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1.0, 0.0]]])
        >>> fm_second_order(v)  # 11 + 1 + 3
        tensor([15.])
        >>> fm_second_order(v[:, :2], v[:, 2])
        tensor([15.])
    """
    total = vectors.sum(dim=1)
    squares = vectors.square().sum(dim=1)
    if extra is not None:
        total = total + extra
        squares = squares + extra.square()
    return 0.5 * (total.square() - squares).sum(dim=1)


class DeepFM(RankModel):
    """DeepFM with one head per task.

    Example:
        >>> import torch
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
        >>> model = DeepFM(DeepFMConfig(), spec)
        >>> batch = {"sparse": torch.ones(6, 3, dtype=torch.long), "dense": torch.zeros(6, 2)}
        >>> {t: tuple(v.shape) for t, v in model(batch).items()}
        {'click': (6,), 'buy': (6,)}
    """

    def __init__(self, config: DeepFMConfig, spec: FeatureSpec) -> None:
        super().__init__(spec)
        self.config = config
        e = config.embed_dim
        with seeded(config.seed):
            self.input = FlatInput(spec, e, config.embed_init_std, config.sequence_pooling)
            self.first_order = FieldEmbedding(spec.sparse_cardinalities, 1, config.embed_init_std)
            self.dense_vector = linear(spec.n_dense, e, "linear") if spec.n_dense else None
            self.dense_first = linear(spec.n_dense, 1, "linear") if spec.n_dense else None
            self.deep = MLP(self.input.out_dim, config.deep)
            self.head = linear(self.deep.out_dim, len(self.tasks), "linear")

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]`` (and ``seq_*`` with mean pooling).

        Returns:
            ``{task: logit [B]}``.
        """
        fields, flat = self.input(batch)  # [B, F, E], [B, F * E + D]
        first = self.first_order(batch["sparse"]).sum(dim=(1, 2))  # [B]
        dense_vector = None
        if self.dense_vector is not None and self.dense_first is not None:
            dense = batch["dense"].to(fields.dtype)
            dense_vector = self.dense_vector(dense)  # [B, E], the dense "field"
            first = first + self.dense_first(dense).squeeze(1)
        fm = first + fm_second_order(fields, dense_vector)  # [B]
        logits = self.head(self.deep(flat)) + fm.unsqueeze(1)  # [B, T]
        return self.as_dict(logits)


__all__ = ["DeepFM", "fm_second_order"]
