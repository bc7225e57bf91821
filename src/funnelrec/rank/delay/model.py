"""A small conversion model over sparse fields, and its fit with the one training loop.

The delayed-feedback methods are losses and sample weights, not architectures, so they share
one model: an embedding per sparse field (user, item, category, ...), summed, then a small MLP
with two heads: ``cvr`` (the conversion logit) and ``log_rate`` (DFM's log delay rate; the
other methods ignore it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from funnelrec.rank.delay.losses import DelayLoss
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.loop import train

__all__ = ["DelayFitConfig", "DelayNet", "fit_delay_model", "predict_cvr"]


class DelayFitConfig(BaseModel):
    """Size and training of :class:`DelayNet`.

    Example:
        >>> DelayFitConfig().embedding_dim
        16
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    embedding_dim: int = Field(16, ge=1, description="Width of each field's embedding.")
    hidden: int = Field(32, ge=1, description="Width of the MLP's hidden layer.")
    batch_size: int = Field(2048, ge=1)
    loop: TrainLoopConfig = Field(
        default_factory=lambda: TrainLoopConfig(epochs=3, lr=3e-3, weight_decay=1e-6)
    )


class DelayNet(nn.Module):
    """``forward({"x": [B, F] int64}) -> {"cvr": [B], "log_rate": [B]}``.

    Example:
        >>> net = DelayNet((5, 3), DelayFitConfig())
        >>> sorted(net({"x": torch.zeros(4, 2, dtype=torch.long)}))
        ['cvr', 'log_rate']
    """

    def __init__(self, cardinalities: tuple[int, ...], config: DelayFitConfig) -> None:
        super().__init__()
        offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]])
        self.offsets: Tensor
        self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long))
        self.embedding = nn.EmbeddingBag(int(sum(cardinalities)), config.embedding_dim, mode="sum")
        self.mlp = nn.Sequential(nn.Linear(config.embedding_dim, config.hidden), nn.ReLU())
        self.heads = nn.Linear(config.hidden, 2)

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        h = self.mlp(self.embedding(batch["x"] + self.offsets))
        out = self.heads(h)
        return {"cvr": out[:, 0], "log_rate": out[:, 1]}


def _batches(
    arrays: Mapping[str, NDArray], batch_size: int, gen: torch.Generator
) -> Iterator[dict[str, Tensor]]:
    tensors = {k: torch.as_tensor(v) for k, v in arrays.items()}
    n = next(iter(tensors.values())).shape[0]
    order = torch.randperm(n, generator=gen)
    for lo in range(0, n, batch_size):
        take = order[lo : lo + batch_size]
        yield {k: t[take] for k, t in tensors.items()}


def fit_delay_model(
    x: NDArray[np.int64],
    targets: Mapping[str, NDArray],
    loss: DelayLoss,
    cardinalities: tuple[int, ...],
    config: DelayFitConfig,
    *,
    seed: int,
) -> DelayNet:
    """Train a :class:`DelayNet` on ``x`` ``[N, F]`` and the loss's batch keys ``targets``.

    Args:
        x: ``[N, F]`` field codes in ``[0, cardinality)``.
        targets: ``{"label": [N], ...}`` float32 arrays the loss reads.
        loss: the method's :class:`DelayLoss`.
        cardinalities: ``[F]`` codes per field.
        config: model size and training.
        seed: seeds the initialisation and the batch order.

    Example:
        >>> x = np.zeros((8, 1), dtype=np.int64)
        >>> t = {"label": np.ones(8, np.float32), "weight": np.ones(8, np.float32)}
        >>> cfg = DelayFitConfig(loop=TrainLoopConfig(epochs=50, lr=0.05))
        >>> net = fit_delay_model(x, t, DelayLoss("bce"), (1,), cfg, seed=0)
        >>> float(predict_cvr(net, x).min()) > 0.5
        True
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # inside fork_rng: the caller's global stream is untouched
        model = DelayNet(cardinalities, config)
    # Start the conversion head at the label's (weighted) base rate: with a few hundred steps
    # a head started at 0.5 would still be on its way there, biasing every auxiliary model.
    label = np.asarray(targets["label"], dtype=np.float64)
    weight = np.asarray(targets.get("weight", np.ones_like(label)), dtype=np.float64)
    rate = float(np.clip(np.average(label, weights=weight), 1e-4, 1 - 1e-4))
    with torch.no_grad():
        model.heads.bias[0] = float(np.log(rate / (1 - rate)))
    arrays: dict[str, NDArray] = {"x": x.astype(np.int64)}
    arrays.update({k: np.asarray(v, dtype=np.float32) for k, v in targets.items()})
    train(model, loss, lambda _epoch: _batches(arrays, config.batch_size, gen), config.loop)
    return model


@torch.no_grad()
def predict_cvr(model: DelayNet, x: NDArray[np.int64], batch_size: int = 65_536) -> NDArray:
    """``[N]`` float64 conversion probabilities of ``x`` ``[N, F]``."""
    model.eval()
    parts = [
        torch.sigmoid(model({"x": torch.as_tensor(x[lo : lo + batch_size])})["cvr"])
        for lo in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts).double().numpy() if parts else np.zeros(0)
