"""The health monitor sees every parameterised block, not only ``nn.Linear``: the batched
experts, gates and towers of an MMoE (``ExpertBank``, no ``nn.Linear`` inside) and the
embedding table get gradient norms, their activations per-expert dead-unit statistics, and the
vanishing-gradient rule fires on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models import MMoEConfig, build_rank_model
from funnelrec.rank.models.config import MLPConfig
from funnelrec.rank.modules.moe import ExpertBank
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.diagnostics import (
    HealthConfig,
    HealthMonitor,
    apply_remedy,
    read_records,
    summarise_run,
)
from funnelrec.train.loop import train

SPEC = FeatureSpec(("user", "item", "category"), (20, 41, 9), 2, 4, 1, 2, ("click", "buy"))
TOWER = MLPConfig(hidden=(8,))


def batches(epoch: int, n: int = 1024, size: int = 256) -> list[dict[str, Tensor]]:
    """A planted signal: click on even items and dense[0]; buy = click AND dense[1] > 0."""
    rng = np.random.default_rng(epoch)
    sparse = np.stack([rng.integers(1, c, n) for c in SPEC.sparse_cardinalities], axis=1)
    dense = rng.normal(size=(n, SPEC.n_dense)).astype(np.float32)
    logit = np.where(sparse[:, 1] % 2 == 0, 1.5, -1.5) + dense[:, 0]
    click = rng.random(n) < 1 / (1 + np.exp(-logit))
    buy = click & (dense[:, 1] > 0)
    data = {
        "sparse": torch.from_numpy(sparse),
        "dense": torch.from_numpy(dense),
        "label_click": torch.from_numpy(click.astype(np.float32)),
        "label_buy": torch.from_numpy(buy.astype(np.float32)),
    }
    return [{k: v[i : i + size] for k, v in data.items()} for i in range(0, n, size)]


def fit(model: torch.nn.Module, out_dir: Path | None = None, epochs: int = 2) -> HealthMonitor:
    monitor = HealthMonitor(HealthConfig(every_n_steps=1, out_dir=out_dir, plots=False))
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=SPEC.tasks))
    train(model, loss, batches, TrainLoopConfig(epochs=epochs, lr=3e-3), callbacks=[monitor])
    return monitor


def bank_of(model: torch.nn.Module, layer: str) -> torch.nn.Module:
    """The module holding ``layer`` (``experts.layers.0`` -> ``experts``)."""
    return model.get_submodule(layer.split(".layers.")[0])


def test_a_healthy_mmoe_records_every_block(tmp_path: Path) -> None:
    torch.manual_seed(0)
    expert = MLPConfig(hidden=(16, 8))
    model = build_rank_model(MMoEConfig(n_experts=3, expert=expert, tower=TOWER), SPEC)
    monitor = fit(model, tmp_path)
    last = monitor.epochs[-1]
    assert list(last.grad_norms) == [
        "input.embedding.table",
        "experts.layers.0",
        "experts.layers.2",
        "gates.layers.0",
        "towers.layers.0",
        "towers.layers.2",
    ]
    assert all(0 < g < 10 for g in last.grad_norms.values())
    assert monitor.findings == []
    # Activations after a batched layer: one unit per expert and width, fed by that layer.
    act = last.activations["experts.layers.1"]
    assert act.input_layer == "experts.layers.0" and act.units == 3 * 16
    assert last.activations["towers.layers.1"].units == 2 * 8

    records = read_records(tmp_path / "diagnostics.jsonl")
    begin = records[0]
    assert begin["linear"] == []  # an MMoE has no nn.Linear: the old monitor saw nothing
    assert begin["layers"]["experts.layers.0"] == "_BankLayer"
    assert begin["layers"]["input.embedding.table"] == "Embedding"
    step = next(r for r in records if r["type"] == "step")
    assert set(step["layers"]) == set(last.grad_norms)
    summary = summarise_run(tmp_path)  # what `funnelrec diagnose` prints
    assert summary.healthy
    rows = {row.name: row for row in summary.layers}
    assert set(rows) == set(last.grad_norms)
    assert rows["experts.layers.0"].activation == "experts.layers.1"
    assert rows["experts.layers.0"].grad_norm is not None


def test_vanishing_gradients_in_the_experts_are_found() -> None:
    # Deep sigmoid experts: each layer scales the gradient by <= 1/4, so after 8 of them the
    # first expert layer barely learns, while the gates and the towers learn normally.
    torch.manual_seed(0)
    deep = MLPConfig(hidden=(16,) * 8, activation="sigmoid")
    model = build_rank_model(MMoEConfig(n_experts=2, expert=deep, tower=TOWER), SPEC)
    monitor = fit(model)
    (finding,) = [f for f in monitor.findings if f.kind == "vanishing_gradients"]
    assert finding.layer is not None and isinstance(bank_of(model, finding.layer), ExpertBank)
    assert finding.layer == "experts.layers.0" and finding.severity == "warning"
    norms = monitor.epochs[-1].grad_norms
    assert norms["experts.layers.0"] < 1e-3 * max(norms.values())
    assert norms["towers.layers.0"] > 1e-2 and norms["gates.layers.0"] > 1e-3
    assert "'experts.layers.0'" in finding.message
    # Its remedy names no layer apply_remedy cannot re-initialise (a bank is not nn.Linear).
    fixed = apply_remedy(TrainLoopConfig(), model, monitor.findings)
    assert fixed.lr == TrainLoopConfig().lr


def test_dead_experts_show_in_the_dead_fraction() -> None:
    torch.manual_seed(0)
    expert = MLPConfig(hidden=(16,))
    model = build_rank_model(MMoEConfig(n_experts=3, expert=expert, tower=TOWER), SPEC)
    first = model.get_submodule("experts.layers.0")
    with torch.no_grad():
        first.bias[:2].fill_(-100.0)  # experts 0 and 1: every unit dead; expert 2 healthy
    monitor = fit(model, epochs=1)
    act = monitor.epochs[-1].activations["experts.layers.1"]
    # Per member: 32 of 48 units dead. Pooled over the members (unit = width) none would be.
    assert act.units == 3 * 16
    assert 2 / 3 <= act.dead_fraction < 0.8
    dead = [f for f in monitor.findings if f.kind == "dead_relu"]
    assert [f.layer for f in dead] == ["experts.layers.1"]
    assert "layers" not in dead[0].remedy  # not an nn.Linear: advice only
    apply_remedy(TrainLoopConfig(), model, dead)  # does not raise
