"""Training-health diagnostics end to end on a small synthetic binary-classification problem.

A deliberately broken run (far too high a learning rate, ReLUs pushed negative) must be
diagnosed (dead ReLUs and vanishing/exploding gradients), and applying the machine-readable
remedies must make retraining healthy; a healthy run must produce no findings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from funnelrec.errors import DataError
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.diagnostics import (
    PLOT_FILES,
    Finding,
    HealthConfig,
    HealthMonitor,
    apply_remedy,
    read_records,
    summarise_run,
)
from funnelrec.train.init import init_linear, make_activation
from funnelrec.train.loop import NonFiniteLossError, train

Batch = dict[str, Tensor]


def make_data(n: int = 2000, d: int = 10, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``x [n, d]`` standard normal, ``y [n]`` in {0, 1} from a noisy nonlinear logit."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g)
    logit = x @ w + 0.5 * x[:, 0] * x[:, 1] - 0.5 * x[:, 2] ** 2
    y = (torch.rand(n, generator=g) < torch.sigmoid(2 * logit)).float()
    return x, y


X, Y = make_data()


class MLP(nn.Module):
    """``[B, 10] -> {"click": [B]}`` logits through Linear+ReLU blocks [64, 64, 32]."""

    def __init__(self, bias: float = 0.0, hidden: tuple[int, ...] = (64, 64, 32)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = X.shape[1]
        for h in hidden:
            linear = nn.Linear(width, h)
            init_linear(linear, "relu", bias=bias)
            layers += [linear, make_activation("relu")]
            width = h
        out = nn.Linear(width, 1)
        init_linear(out, "linear")
        self.net = nn.Sequential(*layers, out)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return {"click": self.net(batch["x"]).squeeze(-1)}


def bce(outputs: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
    return {"loss": nn.functional.binary_cross_entropy_with_logits(outputs["click"], batch["y"])}


def batches(epoch: int) -> list[Batch]:
    g = torch.Generator().manual_seed(100 + epoch)
    perm = torch.randperm(len(X), generator=g)
    return [{"x": X[perm[i : i + 128]], "y": Y[perm[i : i + 128]]} for i in range(0, len(X), 128)]


def auc(model: nn.Module) -> float:
    with torch.no_grad():
        return float(roc_auc_score(Y.numpy(), model({"x": X})["click"].numpy()))


def fit(
    model: nn.Module,
    config: TrainLoopConfig,
    out_dir: Path | None = None,
    task: Callable[[dict[str, Tensor], Batch], dict[str, Tensor]] = bce,
) -> HealthMonitor:
    monitor = HealthMonitor(HealthConfig(out_dir=out_dir, every_n_steps=4))
    train(model, task, batches, config, callbacks=[monitor])
    return monitor


def kinds(findings: list[Finding]) -> set[str]:
    return {f.kind for f in findings}


def test_healthy_run_has_no_findings_and_writes_jsonl_and_plots(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MLP()
    monitor = fit(model, TrainLoopConfig(epochs=8, lr=1e-2), tmp_path)
    assert monitor.findings == []
    assert auc(model) > 0.9
    last = monitor.epochs[-1]
    assert set(last.activations) == {"net.1", "net.3", "net.5"}
    assert list(last.grad_norms) == ["net.0", "net.2", "net.4", "net.6"]
    assert [a.input_layer for a in last.activations.values()] == ["net.0", "net.2", "net.4"]
    assert all(a.dead_fraction < 0.2 for a in last.activations.values())
    assert all(a.std > 0 and 0 < a.zero_fraction < 1 for a in last.activations.values())
    assert all(0 < g < 10 for g in last.grad_norms.values())

    records = read_records(tmp_path / "diagnostics.jsonl")
    types = [r["type"] for r in records]
    assert types[0] == "begin" and types[-1] == "end"
    assert types.count("epoch") == 8
    assert types.count("step") == 8 * 4  # 16 steps per epoch, steps 1, 5, 9, 13 monitored
    step = next(r for r in records if r["type"] == "step")
    assert set(step["layers"]) == {"net.0", "net.2", "net.4", "net.6"}
    assert set(step["activations"]["net.1"]) == {"mean", "std", "zero_fraction"}
    for name in PLOT_FILES:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert monitor.plots == [tmp_path / name for name in PLOT_FILES]

    summary = summarise_run(tmp_path)
    assert summary.healthy and summary.completed and summary.epochs == 8
    assert summary.steps == 8 * 16 and summary.skipped_steps == 0
    assert [row.name for row in summary.layers] == ["net.0", "net.2", "net.4", "net.6"]
    assert summary.layers[0].activation == "net.1" and summary.layers[-1].activation is None
    assert summary.final_loss is not None and summary.final_loss < 0.4
    assert len(summary.plots) == 3


@pytest.mark.parametrize(
    ("lr", "bias", "clip"),
    [(1.0, -5.0, 5.0), (5.0, 0.0, None)],
    ids=["negative_bias", "huge_lr_no_clip"],
)
def test_broken_run_is_diagnosed_and_the_remedy_recovers(
    lr: float, bias: float, clip: float | None, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = MLP(bias=bias)
    config = TrainLoopConfig(epochs=6, lr=lr, clip_grad_norm=clip)
    monitor = fit(model, config, tmp_path / "broken")
    found = kinds(monitor.findings)
    assert "dead_relu" in found
    assert found & {"vanishing_gradients", "exploding_gradients"}
    if bias == 0.0:
        assert "exploding_gradients" in found
    assert auc(model) < 0.7  # the broken run does not learn
    for finding in monitor.findings:
        assert finding.message and finding.advice and finding.epoch is not None
        json.dumps(finding.remedy)  # machine-readable
    dead = [f for f in monitor.findings if f.kind == "dead_relu"]
    assert all(f.remedy["reinit"] == "he" and f.remedy["bias"] == 0.0 for f in dead)
    assert all(f.remedy["lr"] < lr for f in dead)

    fixed = apply_remedy(config, model, monitor.findings)
    assert fixed.lr <= 0.01 and fixed.epochs == config.epochs
    if "exploding_gradients" in found:
        assert fixed.clip_grad_norm == 1.0
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert all(not m.bias.detach().any() for m in linears)  # re-initialised, zero bias

    after = fit(model, fixed.model_copy(update={"epochs": 10}), tmp_path / "fixed")
    assert not kinds(after.findings) & {"vanishing_gradients", "exploding_gradients"}
    assert after.findings == []
    assert max(a.dead_fraction for a in after.epochs[-1].activations.values()) < 0.3
    assert auc(model) > 0.8

    broken = summarise_run(tmp_path / "broken")
    assert kinds(list(broken.findings)) == found
    assert max(row.dead_fraction or 0.0 for row in broken.layers) > 0.5
    assert summarise_run(tmp_path / "fixed").healthy


def nan_on(steps: set[int]) -> Callable[[dict[str, Tensor], Batch], dict[str, Tensor]]:
    calls = {"n": 0}

    def task(outputs: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        calls["n"] += 1
        loss = bce(outputs, batch)["loss"]
        return {"loss": loss * math.nan if calls["n"] in steps else loss}

    return task


def test_nonfinite_steps_are_reported_as_exploding() -> None:
    torch.manual_seed(0)
    monitor = fit(MLP(), TrainLoopConfig(epochs=2, lr=1e-2), task=nan_on({3, 4}))
    assert monitor.epochs[0].skipped_steps == 2 and monitor.epochs[1].skipped_steps == 0
    (finding,) = monitor.findings
    assert finding.kind == "exploding_gradients" and finding.severity == "critical"
    assert "NaN/inf on 2 step(s)" in finding.message and finding.epoch == 0
    assert finding.remedy == {"lr": 1e-3, "lr_scale": pytest.approx(0.1), "clip_grad_norm": 1.0}


def test_a_run_that_raises_still_leaves_its_diagnostics(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = TrainLoopConfig(epochs=3, lr=1e-2, nonfinite="raise")
    with pytest.raises(NonFiniteLossError):
        fit(MLP(), config, tmp_path, task=nan_on({20}))
    records = read_records(tmp_path / "diagnostics.jsonl")
    assert records[-1]["type"] == "end" and "non-finite" in records[-1]["error"]
    partial = [r for r in records if r["type"] == "epoch" and r["partial"]]
    assert len(partial) == 1 and partial[0]["epoch"] == 1 and partial[0]["steps"] == 3
    summary = summarise_run(tmp_path)
    assert summary.epochs == 1 and summary.error is not None and not summary.healthy
    assert kinds(list(summary.findings)) == {"exploding_gradients"}
    assert all((tmp_path / name).is_file() for name in PLOT_FILES)


def test_summarise_run_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run directory not found"):
        summarise_run(tmp_path / "missing")
    with pytest.raises(DataError, match=r"no diagnostics\.jsonl"):
        summarise_run(tmp_path)
    (tmp_path / "diagnostics.jsonl").write_text('{"type": "begin"}\nnot json\n')
    with pytest.raises(DataError, match="row 2"):
        summarise_run(tmp_path)
    (tmp_path / "diagnostics.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        summarise_run(tmp_path)


def test_summarise_run_finds_a_diagnostics_subfolder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    fit(MLP(hidden=(8,)), TrainLoopConfig(epochs=1, lr=1e-2), tmp_path / "diagnostics")
    summary = summarise_run(tmp_path)
    assert summary.jsonl == tmp_path / "diagnostics" / "diagnostics.jsonl"
    assert summarise_run(summary.jsonl).epochs == 1
