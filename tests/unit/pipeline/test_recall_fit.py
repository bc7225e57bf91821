"""``channel_fitter``: every recall channel fit of ``fit_funnel`` (the funnel's, the ranking
window's, the recall-tuning trials) goes through the fitter in effect (how ``train --engine
spark`` puts ItemCF on Spark), and the default comes back after the block."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.pipeline import fit_funnel, recall_tuning
from funnelrec.pipeline.recall_fit import channel_fitter, fit_channel, fit_on_this_machine
from funnelrec.recall.base import Retriever
from funnelrec.recall.registry import ChannelConfig


@pytest.fixture(scope="module")
def sim() -> Dataset:
    data = simulate(SimulatorConfig.for_interactions(12_000, seed=5))
    return Dataset.build(data.interactions, data.items, data.users)


def test_every_channel_fit_goes_through_the_fitter(
    sim: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recall_tuning, "GRIDS", {"itemcf": {"alpha": (0.25, 0.5)}})
    config = ExperimentConfig.model_validate(
        {
            "recall": {
                "channels": {"itemcf": {"kind": "itemcf"}, "popular": {"kind": "popular"}},
                "merge": {"quotas": {"itemcf": 200, "popular": 100}},
            },
            "rank": {"model": {"kind": "lightgbm", "n_estimators": 20}},
            "guards": {"enabled": False},
        }
    )
    calls: list[tuple[str, int]] = []
    earlier_as_of: dict[str, int | None] = {}

    def recording(
        channel: ChannelConfig,
        data: Dataset,
        rng: np.random.Generator,
        earlier: Retriever | None,
    ) -> Retriever:
        calls.append((channel.kind, data.as_of))
        if data.as_of == sim.as_of:
            earlier_as_of[channel.kind] = None if earlier is None else _as_of(earlier)
        return fit_on_this_machine(channel, data, rng, earlier)

    with channel_fitter(recording):
        _, report = fit_funnel(config, sim, np.random.default_rng(0))
    window_as_of = min(as_of for _, as_of in calls)
    assert window_as_of < sim.as_of  # the ranking window's funnel, fitted on earlier data
    itemcf_on_window = [c for c in calls if c == ("itemcf", window_as_of)]
    # The window's own fit plus one per tuning trial beyond the configured setting.
    (tuning,) = report.recall_tuning
    assert len(itemcf_on_window) == len(tuning.trials)
    assert ("popular", window_as_of) in calls
    # The funnel's own fit comes last, once per channel, with the tuned setting (no refit),
    # and each channel is handed its namesake from the window's funnel to start from.
    assert calls[-2:] == [("itemcf", sim.as_of), ("popular", sim.as_of)]
    assert calls.count(("itemcf", sim.as_of)) == 1
    assert earlier_as_of == {"itemcf": window_as_of, "popular": window_as_of}


def test_the_default_fitter_is_restored_after_the_block(sim: Dataset) -> None:
    def failing(
        channel: ChannelConfig, data: Dataset, rng: np.random.Generator, earlier: Retriever | None
    ) -> Retriever:
        raise RuntimeError("fitter used")

    config = ExperimentConfig.model_validate({}).recall.channels["popular"]
    with channel_fitter(failing), pytest.raises(RuntimeError, match="fitter used"):
        fit_channel(config, sim, np.random.default_rng(0))
    model = fit_channel(config, sim, np.random.default_rng(0))
    assert model.state()  # fitted by the default, single-machine fit


def _as_of(channel: Retriever) -> int:
    """The as-of time of the data ``channel`` was fitted on."""
    fitted_on = getattr(channel, "_fitted_on", None)
    assert fitted_on is not None
    return int(fitted_on.as_of)
