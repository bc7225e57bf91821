"""MultiTaskLoss: per-task BCE, static weights, uncertainty weighting, loud failures."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from funnelrec.rank.listwise import listwise_softmax_loss
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig

TASKS = ("click", "buy")


def data(n: int = 16) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    outputs = {t: torch.randn(n, generator=g, requires_grad=True) for t in TASKS}
    batch = {f"label_{t}": (torch.rand(n, generator=g) < 0.4).float() for t in TASKS}
    return outputs, batch


def bce(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], t: str) -> torch.Tensor:
    p = torch.sigmoid(outputs[t].detach().double())
    y = batch[f"label_{t}"].double()
    return -(y * p.log() + (1 - y) * (1 - p).log()).mean()


def test_static_weights() -> None:
    outputs, batch = data()
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=TASKS, weights={"buy": 3.0}))
    out = loss(outputs, batch)
    assert set(out) == {"loss", "loss_click", "loss_buy"}
    assert all(v.ndim == 0 for v in out.values())
    expected = bce(outputs, batch, "click") + 3.0 * bce(outputs, batch, "buy")
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["loss_buy"]) == pytest.approx(float(bce(outputs, batch, "buy")), rel=1e-5)
    assert list(loss.parameters()) == []
    out["loss"].backward()
    assert outputs["click"].grad is not None


def test_uncertainty_weighting_is_kendall_and_learns() -> None:
    outputs, batch = data()
    config = MultiTaskLossConfig(tasks=TASKS, weights={"click": 2.0}, uncertainty=True)
    loss = MultiTaskLoss(config)
    assert isinstance(loss, nn.Module)
    assert loss.log_var is not None
    with torch.no_grad():
        loss.log_var.copy_(torch.tensor([0.5, -1.0]))
    out = loss(outputs, batch)
    s = {"click": 0.5, "buy": -1.0}
    w = {"click": 2.0, "buy": 1.0}
    expected = sum(
        w[t] * (torch.exp(torch.tensor(-s[t])) * bce(outputs, batch, t) + 0.5 * s[t]) for t in TASKS
    )
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["log_var_buy"]) == pytest.approx(-1.0)
    out["loss"].backward()
    assert loss.log_var.grad is not None and torch.all(loss.log_var.grad != 0)
    # d/ds [exp(-s) L + s/2] = 0 at s = log(2 L): the learned weight settles at 1 / (2 L).
    grad_buy = w["buy"] * (-torch.exp(torch.tensor(1.0)) * bce(outputs, batch, "buy") + 0.5)
    assert float(loss.log_var.grad[1]) == pytest.approx(float(grad_buy), rel=1e-5)


def test_extra_outputs_are_ignored_and_missing_ones_fail() -> None:
    outputs, batch = data()
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=("click",)))
    assert set(loss(outputs, batch)) == {"loss", "loss_click"}
    with pytest.raises(KeyError, match="label_click"):
        loss(outputs, {"label_buy": batch["label_buy"]})
    with pytest.raises(KeyError, match="no task 'click'"):
        loss({"buy": outputs["buy"]}, batch)


def test_config_fails_loudly() -> None:
    with pytest.raises(ValidationError, match="unknown tasks"):
        MultiTaskLossConfig(tasks=TASKS, weights={"cart": 1.0})
    with pytest.raises(ValidationError):
        MultiTaskLossConfig(tasks=TASKS, uncertainity=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MultiTaskLossConfig(tasks=())
    with pytest.raises(ValidationError, match="duplicate"):
        MultiTaskLossConfig(tasks=("click", "click"))
    with pytest.raises(ValidationError, match="negative"):
        MultiTaskLossConfig(tasks=TASKS, weights={"buy": -1.0})


def test_listwise_loss_is_the_weighted_per_query_softmax() -> None:
    outputs, batch = data()
    query = torch.arange(16) % 4  # four interleaved queries of four rows
    config = MultiTaskLossConfig(tasks=TASKS, weights={"buy": 2.0}, loss="listwise")
    out = MultiTaskLoss(config)(outputs, {**batch, "query": query})
    per_task = {
        t: listwise_softmax_loss(outputs[t].detach(), batch[f"label_{t}"], query) for t in TASKS
    }
    assert float(out["loss_buy"]) == pytest.approx(float(per_task["buy"]), rel=1e-6)
    expected = per_task["click"] + 2.0 * per_task["buy"]
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-6)
    pointwise = MultiTaskLoss(MultiTaskLossConfig(tasks=TASKS, weights={"buy": 2.0}))
    assert float(pointwise(outputs, batch)["loss"].detach()) != pytest.approx(float(expected))
    out["loss"].backward()
    assert outputs["click"].grad is not None and torch.any(outputs["click"].grad != 0)


def test_listwise_needs_query_ids() -> None:
    outputs, batch = data()
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=TASKS, loss="listwise"))
    with pytest.raises(KeyError, match="'query'"):
        loss(outputs, batch)
