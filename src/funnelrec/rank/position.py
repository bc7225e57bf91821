"""Click models that separate position from relevance (docs/debiasing.md).

One relevance tower (user and item embeddings, a dot product and an item bias) trained four
ways on logged impressions ``(user, item, position, click)``:

* ``naive``: plain BCE, position ignored: the position effect leaks into the relevance;
* ``ips``: the same BCE weighted by clipped inverse propensities ``1 / curve[position]``
  (``weight_click`` through :class:`~funnelrec.rank.task.MultiTaskLoss`);
* ``pal`` (Guo et al., RecSys 2019, "position-bias aware learning"): a separate position tower
  gives ``P(seen | k)``, multiplied with ``P(relevant)`` in training and dropped at serving;
* ``feature``: position as one more additive logit term in training, fixed to position 0 at
  serving (a constant shift, so the serving order is the relevance tower's).

Serving always returns the relevance tower's logit (:meth:`PositionAwareModel.relevance`).

Example:
    >>> rng = np.random.default_rng(0)
    >>> n = 2000
    >>> u, i, k = rng.integers(0, 5, n), rng.integers(0, 7, n), rng.integers(0, 3, n)
    >>> y = (rng.random(n) < 0.3).astype(np.int8)
    >>> cfg = PositionModelConfig(mode="pal", epochs=1)
    >>> model = fit_position_model(cfg, 5, 7, 3, Impressions(u, i, k, y), rng=rng)
    >>> model.score(np.array([0, 1]), np.array([2, 3])).shape
    (2,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from funnelrec.rank.duration import WEIGHT_PREFIX
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.loop import BatchFactory, train
from funnelrec.train.seeding import forked_seed

TASK = "click"


class PositionModelConfig(BaseModel):
    """How the position enters training.

    The IPS weights come with the impressions (:func:`~funnelrec.rank.propensity.ips_weights`);
    the loss divides each batch's weighted BCE by its weight sum, so training is already
    self-normalised (SNIPS) per batch.

    Example:
        >>> PositionModelConfig(mode="ips").epochs
        4
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["naive", "ips", "pal", "feature"] = Field("naive", description="See module.")
    dim: int = Field(16, ge=1, le=256, description="Embedding size of users and items.")
    epochs: int = Field(4, ge=1, description="Passes over the impressions.")
    batch_size: int = Field(1024, ge=1, description="Impressions per step.")
    lr: float = Field(0.02, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(1e-5, ge=0, description="L2 on the embeddings.")
    seed: int = Field(0, ge=0, description="Seed of the initialisation and the shuffling.")


@dataclass(frozen=True, slots=True)
class Impressions:
    """``N`` logged impressions: ``user``, ``item``, ``position`` int64 ``[N]``, ``click``
    ``[N]`` (0/1) and, for ``ips``, the ``weight`` ``[N]`` of each row."""

    user: NDArray[np.int64]
    item: NDArray[np.int64]
    position: NDArray[np.int64]
    click: NDArray[np.int8]
    weight: NDArray[np.float64] | None = None


class PositionAwareModel(nn.Module):
    """Relevance tower plus an optional position tower.

    Args:
        n_users / n_items / n_positions: vocabulary sizes.
        config: the mode and the embedding size.
    """

    def __init__(self, n_users: int, n_items: int, n_positions: int, config: PositionModelConfig):
        super().__init__()
        self.mode = config.mode
        self.user = nn.Embedding(n_users, config.dim)
        self.item = nn.Embedding(n_items, config.dim)
        self.item_bias = nn.Embedding(n_items, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        self.position = nn.Embedding(n_positions, 1)  # the shallow position tower
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=0.05)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.position.weight)

    def relevance(self, user: Tensor, item: Tensor) -> Tensor:
        """``[B]`` the serving logit: relevance only."""
        dot = (self.user(user) * self.item(item)).sum(-1)
        return dot + self.item_bias(item).squeeze(-1) + self.bias

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{"click": [B]}`` training logits of P(click) at the logged position."""
        rel = self.relevance(batch["user"], batch["item"])
        if self.mode == "feature":
            return {TASK: rel + self.position(batch["position"]).squeeze(-1)}
        if self.mode == "pal":
            # log P(click) = log P(seen | k) + log P(relevant): the logit of their product.
            log_p = nn.functional.logsigmoid(rel) + nn.functional.logsigmoid(
                self.position(batch["position"]).squeeze(-1)
            )
            log_not = torch.log(-torch.expm1(log_p.clamp_max(-1e-6)))
            return {TASK: log_p - log_not}
        return {TASK: rel}


@dataclass(frozen=True)
class FittedPositionModel:
    """A trained model, scored at serving (position dropped or fixed at 0)."""

    model: PositionAwareModel

    def score(self, user: NDArray[np.int64], item: NDArray[np.int64]) -> NDArray[np.float64]:
        """``[N]`` relevance logits of (user, item) pairs."""
        with torch.no_grad():
            self.model.eval()
            out = self.model.relevance(torch.as_tensor(user), torch.as_tensor(item))
        return out.numpy().astype(np.float64)

    def click_probability(
        self, user: NDArray[np.int64], item: NDArray[np.int64], position: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """``[N]`` the training-time P(click) at a position (a direct model for off-policy
        evaluation; ``naive`` and ``ips`` ignore the position)."""
        batch = {
            "user": torch.as_tensor(user),
            "item": torch.as_tensor(item),
            "position": torch.as_tensor(position),
        }
        with torch.no_grad():
            self.model.eval()
            logit = self.model(batch)[TASK]
        return torch.sigmoid(logit).numpy().astype(np.float64)


def _batches(data: Impressions, config: PositionModelConfig, gen: torch.Generator) -> BatchFactory:
    """A fresh shuffle of the impressions per epoch, ``batch_size`` rows per batch."""
    tensors = {
        "user": torch.as_tensor(data.user, dtype=torch.int64),
        "item": torch.as_tensor(data.item, dtype=torch.int64),
        "position": torch.as_tensor(data.position, dtype=torch.int64),
        f"label_{TASK}": torch.as_tensor(data.click, dtype=torch.float32),
    }
    if data.weight is not None:
        tensors[f"{WEIGHT_PREFIX}{TASK}"] = torch.as_tensor(data.weight, dtype=torch.float32)
    n = data.user.shape[0]

    def factory(epoch: int) -> list[dict[str, Tensor]]:
        del epoch  # every epoch is a new permutation of the same rows
        order = torch.randperm(n, generator=gen)
        chunks = order.split(config.batch_size)
        return [{key: value[idx] for key, value in tensors.items()} for idx in chunks]

    return factory


def fit_position_model(
    config: PositionModelConfig,
    n_users: int,
    n_items: int,
    n_positions: int,
    data: Impressions,
    *,
    rng: np.random.Generator,
) -> FittedPositionModel:
    """Train one model on the impressions (``ips`` needs ``data.weight``).

    Args:
        config: mode and training settings.
        n_users / n_items / n_positions: vocabulary sizes.
        data: the logged impressions.
        rng: draws the torch seed.

    Returns:
        The fitted model.
    """
    if config.mode == "ips" and data.weight is None:
        raise ValueError("mode='ips' needs Impressions.weight (ips_weights of the positions)")
    if config.mode != "ips":
        data = Impressions(data.user, data.item, data.position, data.click)
    seed = int(rng.integers(0, 2**31 - 1)) ^ config.seed
    with forked_seed(seed, torch.device("cpu")):
        model = PositionAwareModel(n_users, n_items, n_positions, config)
        gen = torch.Generator().manual_seed(seed)
        loop = TrainLoopConfig(epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay)
        loss = MultiTaskLoss(MultiTaskLossConfig(tasks=(TASK,)))
        train(model, loss, _batches(data, config, gen), loop)
    return FittedPositionModel(model)


__all__ = [
    "FittedPositionModel",
    "Impressions",
    "PositionAwareModel",
    "PositionModelConfig",
    "fit_position_model",
]
