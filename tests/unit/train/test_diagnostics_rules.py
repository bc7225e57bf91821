"""The loop hooks diagnostics rely on, the detection rules on hand-made statistics, remedies."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.diagnostics import (
    EpochStats,
    Finding,
    HealthConfig,
    HealthMonitor,
    LayerActivity,
    apply_remedy,
    detect_findings,
)
from funnelrec.train.loop import Callback, LoopState, NonFiniteLossError, train

Batch = dict[str, Tensor]


class Net(nn.Module):
    """``[B, 3] -> {"y": [B]}``; one ReLU module shared by both hidden layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 8)
        self.b = nn.Linear(8, 4)
        self.out = nn.Linear(4, 1)
        self.act = nn.ReLU()

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return {"y": self.out(self.act(self.b(self.act(self.a(batch["x"]))))).squeeze(-1)}


def mse(outputs: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
    return {"loss": ((outputs["y"] - batch["y"]) ** 2).mean()}


def data(n: int = 64, scale: float = 1.0) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g) * scale
    y = x.sum(1) * scale
    return [{"x": x[i : i + 16], "y": y[i : i + 16]} for i in range(0, n, 16)]


class Spy(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.raw_norms: list[float] = []
        self.state_norms: list[float] = []
        self.clipped: list[bool] = []
        self.error: str | None = None

    def on_train_begin(self, state: LoopState, model: nn.Module) -> None:
        assert state.config is not None
        self.events.append("begin")

    def on_after_backward(self, state: LoopState, model: nn.Module) -> None:
        self.events.append("backward")
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        self.raw_norms.append(
            float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])))
        )
        self.state_norms.append(state.grad_norm)
        self.clipped.append(state.clipped)

    def on_step_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        self.events.append("step")

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        self.events.append("epoch")

    def on_train_end(self, state: LoopState, model: nn.Module) -> None:
        self.events.append("end")
        self.error = state.error


def test_hooks_see_raw_gradients_before_clipping_in_order() -> None:
    spy = Spy()
    result = train(
        Net(),
        mse,
        lambda e: data(scale=30.0),
        TrainLoopConfig(epochs=2, clip_grad_norm=1.0),
        callbacks=[spy],
    )
    assert spy.events[0] == "begin" and spy.events[-1] == "end"
    assert spy.events[1:4] == ["backward", "step", "backward"]
    assert spy.events.count("epoch") == 2 and spy.events.count("backward") == 8
    assert spy.raw_norms == pytest.approx(spy.state_norms, rel=1e-5)
    assert spy.clipped == [n > 1.0 for n in spy.raw_norms] and spy.clipped[0]
    assert result.clipped_steps == sum(spy.clipped)
    assert spy.error is None


