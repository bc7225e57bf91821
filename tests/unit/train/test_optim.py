"""Weight decay only on weight matrices and embeddings: never on biases, norms, loss weights."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models import MMoEConfig, build_rank_model
from funnelrec.rank.models.config import MLPConfig
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.loop import train
from funnelrec.train.optim import make_optimizer, parameter_groups


class Net(nn.Module):
    """Linear -> LayerNorm -> PReLU -> BatchNorm -> Linear, with an embedding table."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.fc = nn.Linear(3, 4)
        self.ln = nn.LayerNorm(4)
        self.act = nn.PReLU()
        self.bn = nn.BatchNorm1d(4)
        self.out = nn.Linear(4, 1)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        h = self.fc(self.emb(batch["ids"]))
        return {"y": self.out(self.bn(self.act(self.ln(h)))).squeeze(-1)}


def zero_loss(outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every gradient exactly 0 (not None): only weight decay can move a parameter."""
    return {"loss": outputs["y"].sum() * 0.0}


def batches(epoch: int) -> list[dict[str, Tensor]]:
    return [{"ids": torch.tensor([0, 1, 2, 3, 4, 1])}] * 5


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_zero_gradients_with_weight_decay_shrink_weights_only(optimizer: str) -> None:
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():  # non-zero everywhere, so that any decay would show
        for p in model.parameters():
            p.add_(0.5)
    before = snapshot(model)
    config = TrainLoopConfig(optimizer=optimizer, lr=0.01, weight_decay=0.5, clip_grad_norm=None)
    train(model, zero_loss, batches, config)
    after = snapshot(model)
    for name in ("emb.weight", "fc.weight", "out.weight"):
        assert after[name].abs().sum() < before[name].abs().sum(), name  # shrunk
    for name in ("fc.bias", "out.bias", "ln.weight", "ln.bias", "act.weight", "bn.weight"):
        assert torch.equal(after[name], before[name]), name  # untouched


def test_loss_parameters_and_batched_expert_biases_are_not_decayed() -> None:
    spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click", "buy"))
    small = MLPConfig(hidden=(8,))
    model = build_rank_model(MMoEConfig(n_experts=2, expert=small, tower=small), spec)
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=("click", "buy"), uncertainty=True))
    groups = {g["name"]: g for g in parameter_groups(model, 0.1, loss)}
    decayed = {id(p) for p in groups["decay"]["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0
    assert loss.log_var is not None and id(loss.log_var) not in decayed
    assert any(id(p) == id(loss.log_var) for p in groups["no_decay"]["params"])
    for key, name in names.items():
        # ExpertBank biases are [N, out]: 2-d, still biases.
        assert (key in decayed) == name.endswith("weight"), name
    total = sum(len(g["params"]) for g in groups.values())
    assert total == len(list(model.parameters())) + 1  # every parameter once, plus log_var
    optimizer = make_optimizer(model, TrainLoopConfig(weight_decay=0.1), loss)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def test_uncertainty_log_variance_is_not_pulled_to_zero() -> None:
    spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 2, 4, 1, 2, ("click",))
    model = build_rank_model(MMoEConfig(n_experts=2), spec)
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=("click",), uncertainty=True, init_log_var=1.0))
    optimizer = make_optimizer(model, TrainLoopConfig(optimizer="adamw", weight_decay=0.9), loss)
    assert loss.log_var is not None
    loss.log_var.grad = torch.zeros_like(loss.log_var)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert loss.log_var.detach().tolist() == [1.0]


def test_frozen_and_shared_parameters() -> None:
    model = Net()
    model.fc.requires_grad_(False)
    model.out.weight = model.fc.weight  # tied (and frozen): not optimised at all
    groups = parameter_groups(model, 0.1)
    params = [p for g in groups for p in g["params"]]
    assert len(params) == len({id(p) for p in params})
    assert all(p.requires_grad for p in params)
    assert not any(p is model.fc.weight for p in params)
    with pytest.raises(ValueError, match="empty parameter list"):
        make_optimizer(nn.Linear(2, 2).requires_grad_(False), TrainLoopConfig())
