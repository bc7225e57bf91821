"""The window's fit and guard queries that channel and merge tuning score on."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.pipeline.rank_samples import RecallWindow, recall_window
from funnelrec.pipeline.window_truth import window_parts


def _config(tune_queries: int | None) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "recall": {
                "channels": {"itemcf": {"kind": "itemcf"}, "popular": {"kind": "popular"}},
                "merge": {"quotas": {"itemcf": 100, "popular": 50}},
                "tune_queries": tune_queries,
            },
        }
    )


@pytest.fixture(scope="module")
def window() -> RecallWindow:
    data = simulate(SimulatorConfig.for_interactions(12_000, seed=6))
    dataset = Dataset.build(data.interactions, data.items, data.users)
    return recall_window(dataset, _config(None), np.random.default_rng(0))


def test_the_fit_queries_are_a_seeded_sample_and_the_guard_is_whole(window: RecallWindow) -> None:
    parts = window_parts(window, _config(None))
    assert parts is not None
    fit, guard = parts
    assert len(fit.queries) > 40
    sampled = window_parts(window, _config(40))
    assert sampled is not None
    ids = sampled[0].queries.query_id
    assert ids.shape[0] == 40 and (np.diff(ids) > 0).all()
    assert set(ids.tolist()) < set(fit.queries.query_id.tolist())
    np.testing.assert_array_equal(sampled[1].queries.query_id, guard.queries.query_id)
    # The truth follows the sampled queries.
    assert sampled[0].truth_ptr.shape[0] == 41
    assert sampled[0].truth_ptr[-1] == sampled[0].truth_idx.shape[0]
    again = window_parts(window, _config(40))
    assert again is not None
    np.testing.assert_array_equal(again[0].queries.query_id, ids)  # seeded: the same sample
