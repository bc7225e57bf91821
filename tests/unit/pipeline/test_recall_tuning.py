"""Channel settings chosen on the recall window (``recall.tune``)."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.pipeline import fit_funnel, recall_tuning
from funnelrec.recall.two_tower import TwoTowerConfig


@pytest.fixture(scope="module")
def sim() -> Dataset:
    data = simulate(SimulatorConfig.for_interactions(12_000, seed=5))
    return Dataset.build(data.interactions, data.items, data.users)


def _config(**recall: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "recall": {
                "channels": {"itemcf": {"kind": "itemcf"}, "popular": {"kind": "popular"}},
                "merge": {"quotas": {"itemcf": 200, "popular": 100}},
                **recall,
            },
            "rank": {"model": {"kind": "lightgbm", "n_estimators": 20}},
            "guards": {"enabled": False},
        }
    )


def test_the_best_setting_on_the_window_is_served_and_saved(
    sim: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recall_tuning, "GRIDS", {"itemcf": {"alpha": (0.25, 0.5)}})
    funnel, report = fit_funnel(_config(), sim, np.random.default_rng(0))
    (tuning,) = report.recall_tuning
    assert tuning.channel == "itemcf"
    assert [t["alpha"] for t in tuning.trials] == [0.75, 0.25, 0.5]  # configured first
    best = max(tuning.trials, key=lambda t: t["score"])
    assert tuning.chosen["alpha"] == best["alpha"]
    assert funnel.config.recall.channels["itemcf"].alpha == best["alpha"]
    assert funnel.channels["itemcf"].config.alpha == best["alpha"]
    assert "recall.tune" in report.timings_s


def test_a_spent_budget_keeps_the_configured_setting(
    sim: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recall_tuning, "GRIDS", {"itemcf": {"alpha": (0.25, 0.5)}})
    config = _config(tune_budget_s=1e-9)
    funnel, report = fit_funnel(config, sim, np.random.default_rng(0))
    (tuning,) = report.recall_tuning
    assert len(tuning.trials) == 1 and tuning.chosen == {"alpha": 0.75}
    assert funnel.config.recall.channels["itemcf"] == config.recall.channels["itemcf"]


def test_itemcf_and_ease_are_tuned_by_default_and_tuning_can_be_switched_off(sim: Dataset) -> None:
    assert ExperimentConfig().recall.tune == ("itemcf", "ease")
    _, report = fit_funnel(_config(tune=()), sim, np.random.default_rng(0))
    assert report.recall_tuning == ()


def test_settings_reach_nested_fields() -> None:
    config = recall_tuning._with(TwoTowerConfig(), {"train.epochs": 6})
    assert isinstance(config, TwoTowerConfig) and config.train.epochs == 6
    assert recall_tuning._current(config, ["train.epochs"]) == {"train.epochs": 6}
