"""The shared training loop: optimisation, clipping, NaN/inf guard, callbacks, early stopping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from funnelrec.train.loop import (
    Callback,
    EarlyStopping,
    KeepBest,
    LoopState,
    NonFiniteLossError,
    TrainLoopConfig,
    resolve_device,
    train,
)


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pred": batch["x"] @ self.w}


def mse(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {"loss": ((outputs["pred"] - batch["y"]) ** 2).mean()}


def regression(n: int = 64) -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    return [{"x": x[i : i + 16], "y": y[i : i + 16]} for i in range(0, n, 16)]


class Recorder(Callback):
    def __init__(self, model: nn.Module | None = None) -> None:
        self.steps: list[dict[str, float]] = []
        self.epochs: list[dict[str, float]] = []
        self.grad_norms_after_clip: list[float] = []
        self.model = model

    def on_step_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        self.steps.append(metrics)
        if self.model is not None:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            self.grad_norms_after_clip.append(float(torch.linalg.vector_norm(torch.cat(grads))))

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        self.epochs.append(metrics)


def test_loop_reduces_loss_and_reports_floats() -> None:
    data = regression()
    recorder = Recorder()
    result = train(
        Linear(),
        mse,
        lambda epoch: data,
        TrainLoopConfig(epochs=30, lr=0.05),
        callbacks=[recorder],
    )
    assert result.epochs[-1]["loss"] < 0.01 * result.epochs[0]["loss"]
    assert result.steps == 30 * 4 and result.samples == 30 * 64
    assert result.samples_per_s > 0
    assert len(recorder.steps) == 120 and len(recorder.epochs) == 30
    assert all(isinstance(v, float) for v in recorder.steps[0].values())
    assert {"loss", "grad_norm"} <= set(recorder.steps[0])
    assert {"loss", "samples_per_s", "seconds", "epoch"} <= set(recorder.epochs[0])


def test_batch_factory_receives_the_epoch() -> None:
    seen: list[int] = []

    def batches(epoch: int) -> list[dict[str, Tensor]]:
        seen.append(epoch)
        return regression(16)

    train(Linear(), mse, batches, TrainLoopConfig(epochs=3))
    assert seen == [0, 1, 2]


def test_gradient_norm_is_clipped() -> None:
    model = Linear()
    big = [{"x": torch.full((4, 3), 100.0), "y": torch.zeros(4)}]
    recorder = Recorder(model)

    def far(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"loss": ((outputs["pred"] - 1e4) ** 2).mean()}

    train(
        model,
        far,
        lambda e: big,
        TrainLoopConfig(epochs=2, clip_grad_norm=0.5),
        callbacks=[recorder],
    )
    assert recorder.steps[0]["grad_norm"] > 0.5  # the reported norm is before clipping
    assert max(recorder.grad_norms_after_clip) <= 0.5 + 1e-5


def test_nonfinite_steps_are_skipped_without_touching_parameters() -> None:
    model = Linear()
    calls = {"n": 0}

    def sometimes_nan(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        calls["n"] += 1
        loss = mse(outputs, batch)["loss"]
        return {"loss": loss * math.nan if calls["n"] == 1 else loss}

    result = train(model, sometimes_nan, lambda e: regression(16), TrainLoopConfig(epochs=1))
    assert result.skipped_steps == 1 and result.steps == 0
    assert torch.equal(model.w.detach(), torch.zeros(3))
    result = train(model, sometimes_nan, lambda e: regression(16), TrainLoopConfig(epochs=1))
    assert result.skipped_steps == 0 and result.steps == 1
    assert torch.isfinite(model.w).all()


def test_nonfinite_raise_policy_and_consecutive_limit() -> None:
    def always_inf(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"loss": mse(outputs, batch)["loss"] + math.inf}

    with pytest.raises(NonFiniteLossError, match="epoch 0"):
        train(Linear(), always_inf, lambda e: regression(), TrainLoopConfig(nonfinite="raise"))
    with pytest.raises(NonFiniteLossError):
        train(
            Linear(),
            always_inf,
            lambda e: regression(),
            TrainLoopConfig(epochs=3, max_consecutive_skips=5),
        )


def test_early_stopping_on_a_flat_metric_and_evaluate_hook() -> None:
    model = Linear()

    def flat(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"loss": outputs["pred"].sum() * 0.0 + 1.0}

    evaluated: list[int] = []

    def evaluate(m: nn.Module, epoch: int) -> dict[str, float]:
        assert not m.training
        evaluated.append(epoch)
        return {"val_metric": 1.0}

    stopper = EarlyStopping(monitor="val_metric", mode="max", patience=2)
    result = train(
        model,
        flat,
        lambda e: regression(16),
        TrainLoopConfig(epochs=10),
        callbacks=[stopper],
        evaluate=evaluate,
    )
    assert result.stopped_early and len(result.epochs) == 3
    assert evaluated == [0, 1, 2]
    assert result.epochs[0]["val_metric"] == 1.0


def test_config_is_strict_and_device_resolves() -> None:
    with pytest.raises(ValueError):
        TrainLoopConfig(epoch=3)  # type: ignore[call-arg]
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda"}


def test_keep_best_restores_the_best_epochs_weights() -> None:
    model = nn.Linear(1, 1, bias=False)
    keep = KeepBest(model, "valid_ndcg", "max")
    for epoch, (weight, value) in enumerate([(1.0, 0.2), (2.0, 0.5), (3.0, 0.5), (4.0, 0.1)]):
        with torch.no_grad():
            model.weight.fill_(weight)
        keep.on_epoch_end(LoopState(epoch=epoch), {"valid_ndcg": value})
    keep.restore()
    assert (keep.best, keep.best_epoch) == (0.5, 1)  # a tie is no improvement
    assert float(model.weight.detach()) == 2.0
    lowest = KeepBest(model, "valid_loss", "min")
    lowest.restore()  # nothing evaluated: the weights stay
    assert lowest.best == float("inf") and float(model.weight.detach()) == 2.0
