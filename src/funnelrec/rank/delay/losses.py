"""Losses of the delayed-feedback methods, one task object for the training loop.

Every method but DFM is a weighted binary cross-entropy on the conversion logit; they differ
in which samples (and duplicates) they see and in the weights (:mod:`funnelrec.rank.delay.
methods`). The batch carries ``label`` ``[B]`` and, per method:

* ``bce`` (naive, FSIW, ES-DFM, the auxiliary models): ``weight`` ``[B]`` importance weights,
  fixed before training (FSIW: Yasui et al. 2020; ES-DFM: Yang et al. 2021);
* ``defer``: ``f_dp`` ``[B]``, the auxiliary probability that a sample is a delayed positive.
  DEFER's weights (Gu et al. 2021) ``p / (p - f_dp / 2)`` on positives and ``(1 - p) / (1 - p
  + f_dp / 2)`` on negatives need the conversion rate ``p`` itself; as in the paper the
  model's own prediction stands in for it, without gradient;
* ``dfm``: ``delay`` and ``elapsed`` ``[B]`` (days). DFM (Chapelle 2014) models ``P(convert
  | x) = sigmoid(z)`` and an exponential delay of rate ``exp(log_rate(x))`` jointly: a
  converted sample contributes ``log p + log lambda - lambda d``, a not-yet-converted one
  ``log(1 - p + p exp(-lambda e))`` (it may still convert after its elapsed time ``e``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - the usual alias

__all__ = ["DelayLoss", "LossKind"]

LossKind = Literal["bce", "defer", "dfm"]
_MAX_WEIGHT = 10.0  # DEFER's weights explode where p ~ f_dp / 2; clipped as is customary


class DelayLoss(nn.Module):
    """``loss(outputs, batch) -> {"loss": scalar}`` for :func:`funnelrec.train.loop.train`.

    ``outputs`` hold ``cvr`` ``[B]`` (logit) and, for DFM, ``log_rate`` ``[B]``.

    Example:
        >>> out = {"cvr": torch.zeros(2), "log_rate": torch.zeros(2)}
        >>> batch = {"label": torch.tensor([1.0, 0.0]), "weight": torch.ones(2)}
        >>> round(float(DelayLoss("bce")(out, batch)["loss"]), 4)
        0.6931
    """

    def __init__(self, kind: LossKind) -> None:
        super().__init__()
        self.kind = kind

    def forward(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        z, y = outputs["cvr"], batch["label"]
        if self.kind == "dfm":
            return {"loss": _dfm_nll(z, outputs["log_rate"], y, batch["delay"], batch["elapsed"])}
        if self.kind == "defer":
            weight = _defer_weights(torch.sigmoid(z).detach(), batch["f_dp"], y)
        else:
            weight = batch["weight"]
        bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        return {"loss": (weight * bce).sum() / weight.sum().clamp_min(1e-12)}


def _defer_weights(p: Tensor, f_dp: Tensor, y: Tensor) -> Tensor:
    """``[B]`` DEFER importance weights (the model's ``p`` in place of the true rate)."""
    half = 0.5 * f_dp
    w_pos = p / (p - half).clamp_min(1e-6)
    w_neg = (1.0 - p) / (1.0 - p + half)
    return torch.where(y > 0, w_pos, w_neg).clamp(0.0, _MAX_WEIGHT)


def _dfm_nll(z: Tensor, log_rate: Tensor, y: Tensor, delay: Tensor, elapsed: Tensor) -> Tensor:
    """Mean DFM negative log-likelihood ``[B] -> scalar`` (delay and elapsed in days)."""
    rate = log_rate.exp()
    pos = F.logsigmoid(z) + log_rate - rate * delay
    # log(1 - p + p exp(-rate e)) in log space: logsumexp(log(1-p), log p - rate e).
    neg = torch.logaddexp(F.logsigmoid(-z), F.logsigmoid(z) - rate * elapsed)
    return -torch.where(y > 0, pos, neg).mean()