def test_train_end_runs_when_training_raises() -> None:
    spy = Spy()

    def nan(outputs: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        return {"loss": mse(outputs, batch)["loss"] * math.nan}

    with pytest.raises(NonFiniteLossError):
        train(Net(), nan, lambda e: data(), TrainLoopConfig(nonfinite="raise"), callbacks=[spy])
    assert spy.events == ["begin", "end"] and spy.error and "non-finite" in spy.error


def test_shared_activation_is_tracked_per_call_and_eval_forwards_are_ignored() -> None:
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.b.bias.fill_(-100.0)  # second use of the shared ReLU: every unit dead
    seen: list[int] = []

    def evaluate(m: nn.Module, epoch: int) -> dict[str, float]:
        seen.append(epoch)
        m({"x": torch.full((4, 3), 1e3)})  # eval-mode forward: must not revive units
        return {}

    monitor = HealthMonitor(HealthConfig(every_n_steps=2))
    train(
        model,
        mse,
        lambda e: data(),
        TrainLoopConfig(epochs=2, lr=1e-3),
        callbacks=[monitor],
        evaluate=evaluate,
    )
    assert seen == [0, 1]
    acts = monitor.epochs[-1].activations
    assert list(acts) == ["act", "act[1]"]
    assert acts["act"].input_layer == "a" and acts["act"].units == 8
    assert acts["act[1]"].input_layer == "b" and acts["act[1]"].units == 4
    assert acts["act[1]"].dead_fraction == 1.0 and acts["act"].dead_fraction < 0.5
    dead = [f for f in monitor.findings if f.kind == "dead_relu"]
    assert [f.layer for f in dead] == ["act[1]"]
    assert dead[0].remedy["layers"] == {"b": "relu"}
    steps = [r for r in monitor.records if r["type"] == "step"]
    assert [r["step"] for r in steps] == [1, 3, 5, 7]  # steps 1 and 3 of each 4-step epoch


def stats(
    grad_norms: dict[str, float] | None = None,
    dead: float = 0.0,
    norm_mean: float = 1.0,
    norm_max: float = 2.0,
    skipped: int = 0,
    epoch: int = 0,
) -> EpochStats:
    act = LayerActivity("relu", "fc1", 10, dead, 0.5, 1.0, 0.5)
    return EpochStats(
        epoch=epoch,
        steps=10,
        backward_steps=10,
        skipped_steps=skipped,
        clipped_steps=0,
        grad_norm_mean=norm_mean,
        grad_norm_max=norm_max,
        loss=0.5,
        activations={"relu1": act},
        grad_norms=grad_norms if grad_norms is not None else {"fc1": 0.5, "fc2": 0.3},
    )


CONFIG = HealthConfig()
LOOP = TrainLoopConfig(lr=1e-3, clip_grad_norm=5.0)


def test_healthy_statistics_give_no_findings() -> None:
    assert detect_findings(stats(), [], CONFIG, loop=LOOP) == []
    assert detect_findings(stats(dead=0.5), [], CONFIG, loop=LOOP) == []  # threshold: > 0.5


def test_dead_relu_rule() -> None:
    (finding,) = detect_findings(stats(dead=0.6), [], CONFIG, loop=LOOP)
    assert finding.kind == "dead_relu" and finding.layer == "relu1"
    assert finding.severity == "warning" and "60% of the 10 units" in finding.message
    assert finding.remedy["layers"] == {"fc1": "relu"} and finding.remedy["lr"] == 1e-4
    assert detect_findings(stats(dead=0.95), [], CONFIG, loop=LOOP)[0].severity == "critical"


def test_vanishing_rules() -> None:
    (ratio,) = detect_findings(stats({"fc1": 1e-6, "fc2": 1e-2}), [], CONFIG, loop=LOOP)
    assert ratio.kind == "vanishing_gradients" and ratio.layer == "fc1"
    assert ratio.remedy["normalize_inputs"] is True and ratio.remedy["reinit"] == "he"
    (flat,) = detect_findings(stats({"fc1": 1e-9, "fc2": 1e-8}), [], CONFIG, loop=LOOP)
    assert flat.layer is None and flat.severity == "critical"
    assert detect_findings(stats({"fc1": 1e-4, "fc2": 1e-2}), [], CONFIG, loop=LOOP) == []


def test_exploding_rules() -> None:
    (big,) = detect_findings(stats(norm_max=500.0), [], CONFIG, loop=LOOP)
    assert big.kind == "exploding_gradients" and big.severity == "warning"
    assert big.remedy == {"lr": 1e-4, "lr_scale": pytest.approx(0.1), "clip_grad_norm": 1.0}
    assert detect_findings(stats(norm_max=5000.0), [], CONFIG, loop=LOOP)[0].severity == "critical"
    history = [stats(norm_mean=0.5), stats(norm_mean=0.2, epoch=1)]
    (growth,) = detect_findings(stats(norm_mean=3.0, norm_max=9.0, epoch=2), history, CONFIG)
    assert "grew 15x" in growth.message  # over the smallest earlier epoch mean (0.2)
    assert growth.remedy == {"lr_scale": 0.1, "clip_grad_norm": 1.0}  # no loop: relative lr
    tiny = [stats(norm_mean=1e-4)]  # 10x growth of a tiny norm is not an explosion
    assert detect_findings(stats(norm_mean=0.5, epoch=1), tiny, CONFIG, loop=LOOP) == []
    (nan,) = detect_findings(stats(skipped=3), [], CONFIG, loop=LOOP)
    assert nan.severity == "critical" and "NaN/inf on 3 step(s)" in nan.message


def test_remedy_lr_is_capped_for_a_far_too_high_rate() -> None:
    (finding,) = detect_findings(stats(skipped=1), [], CONFIG, loop=TrainLoopConfig(lr=2.0))
    assert finding.remedy["lr"] == 1e-2 and "(2 -> 0.01)" in finding.advice


def test_apply_remedy_combines_findings() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        model[0].bias.fill_(-5.0)
    before = model[2].weight.detach().clone()
    findings = [
        Finding("dead_relu", "1", "critical", "dead", {"lr": 0.01, "layers": {"0": "relu"}}),
        Finding(
            "exploding_gradients", None, "critical", "boom", {"lr": 0.05, "clip_grad_norm": 2.0}
        ),
        Finding("vanishing_gradients", None, "warning", "hm", {"normalize_inputs": True}),
    ]
    config = TrainLoopConfig(lr=1.0, clip_grad_norm=None, epochs=7)
    fixed = apply_remedy(config, model, findings)
    assert fixed.lr == 0.01 and fixed.clip_grad_norm == 2.0 and fixed.epochs == 7
    assert not model[0].bias.detach().any()
    assert 0.3 < float(model[0].weight.detach().std()) < 1.5  # He, fan-in 3: std 0.82
    assert torch.equal(model[2].weight.detach(), before)  # not named: untouched
    assert apply_remedy(TrainLoopConfig(lr=1e-4), model, findings).lr == 1e-4  # never raised
    assert apply_remedy(config, model, []) == config


def test_apply_remedy_rejects_unknown_keys_and_layers() -> None:
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU())
    with pytest.raises(ValidationError):
        apply_remedy(
            TrainLoopConfig(), model, [Finding("dead_relu", "1", "warning", "", {"lrr": 1})]
        )
    for layer in ("9", "1"):  # missing, and not a Linear
        bad = Finding("dead_relu", "1", "warning", "", {"layers": {layer: "relu"}})
        with pytest.raises(ValueError, match=f"'{layer}'"):
            apply_remedy(TrainLoopConfig(), model, [bad])


def test_health_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        HealthConfig(every_n_step=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        HealthConfig(dead_fraction=1.5)


def test_finding_round_trips_through_a_dict() -> None:
    finding = Finding("dead_relu", "x", "warning", "m", {"lr": 0.1}, "a", 3)
    assert Finding.from_dict(finding.to_dict()) == finding


def test_frozen_layers_are_not_mistaken_for_vanishing_gradients() -> None:
    torch.manual_seed(0)
    model = Net()
    model.a.requires_grad_(False)  # e.g. a frozen pretrained projection: no gradient at all
    monitor = HealthMonitor(HealthConfig(every_n_steps=1))
    train(model, mse, lambda e: data(), TrainLoopConfig(epochs=2, lr=1e-3), callbacks=[monitor])
    assert list(monitor.epochs[-1].grad_norms) == ["b", "out"]
    assert monitor.epochs[-1].activations["act"].input_layer == "a"  # still mapped
    assert not [f for f in monitor.findings if f.kind == "vanishing_gradients"]
