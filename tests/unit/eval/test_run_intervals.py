"""A small run writes the bootstrap intervals into metrics.json, reproducibly."""

import json

import pytest

from funnelrec.config import load_config
from funnelrec.data.io import RawTables
from funnelrec.data.simulator import SimulatedData, SimulatorConfig, simulate
from funnelrec.eval.protocol import run_experiment
from funnelrec.eval.run import run_tables

pytestmark = pytest.mark.slow  # three small funnel runs, about a minute on two cores

FAST = [
    "recall.channels.two_tower.train.epochs=1",
    "rank.enabled=false",
    "eval.latency_requests=0",
    "eval.rerank_sweep_queries=0",
    "eval.ks=[5, 20]",
]


@pytest.fixture(scope="module")
def sim() -> SimulatedData:
    return simulate(SimulatorConfig.for_interactions(10_000, seed=0))


@pytest.fixture(scope="module")
def metrics(sim: SimulatedData, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("run")
    tables = RawTables(sim.interactions, sim.items, sim.users)
    run_tables(tables, out, load_config(overrides=FAST))
    loaded: dict = json.loads((out / "metrics.json").read_text())
    return loaded


def test_metrics_json_has_an_interval_for_every_list(metrics: dict) -> None:
    intervals = metrics["intervals"]
    assert intervals["n_queries"] == metrics["split"]["n_queries"] > 0
    assert intervals["level"] == 0.95 and intervals["n_boot"] == 1000
    assert set(intervals["lists"]) == set(metrics["recall"])
    for name, values in intervals["lists"].items():
        for metric in ("recall@5", "ndcg@5", "recall@20", "ndcg@20"):
            low, high = values[metric]
            assert low <= metrics["recall"][name][metric] <= high


def test_metrics_json_has_the_final_lists_paired_differences(metrics: dict) -> None:
    intervals = metrics["intervals"]
    final = intervals["final"]
    assert final == "reranked"  # the re-ranker runs even without a ranker
    assert set(intervals["paired"]) == set(metrics["recall"]) - {final}
    for other, diffs in intervals["paired"].items():
        assert set(diffs) == {"ndcg@5", "recall@20"}  # no K = 10 / 50 in this run
        for metric, diff in diffs.items():
            expected = metrics["recall"][final][metric] - metrics["recall"][other][metric]
            assert diff["mean"] == pytest.approx(expected, abs=1e-12)
            assert diff["low"] <= diff["mean"] <= diff["high"]


def test_intervals_are_seeded_and_can_be_switched_off(sim: SimulatedData) -> None:
    interactions, items = sim.interactions, sim.items
    config = load_config(overrides=FAST)
    first = run_experiment(interactions, items, None, config)
    again = run_experiment(interactions, items, None, config)
    assert first.metrics["intervals"] == again.metrics["intervals"]
    assert set(first.per_query) == set(first.metrics["recall"])
    assert first.query_users is not None
    assert first.query_users.len() == first.metrics["split"]["n_queries"]
    off = run_experiment(
        interactions, items, None, load_config(overrides=[*FAST, "eval.interval_resamples=0"])
    )
    assert "intervals" not in off.metrics
