"""``funnelrec diagnose RUN_DIR`` on runs written by a HealthMonitor, and on bad folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from funnelrec.cli.app import app
from funnelrec.train.diagnostics import HealthConfig, HealthMonitor
from funnelrec.train.init import init_linear
from funnelrec.train.loop import TrainLoopConfig, train

runner = CliRunner()


class Classifier(nn.Module):
    """``[B, 10] -> {"click": [B]}`` through two Linear+ReLU blocks."""

    def __init__(self, bias: float) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
        self.head = nn.Linear(16, 1)
        for layer in (self.hidden[0], self.hidden[2]):
            init_linear(layer, "relu", bias=bias)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"click": self.head(self.hidden(batch["x"])).squeeze(-1)}


def bce(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return {"loss": nn.functional.binary_cross_entropy_with_logits(outputs["click"], batch["y"])}


def write_run(out: Path, *, bias: float, lr: float) -> Path:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 10, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).float()
    data = [{"x": x[i : i + 64], "y": y[i : i + 64]} for i in range(0, 512, 64)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        monitor = HealthMonitor(HealthConfig(out_dir=out / "diagnostics", every_n_steps=2))
        train(
            Classifier(bias),
            bce,
            lambda e: data,
            TrainLoopConfig(epochs=4, lr=lr),
            callbacks=[monitor],
        )
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("runs")
    yield (
        write_run(root / "healthy", bias=0.0, lr=1e-2),
        write_run(root / "broken", bias=-5.0, lr=1.0),
    )


def test_diagnose_a_healthy_run(runs: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["diagnose", str(runs[0])])
    assert result.exit_code == 0, result.output
    for text in ("hidden.0", "hidden.2", "head", "hidden.1 (relu)", "No problems found."):
        assert text in result.output
    assert "completed" in result.output and "epochs 4" in result.output


def test_diagnose_a_broken_run_shows_findings_and_remedies(runs: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["diagnose", str(runs[1])])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # undo the table's line wrapping
    assert "100%" in output and "dead_relu" in output and "vanishing_gradients" in output
    assert "LeakyReLU" in output and "0.01" in output


@pytest.mark.parametrize("which", ["missing", "empty"])
def test_diagnose_a_bad_folder_is_one_line_exit_2(which: str, tmp_path: Path) -> None:
    target = tmp_path / "nope" if which == "missing" else tmp_path
    result = runner.invoke(app, ["diagnose", str(target)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert ("not found" if which == "missing" else "no diagnostics.jsonl") in lines[0]
