"""Per-sample loss weights in MultiTaskLoss (weighted logistic regression for watch time)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig


def test_weighted_bce_is_the_weighted_mean() -> None:
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=("watch_time",)))
    logits = torch.tensor([0.5, -1.0, 2.0])
    labels = torch.tensor([1.0, 0.0, 1.0])
    weight = torch.tensor([30.0, 1.0, 5.0])
    out = loss({"watch_time": logits}, {"label_watch_time": labels, "weight_watch_time": weight})
    rows = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    assert float(out["loss"]) == pytest.approx(float((weight * rows).sum() / weight.sum()))


def test_weighted_lr_odds_estimate_watch_time() -> None:
    """Positives weighted by seconds: the fitted odds approach the mean seconds per exposure."""
    logit = torch.zeros(1, requires_grad=True)
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    weight = torch.tensor([6.0, 2.0, 1.0, 1.0])  # 8 s over 4 exposures: 2 s (odds 8 / 2 = 4)
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=("w",)))
    opt = torch.optim.LBFGS([logit], max_iter=100)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss({"w": logit.expand(4)}, {"label_w": labels, "weight_w": weight})["loss"]
        value.backward()
        return value

    opt.step(closure)
    assert float(torch.exp(logit.detach())) == pytest.approx(4.0, rel=1e-3)


def test_listwise_grades_relevance_by_weight() -> None:
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=("w",), loss="listwise"))
    batch = {
        "label_w": torch.tensor([1.0, 1.0]),
        "weight_w": torch.tensor([9.0, 1.0]),
        "query": torch.tensor([0, 0]),
    }
    better = loss({"w": torch.tensor([2.0, 0.0])}, batch)["loss"]
    worse = loss({"w": torch.tensor([0.0, 2.0])}, batch)["loss"]
    assert float(better) < float(worse)
