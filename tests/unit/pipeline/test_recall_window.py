"""The recall window follows the configured split: the time tail for a temporal split, the
same hold-out applied to the training data for leave-last-out and random splits."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.pipeline.rank_samples import (
    _guard_split,
    build_rank_data,
    labelled_queries,
    recall_window,
    time_order,
)

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


def _queries_of(frame: pl.DataFrame) -> set[int]:
    return set(frame["query_id"].unique().to_list())


def _capped(cap: int | None, guard_fraction: float = 0.2) -> ExperimentConfig:
    config = _config("temporal").model_dump()
    config["rank"]["samples"].update(
        max_train_samples=cap, min_task_positives=1, guard_fraction=guard_fraction
    )
    return ExperimentConfig.model_validate(config)


def test_capped_samples_recall_only_what_the_cap_needs(
    sim: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = recall_window(sim, _capped(None), np.random.default_rng(0))
    recalled: list[int] = []
    original = type(window.funnel).candidates

    def counting(self, queries, **kwargs):  # type: ignore[no-untyped-def]
        recalled.append(len(queries))
        return original(self, queries, **kwargs)

    monkeypatch.setattr(type(window.funnel), "candidates", counting)
    cap = 3000
    data = build_rank_data(sim, _capped(cap), np.random.default_rng(0), window)
    n_window = len(window.queries)
    assert sum(recalled) < n_window  # the cap was reached before every query was recalled
    per_query = data.train.group_by("query_id").len()["len"].max()
    assert cap <= data.train.height + data.valid.height <= cap + per_query  # whole queries
    assert data.guard.height <= cap + per_query
    # The guard is held apart from the training and validation queries.
    guard = _queries_of(data.guard)
    assert guard.isdisjoint(_queries_of(data.train) | _queries_of(data.valid))

    recalled.clear()
    full = build_rank_data(sim, _capped(None), np.random.default_rng(0), window)
    assert sum(recalled) == n_window
    trained = _queries_of(full.train) | _queries_of(full.valid)
    guard_all = set(window.queries.query_id.tolist()) - trained
    # The guard keeps the queries it can judge: those with a labelled candidate.
    assert _queries_of(full.guard) <= guard_all and full.guard.height > 0
    labels = [c for c in full.guard.columns if c.startswith("label_")]
    positives = full.guard.group_by("query_id").agg(pl.sum_horizontal(labels).sum().alias("n"))
    assert (positives["n"] > 0).all()
    # The guard part is smaller than the cap here, so it is all of the guard's queries.
    assert data.guard.height < cap and guard == _queries_of(full.guard)


def test_no_guard_fraction_leaves_an_empty_guard_part(sim: Dataset) -> None:
    config = _capped(3000, guard_fraction=0.0)
    data = build_rank_data(sim, config, np.random.default_rng(0))
    assert data.guard.height == 0 and data.guard.columns == data.train.columns
    assert data.train.height > 0


def test_time_order_breaks_ties_at_random() -> None:
    timestamp = np.array([5, 1, 5, 3, 5, 5])
    orders = [time_order(timestamp, np.random.default_rng(seed)) for seed in range(6)]
    for order in orders:
        assert (np.diff(timestamp[order]) >= 0).all()  # earliest to latest
    assert len({tuple(o[2:]) for o in orders}) > 1  # the four at time 5: no fixed order


def test_a_temporal_guard_is_not_the_newest_users(sim: Dataset) -> None:
    """Every query of a temporal window is asked at its start. Taken as "the latest" by id,
    the guard was the highest ids: the newest users, more often without history."""
    window = recall_window(sim, _capped(None), np.random.default_rng(0))
    cold = window.queries.history_len == 0
    guards = [_guard_split(window.queries, 0.2, np.random.default_rng(s))[1] for s in range(8)]
    assert len({frozenset(g.tolist()) for g in guards}) == len(guards)
    highest = np.argsort(window.queries.query_id)[-guards[0].size :]
    assert np.mean([cold[g].mean() for g in guards]) < cold[highest].mean()


def test_labelled_queries_keeps_whole_queries_with_a_positive() -> None:
    samples = pl.DataFrame(
        {
            "query_id": [1, 1, 2, 2, 3],
            "item_idx": [10, 11, 10, 12, 13],
            "label_click": [0, 1, 0, 0, 0],
            "label_order": [0, 0, 0, 0, 1],
        }
    )
    kept = labelled_queries(samples)
    assert kept["query_id"].to_list() == [1, 1, 3]
    assert labelled_queries(samples.drop("label_click", "label_order")).height == 0
