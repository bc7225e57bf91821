"""DCN-v2 (Wang et al. 2021): an explicit cross network beside (or below) a deep MLP.

A cross layer multiplies the input ``x0`` elementwise with a linear map of the current
representation: ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l``. ``W_l`` is full rank ``[d, d]`` or,
with ``low_rank = r``, the product ``U_l V_l`` of ``[d, r]`` and ``[r, d]`` (DCN-Mix without
the mixture). ``structure="parallel"`` concatenates the cross and deep outputs;
``"stacked"`` feeds the cross output into the deep MLP. One linear head per task.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models.base import Batch, FlatInput, RankModel, seeded
from funnelrec.rank.models.config import DCNv2Config
from funnelrec.rank.modules.mlp import MLP, linear


class CrossLayer(nn.Module):
    """``x_{l+1} = x0 * (W x_l + b) + x_l`` with full-rank or low-rank ``W``.

    Args:
        dim: ``d``.
        low_rank: ``r`` (None = full rank).

    Example:
        >>> layer = CrossLayer(4)
        >>> x0 = torch.randn(2, 4)
        >>> bool(torch.allclose(layer(x0, x0), x0 * layer.transform(x0) + x0))
        True
    """

    def __init__(self, dim: int, low_rank: int | None = None) -> None:
        super().__init__()
        if low_rank is None:
            self.down: nn.Linear | None = None
            self.up = linear(dim, dim, "linear")
        else:
            self.down = linear(dim, low_rank, "linear", bias=False)
            self.up = linear(low_rank, dim, "linear")

    def transform(self, x: Tensor) -> Tensor:
        """``W x + b``: ``[B, d]`` -> ``[B, d]``."""
        return self.up(self.down(x) if self.down is not None else x)

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        """``x0``, ``x`` ``[B, d]`` -> ``[B, d]``."""
        return torch.addcmul(x, x0, self.transform(x))


class DCNv2(RankModel):
    """Cross network + deep MLP with one head per task.

    Example:
        >>> spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click",))
        >>> model = DCNv2(DCNv2Config(structure="stacked"), spec)
        >>> batch = {"sparse": torch.ones(6, 3, dtype=torch.long), "dense": torch.zeros(6, 2)}
        >>> model(batch)["click"].shape
        torch.Size([6])
    """

    def __init__(self, config: DCNv2Config, spec: FeatureSpec) -> None:
        super().__init__(spec)
        self.config = config
        with seeded(config.seed):
            self.input = FlatInput(
                spec, config.embed_dim, config.embed_init_std, config.sequence_pooling
            )
            d = self.input.out_dim
            self.cross = nn.ModuleList(
                CrossLayer(d, config.low_rank) for _ in range(config.cross_layers)
            )
            self.deep = MLP(d, config.deep)
            width = self.deep.out_dim + (d if config.structure == "parallel" else 0)
            self.head = linear(width, len(self.tasks), "linear")

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """Score a batch.

        Args:
            batch: ``sparse [B, F]``, ``dense [B, D]`` (and ``seq_*`` with mean pooling).

        Returns:
            ``{task: logit [B]}``.
        """
        _, x0 = self.input(batch)  # [B, d]
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        if self.config.structure == "stacked":
            out = self.deep(x)
        else:
            out = torch.cat([x, self.deep(x0)], dim=1)
        return self.as_dict(self.head(out))


__all__ = ["CrossLayer", "DCNv2"]
