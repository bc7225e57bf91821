"""The recall window follows the configured split: the time tail for a temporal split, the
same hold-out applied to the training data for leave-last-out and random splits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.pipeline.rank_samples import build_rank_data, recall_window

KEYS = ["user_id", "item_id", "timestamp"]


@pytest.fixture(scope="module")
def sim() -> Dataset:
    data = simulate(SimulatorConfig.for_interactions(12_000, seed=6))
    return Dataset.build(data.interactions, data.items, data.users)


def _config(split: str) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "split": {"kind": split},
            "recall": {
                "channels": {"itemcf": {"kind": "itemcf"}, "popular": {"kind": "popular"}},
                "merge": {"quotas": {"itemcf": 100, "popular": 50}},
            },
        }
    )


def test_a_temporal_window_queries_everyone_at_its_start(sim: Dataset) -> None:
    window = recall_window(sim, _config("temporal"), np.random.default_rng(0))
    assert (window.queries.timestamp == window.start).all()
    assert window.feature_log is None
    assert window.events["timestamp"].min() >= window.start


def test_leave_last_out_holds_out_each_users_last_positive(sim: Dataset) -> None:
    window = recall_window(sim, _config("leave_last_out"), np.random.default_rng(0))
    times = window.queries.timestamp
    assert np.unique(times).shape[0] > 1  # each user at the time of their own last item
    held = window.events.select("user_id", "item_id").unique()
    earlier = window.earlier.positives.select("user_id", "item_id")
    assert held.join(earlier, on=["user_id", "item_id"], how="inner").height == 0
    # The held-out rows are not in the log the samples' features read.
    assert window.feature_log is not None
    assert window.feature_log.height < sim.interactions.height
    # Each user's history stops before their held-out item.
    last = window.events.group_by("user_id").agg(pl.col("timestamp").min()).sort("user_id")
    np.testing.assert_array_equal(times, last["timestamp"].to_numpy())


def test_random_hold_out_feeds_rank_samples(sim: Dataset) -> None:
    config = _config("random_ratio")
    window = recall_window(sim, config, np.random.default_rng(0))
    assert window.feature_log is not None
    removed = sim.interactions.join(window.feature_log.select(KEYS), on=KEYS, how="anti")
    assert removed.height > 0
    data = build_rank_data(sim, config, np.random.default_rng(0), window)
    # The features of the window's samples read the log without the held-out rows.
    assert data.log.height == window.feature_log.height
    labelled = data.train.filter(pl.col("label_click") > 0)
    assert labelled.height > 0
