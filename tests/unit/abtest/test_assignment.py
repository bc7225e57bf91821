"""Hash assignment: deterministic, exclusive within a layer, independent across layers, arms
split by weight and stable when an experiment grows; bad files are one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from funnelrec.abtest.assignment import ExperimentPlan
from funnelrec.errors import ConfigError

PLAN = {
    "layers": [
        {
            "name": "rerank",
            "experiments": [
                {"name": "dpp", "buckets": [0, 400], "arms": {"control": 1, "theta": 1}},
                {"name": "mmr", "buckets": [400, 600], "arms": {"control": 1, "lam": 3}},
            ],
        },
        {
            "name": "rank",
            "experiments": [{"name": "like", "buckets": [0, 1000], "arms": {"off": 1, "on": 1}}],
        },
    ]
}
USERS = [f"u{i}" for i in range(20_000)]


def test_assignment_is_deterministic_exclusive_and_split_by_weight() -> None:
    plan = ExperimentPlan.model_validate(PLAN)
    first = [plan.assign(u) for u in USERS]
    assert first[:50] == [plan.assign(u) for u in USERS[:50]]
    rerank = [a.get("rerank") for a in first]
    share = {name: np.mean([r is not None and r.experiment == name for r in rerank])
             for name in ("dpp", "mmr")}  # fmt: skip
    assert share["dpp"] == pytest.approx(0.4, abs=0.015)
    assert share["mmr"] == pytest.approx(0.2, abs=0.015)
    assert np.mean([r is None for r in rerank]) == pytest.approx(0.4, abs=0.015)
    lam = [r.arm == "lam" for r in rerank if r is not None and r.experiment == "mmr"]
    assert np.mean(lam) == pytest.approx(0.75, abs=0.03)
    assert all(a["rank"].experiment == "like" for a in first)  # full-traffic layer


def test_layers_are_independent() -> None:
    plan = ExperimentPlan.model_validate(PLAN)
    table = np.zeros((2, 2))
    for user in USERS:
        a = plan.assign(user)
        if a.get("rerank") is not None and a["rerank"].experiment == "dpp":
            table[a["rerank"].arm == "theta", a["rank"].arm == "on"] += 1
    assert stats.chi2_contingency(table).pvalue > 0.01


def test_growing_an_experiment_keeps_its_users_arms() -> None:
    small = ExperimentPlan.model_validate(PLAN)
    grown_dict = {"layers": [dict(PLAN["layers"][0]), PLAN["layers"][1]]}
    grown_dict["layers"][0]["experiments"] = [
        {"name": "dpp", "buckets": [0, 600], "arms": {"control": 1, "theta": 1}}
    ]
    grown = ExperimentPlan.model_validate(grown_dict)
    for user in USERS[:3000]:
        before = small.assign(user).get("rerank")
        if before is not None and before.experiment == "dpp":
            assert grown.assign(user)["rerank"].arm == before.arm


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"name": "x", "experiments": [
            {"name": "a", "buckets": [0, 500], "arms": {"c": 1, "t": 1}},
            {"name": "b", "buckets": [400, 800], "arms": {"c": 1, "t": 1}}]}], "overlap"),
        ([{"name": "x", "experiments": [
            {"name": "a", "buckets": [0, 1001], "arms": {"c": 1, "t": 1}}]}], "buckets"),
        ([{"name": "x", "experiments": [
            {"name": "a", "buckets": [0, 10], "arms": {"c": 1, "t": 0}}]}], "positive"),
        ([{"name": "x"}, {"name": "x"}], "duplicate layer"),
    ],
)  # fmt: skip
def test_invalid_plans_are_refused(layers: list, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExperimentPlan.model_validate({"layers": layers})


def test_experiments_file_errors_are_one_config_error(tmp_path: Path) -> None:
    good = tmp_path / "experiments.toml"
    good.write_text(
        '[[layers]]\nname = "rerank"\n[[layers.experiments]]\nname = "dpp"\n'
        "buckets = [0, 500]\narms = { control = 1, theta = 1 }\n"
    )
    assert ExperimentPlan.from_toml(good).layers[0].experiments[0].name == "dpp"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[layers]]\nname = "x"\nexperiments = "nope"\n')
    with pytest.raises(ConfigError, match="bad.toml"):
        ExperimentPlan.from_toml(bad)
    with pytest.raises(ConfigError, match="missing.toml"):
        ExperimentPlan.from_toml(tmp_path / "missing.toml")
