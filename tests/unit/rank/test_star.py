"""STAR: star-topology layers, partitioned normalisation, the auxiliary network, and the
model built without a scenario field."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models import STARConfig, build_rank_model
from funnelrec.rank.models.star import STAR
from funnelrec.rank.modules.config import MLPConfig
from funnelrec.rank.modules.star import PartitionedNorm, ScenarioPartition, StarLinear, StarMLP

SPEC = FeatureSpec(("u", "i", "c", "scenario"), (5, 7, 3, 4), 3, 0, 1, 2, ("click", "order"))


def _batch(scenarios: list[int]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = len(scenarios)
    sparse = torch.stack(
        [
            torch.randint(0, 5, (n,), generator=gen),
            torch.randint(0, 7, (n,), generator=gen),
            torch.randint(0, 3, (n,), generator=gen),
            torch.tensor(scenarios),
        ],
        dim=1,
    )
    return {"sparse": sparse, "dense": torch.randn(n, 3, generator=gen)}


def test_star_forward_backward_reaches_shared_and_present_scenarios() -> None:
    model = build_rank_model(STARConfig(star=MLPConfig(hidden=(8, 4))), SPEC)
    assert isinstance(model, STAR) and model.n_scenarios == 4
    out = model(_batch([1, 1, 2, 2, 1, 2]))
    assert set(out) == {"click", "order"} and out["click"].shape == (6,)
    (out["click"].sum() + out["order"].sum()).backward()
    first = model.star.layers[0]
    assert isinstance(first, StarLinear)
    assert first.shared.weight.grad is not None and first.shared.weight.grad.abs().sum() > 0
    per_scenario = first.scenario_weight.grad.abs().sum(dim=(1, 2))
    assert per_scenario[1] > 0 and per_scenario[2] > 0
    assert per_scenario[0] == 0 and per_scenario[3] == 0  # absent from the batch
    assert model.aux is not None
    assert model.aux_embedding.grad is not None
    assert model.aux_embedding.grad[[1, 2]].abs().sum() > 0
    assert model.aux_embedding.grad[[0, 3]].abs().sum() == 0


def test_star_layer_is_shared_times_scenario_weights() -> None:
    layer = StarLinear(3, 2, n_scenarios=2, activation="linear")
    with torch.no_grad():
        layer.scenario_weight[1].fill_(2.0)
        layer.scenario_bias[1].fill_(0.5)
    x = torch.randn(4, 3)
    shared = torch.nn.functional.linear(x, layer.shared.weight, layer.shared.bias)
    torch.testing.assert_close(layer(0, x), shared)  # neutral start: the shared layer
    expected = torch.nn.functional.linear(x, 2 * layer.shared.weight, layer.shared.bias + 0.5)
    torch.testing.assert_close(layer(1, x), expected)


def test_partitioned_norm_keeps_statistics_per_scenario() -> None:
    norm = PartitionedNorm(2, n_scenarios=3, momentum=1.0)
    scenario = torch.tensor([1, 1, 1, 2, 2, 2])
    x = torch.tensor(
        [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [100.0, -5.0], [110.0, -6.0], [120.0, -7.0]]
    )
    part = ScenarioPartition(scenario, 3)
    out = part.join(norm(part.split(x), x))
    # each scenario is normalised with its own batch statistics
    for s in (1, 2):
        rows = out[scenario == s]
        torch.testing.assert_close(rows.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.running_mean[1], torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(norm.running_mean[2], torch.tensor([110.0, -6.0]))
    torch.testing.assert_close(norm.running_mean[0], x.mean(0))  # code 0: the population
    norm.eval()  # inference reads the running statistics of each row's scenario
    probe = torch.tensor([[1.0, 2.0], [110.0, -6.0]])
    part = ScenarioPartition(torch.tensor([1, 2]), 3)
    torch.testing.assert_close(
        part.join(norm(part.split(probe), probe)), torch.zeros(2, 2), atol=1e-5, rtol=0
    )


def test_star_without_a_scenario_field_is_one_scenario() -> None:
    spec = FeatureSpec(("u", "i", "c"), (5, 7, 3), 3, 0, 1, 2, ("click",))
    model = STAR(STARConfig(star=MLPConfig(hidden=(8,))), spec)
    assert model.n_scenarios == 1 and model.scenario_field is None
    batch = _batch([0, 0, 0])
    batch["sparse"] = batch["sparse"][:, :3]
    out = model(batch)["click"]
    out.sum().backward()
    assert out.shape == (3,) and torch.isfinite(out).all()


def test_star_partition_leaves_row_order_alone() -> None:
    model = STAR(STARConfig(star=MLPConfig(hidden=(8,))), SPEC).eval()
    batch = _batch([3, 1, 2, 1, 3, 0])
    whole = model(batch)["click"]
    single = torch.cat(
        [model({k: v[i : i + 1] for k, v in batch.items()})["click"] for i in range(6)]
    )
    torch.testing.assert_close(whole, single)


def test_star_config_errors() -> None:
    with pytest.raises(ValidationError, match="batch_norm"):
        STARConfig(star=MLPConfig(batch_norm=True))
    with pytest.raises(ValueError, match="batch_norm"):
        StarMLP(4, MLPConfig(batch_norm=True), 2)
    with pytest.raises(IndexError, match="scenario codes"):
        ScenarioPartition(torch.tensor([0, 5]), 3)
    assert STARConfig(auxiliary=None).auxiliary is None
