"""The do-no-harm guards bypass a learned stage that is worse than the stage before it."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.pipeline import FitReport, Funnel, fit_funnel
from funnelrec.pipeline.guards import _separation, _Slice, apply_guards, judge
from funnelrec.rank.ranker import Ranker

FAST = [
    "recall.channels.two_tower.train.epochs=1",
    "rank.train.loop.epochs=1",
    "rank.fusion.trials=3",
    "rank.train.health=false",
    "rank.model.kind=lightgbm",
]


@pytest.fixture(scope="module")
def sim() -> Dataset:
    data = simulate(SimulatorConfig.for_interactions(30_000, seed=4))
    return Dataset.build(data.interactions, data.items, data.users)


@pytest.fixture(scope="module")
def fitted(sim: Dataset) -> tuple[Funnel, FitReport]:
    return fit_funnel(load_config(overrides=FAST), sim, np.random.default_rng(0))


def _shuffled(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    labels = [c for c in frame.columns if c.startswith("label_")]
    order = rng.permutation(frame.height)
    return frame.with_columns(*[pl.Series(c, frame[c].to_numpy()[order]) for c in labels])


def test_every_stage_gets_a_recorded_decision(fitted: tuple[Funnel, FitReport]) -> None:
    funnel, report = fitted
    stages = [d.stage for d in report.guards]
    assert "rank" in stages and "rerank" in stages
    for decision in report.guards:
        assert decision.reason
        if not decision.reason.startswith("not judged"):
            assert decision.n_queries > 0 and decision.diff_low <= decision.diff_high
    assert funnel.fit_report is report


def test_a_reranker_that_breaks_the_loss_bound_is_bypassed(sim: Dataset) -> None:
    """MMR with lambda 0 ignores relevance entirely: far past the 5% loss bound."""
    config = load_config(overrides=[*FAST, "rerank.method=mmr", "rerank.lam=0.0"])
    funnel, report = fit_funnel(config, sim, np.random.default_rng(0))
    decision = next(d for d in report.guards if d.stage == "rerank")
    assert not decision.kept, decision.reason
    assert funnel.config.rerank.method == "rules"  # saved and served as rules only
    assert funnel.reranker is not None


def test_guards_can_be_switched_off(sim: Dataset) -> None:
    config = load_config(overrides=[*FAST, "guards.enabled=false", "recall.merge.tune=false"])
    funnel, report = fit_funnel(config, sim, np.random.default_rng(0))
    assert report.guards == () and funnel.ranker is not None


def test_guard_decisions_serialise(fitted: tuple[Funnel, FitReport]) -> None:
    _, report = fitted
    for decision in report.guards:
        row = decision.as_dict()
        assert set(row) == {f.name for f in dataclasses.fields(decision)}
    # The ranker's separation on the guard slice is reported, kept or not.
    rank = next(d for d in report.guards if d.stage == "rank")
    assert 0.5 < rank.detail["auc"] <= 1 and 0 < rank.detail["gauc"] <= 1


def test_the_default_preranker_is_fitted_judged_and_kept_only_when_it_passes(
    fitted: tuple[Funnel, FitReport],
) -> None:
    """rank.prerank is on by default: fitted, reported, and in the funnel iff its guard kept
    it."""
    funnel, report = fitted
    decision = next(d for d in report.guards if d.stage == "prerank")
    assert (funnel.preranker is not None) == decision.kept
    assert report.rank is not None and "prerank" in report.rank.stats


def test_a_ranker_trained_on_shuffled_labels_is_bypassed(
    sim: Dataset, fitted: tuple[Funnel, FitReport]
) -> None:
    """(Runs last among the tests of ``fitted``: it replaces the funnel's ranker.)"""
    config = load_config(overrides=FAST)
    funnel, report = fitted
    assert report.rank is not None
    data = report.rank.data
    rng = np.random.default_rng(1)
    noise = Ranker(config.rank, data.tasks).fit(
        sim, _shuffled(data.train, rng), _shuffled(data.valid, rng), data.log
    )
    funnel.set_ranker(noise, data.log)
    decisions = {d.stage: d for d in apply_guards(funnel, data, config, rng)}
    assert not decisions["rank"].kept, decisions["rank"].reason
    assert decisions["rank"].diff_high < 0
    trained = next(d for d in report.guards if d.stage == "rank")
    assert decisions["rank"].detail["gauc"] < trained.detail["gauc"]
    assert funnel.ranker is None and funnel.rank_log is None  # the merge order serves


def test_ranker_separation_ignores_cold_queries() -> None:
    """Cold users' candidates are served in merge order; their (negated-rank) values must not
    be pooled with the ranker's scores when the guard reports the ranker's AUC."""
    frame = pl.DataFrame({"query_id": [0, 0, 1, 1], "merged_rank": [1, 2, 1, 2]})
    group = frame["query_id"].to_numpy()
    part = _Slice(frame, group, np.array([1.0, 0.0, 0.0, 1.0]))
    scores = np.array([0.9, 0.1, 0.8, 0.2])  # right on warm query 0, wrong on cold query 1
    warm = _separation(part, scores, frozenset({1}))
    assert (warm["auc"], warm["gauc"], warm["n_positives"]) == (1.0, 1.0, 1)
    assert _separation(part, scores, frozenset())["gauc"] == 0.5  # pooled: query 1 inverted


def test_ranked_stages_are_judged_on_warm_queries_the_reranker_on_all(
    fitted: tuple[Funnel, FitReport],
) -> None:
    """Cold users are served the merge order whatever the ranker says: their queries would
    only add ties to the ranker's judgement. The re-ranker acts on every list."""
    decisions = {d.stage: d for d in fitted[1].guards}
    rank, rerank = decisions["rank"], decisions["rerank"]
    assert rank.reason.endswith("warm queries") and rank.detail["cold_queries"] > 0
    assert rank.n_queries + rank.detail["cold_queries"] == rerank.n_queries


def test_warm_judged_marks_the_labelled_queries_of_users_with_history() -> None:
    group = np.array([3, 3, 5, 5, 8, 8])
    part = _Slice(pl.DataFrame({"query_id": group}), group, np.array([1.0, 0, 0, 0, 0, 2]))
    # Query 5 has no labelled candidate, so ndcg() has no value for it.
    assert part.ndcg(np.zeros(6), 2).shape == (2,)
    assert part.warm_judged(frozenset({8})).tolist() == [True, False]


def test_a_tie_keeps_the_baseline_unless_a_loss_is_allowed() -> None:
    """NDCG 0 against 0 (positives that neither order reaches) is no evidence of a gain."""
    config = load_config()
    zeros = np.zeros(3)
    rng = np.random.default_rng(0)
    assert not judge("rank", "merge order", "ndcg@10", zeros, zeros, -0.01, config, rng).kept
    assert not judge("fusion", "uniform", "ndcg@10", zeros, zeros, 0.0, config, rng).kept
    assert judge("rerank", "ranked order", "ndcg@10", zeros, zeros, 0.05, config, rng).kept
    better = np.array([0.2, 0.1, 0.3])
    assert judge("rank", "merge order", "ndcg@10", better, zeros, -0.01, config, rng).kept


def test_a_ranker_must_beat_the_merge_order_beyond_noise() -> None:
    """A mean gain whose interval reaches below zero keeps the merge order (on MovieLens-100k
    random 8:1:1 such a ranker, +1.9% on 188 guard queries with the interval [-0.011,
    +0.020], cost 0.009 NDCG@10 on the test users)."""
    config = load_config()
    rng = np.random.default_rng(0)
    base = np.full(200, 0.5)
    noisy = base + np.where(np.arange(200) % 2 == 0, 0.3, -0.25)  # mean +0.025, spread 0.28
    ranker = judge(
        "rank", "merge order", "ndcg@10", noisy, base, -0.01, config, rng, beyond_noise=True
    )
    assert ranker.value > 1.01 * ranker.baseline_value
    assert ranker.diff_low < 0 < ranker.diff_high and not ranker.kept
    steady = base + 0.02
    kept = judge(
        "rank", "merge order", "ndcg@10", steady, base, -0.01, config, rng, beyond_noise=True
    )
    assert kept.kept
    # Tuned weights (fusion, merge) cost nothing more than their baseline: the mean decides.
    assert judge("fusion", "uniform", "ndcg@10", noisy, base, 0.0, config, rng).kept
