"""The pre-ranker in the funnel: fitted after the ranker, cutting what the ranker scores on the
one serving path, saved with the artifact and judged by its guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from funnelrec.config import load_config
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.metrics.rank import gauc, query_positions
from funnelrec.pipeline import FitReport, Funnel, fit_funnel
from funnelrec.pipeline.guards import apply_guards, prerank_decision
from funnelrec.pipeline.persist import load_recommender, save_recommender
from funnelrec.pipeline.prerank_fit import window_scores
from funnelrec.pipeline.rank_samples import RankData
from funnelrec.rank.fusion import fuse
from funnelrec.rank.prerank import PRERANK_COLUMN, PreRanker, teacher_kept
from funnelrec.recall.base import Queries

KEEP = 50
OVERRIDES = [
    "recall.channels.two_tower.train.epochs=1",
    "rank.train.health=false",
    "rank.fusion.trials=3",
    "rank.model.kind=lightgbm",
    "rank.prerank.enabled=true",
    f"rank.prerank.keep={KEEP}",
    "guards.enabled=false",  # the ranker stays, whatever its guard would say on this small log
]


@pytest.fixture(scope="module")
def sim() -> Dataset:
    data = simulate(SimulatorConfig.for_interactions(20_000, seed=4))
    return Dataset.build(data.interactions, data.items, data.users)


@pytest.fixture(scope="module")
def config() -> ExperimentConfig:
    return load_config(overrides=OVERRIDES)


@pytest.fixture(scope="module")
def fitted(sim: Dataset, config: ExperimentConfig) -> tuple[Funnel, FitReport]:
    return fit_funnel(config, sim, np.random.default_rng(0))


def _rank_data(report: FitReport) -> RankData:
    assert report.rank is not None
    return report.rank.data


def _warm_queries(funnel: Funnel, sim: Dataset, n: int = 30) -> Queries:
    users = sim.positives["user_idx"].unique().sort().head(n)
    return funnel.queries(funnel.user_vocab.decode(users.to_numpy()), funnel.as_of)


def _guard_scores(funnel: Funnel, data: RankData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ranker's fused scores, the pre-ranker's scores and the query ids of the warm
    queries' guard samples (held out from the ranker and the pre-ranker)."""
    assert funnel.ranker is not None and funnel.preranker is not None
    guard = data.guard.filter(~pl.col("query_id").is_in(sorted(data.cold_queries)))
    labels = [c for c in guard.columns if c.startswith("label_")]
    scored = funnel.ranker.score(guard.drop(labels), data.log)
    probs = {t: scored[f"p_{t}"].to_numpy() for t in funnel.ranker.tasks}
    pre = window_scores(funnel.preranker, guard, data.log, None)
    return fuse(probs, funnel.ranker.fusion_config), pre, guard["query_id"].to_numpy()


def test_fitted_after_the_ranker_and_reported(fitted: tuple[Funnel, FitReport]) -> None:
    funnel, report = fitted
    assert funnel.ranker is not None and funnel.preranker is not None
    assert funnel.preranker.config.keep == KEEP
    assert report.rank is not None
    stats = report.rank.stats["prerank"]
    assert stats["train_samples"] > 0 and stats["valid_queries_cut"] > 0
    assert "fit.prerank" in report.timings_s


def test_orders_held_out_candidates_like_the_ranker(fitted: tuple[Funnel, FitReport]) -> None:
    """On the guard slice (neither model saw it) the cut keeps most of the ranker's top 10,
    far above chance (about keep / candidates = 0.25)."""
    funnel, report = fitted
    teacher, student, group = _guard_scores(funnel, _rank_data(report))
    share, n_cut = teacher_kept(student, teacher, group, KEEP, 10)
    sizes = np.bincount(np.unique(group, return_inverse=True)[1])
    chance = float(np.mean(np.minimum(KEEP / sizes, 1.0)))
    assert n_cut > 0 and chance < 0.5
    assert share > chance + 0.3, (share, chance)
    top = query_positions(group, teacher) < 20
    assert gauc(top, student, group).value > 0.7


def test_the_ranker_scores_exactly_keep_per_query(
    fitted: tuple[Funnel, FitReport], sim: Dataset
) -> None:
    funnel, _ = fitted
    queries = _warm_queries(funnel, sim)
    rec = funnel.run(queries, k=10)
    assert rec.scored is not None and "rank.prerank" in rec.timings_s
    scored = rec.scored
    per_query = scored.group_by("query_id").agg(
        pl.col("score").is_not_null().sum().alias("ranked"),
        pl.col(PRERANK_COLUMN).is_not_null().sum().alias("judged"),
        pl.len().alias("rows"),
    )
    assert (per_query["ranked"] == per_query["judged"].clip(upper_bound=KEEP)).all()
    assert (per_query["judged"] > KEEP).any()
    # Ranks are 1..n per query, the ranked candidates first, then the cut ones.
    for (_,), part in scored.sort("query_id", "rank").group_by("query_id"):
        assert part["rank"].to_list() == list(range(1, part.height + 1))
        ranked = part["score"].is_not_null().to_numpy()
        assert not (np.diff(ranked.astype(int)) > 0).any()


def test_keeping_everything_changes_nothing(fitted: tuple[Funnel, FitReport], sim: Dataset) -> None:
    """The disabled path (no pre-ranker) and a pre-ranker that cuts nothing serve the same
    lists with the same scores."""
    funnel, _ = fitted
    queries = _warm_queries(funnel, sim)
    preranker = funnel.preranker
    assert preranker is not None
    columns = ["query_id", "item_id", "rank", "score", "source"]
    everything = preranker.config.model_copy(update={"keep": 10_000})
    wide = PreRanker(everything, preranker.names, preranker.popularity, preranker.params)
    try:
        funnel.set_preranker(None)
        without = funnel.run(queries, k=50)
        funnel.set_preranker(wide)
        with_all = funnel.run(queries, k=50)
    finally:
        funnel.set_preranker(preranker)
    assert PRERANK_COLUMN not in without.final.columns
    assert "rank.prerank" not in without.timings_s
    assert with_all.ranked.select(columns).equals(without.ranked.select(columns))


def test_persistence_round_trip_gives_identical_scores(
    fitted: tuple[Funnel, FitReport], sim: Dataset, tmp_path: Path
) -> None:
    funnel, _ = fitted
    save_recommender(funnel, tmp_path / "artifact")
    loaded = load_recommender(tmp_path / "artifact")
    assert loaded.preranker is not None and funnel.preranker is not None
    queries = _warm_queries(funnel, sim)
    candidates = funnel.candidates(queries)[1]
    np.testing.assert_array_equal(
        loaded.preranker.score(candidates), funnel.preranker.score(candidates)
    )
    a, b = funnel.run(queries, k=20), loaded.run(queries, k=20)
    assert a.ranked.equals(b.ranked)
    assert a.scored is not None and b.scored is not None
    assert a.scored[PRERANK_COLUMN].equals(b.scored[PRERANK_COLUMN])


def test_the_guard_bypasses_a_broken_preranker(
    fitted: tuple[Funnel, FitReport], config: ExperimentConfig
) -> None:
    """Negated weights keep the candidates the ranker likes least: far past the 2% bound."""
    funnel, report = fitted
    data = _rank_data(report)
    trained = funnel.preranker
    assert trained is not None
    params = {**trained.params, "w1": -trained.params["w1"], "b1": -trained.params["b1"]}
    broken = PreRanker(trained.config, trained.names, trained.popularity, params)
    rng = np.random.default_rng(0)
    try:
        funnel.set_preranker(broken)
        decision = prerank_decision(funnel, data, config, rng)
        assert not decision.kept, decision.reason
        assert decision.diff_high < 0 and decision.detail["top10_kept"] < 0.5
        assert funnel.preranker is None  # the ranker scores every candidate again
        funnel.set_preranker(trained)
        kept = prerank_decision(funnel, data, config, rng)
        assert kept.detail["top10_kept"] > decision.detail["top10_kept"]
    finally:
        funnel.set_preranker(trained)


def test_apply_guards_records_the_prerank_decision(
    fitted: tuple[Funnel, FitReport], config: ExperimentConfig
) -> None:
    """(Runs last among the tests of ``fitted``: the guards may bypass its stages.)"""
    funnel, report = fitted
    guarded = config.model_copy(
        update={"guards": config.guards.model_copy(update={"enabled": True})}
    )
    decisions = {
        d.stage: d
        for d in apply_guards(funnel, _rank_data(report), guarded, np.random.default_rng(0))
    }
    prerank = decisions["prerank"]
    assert prerank.reason
    if not decisions["rank"].kept:
        assert prerank.reason == "not judged: the ranker was bypassed"
    if not prerank.kept or not decisions["rank"].kept:
        assert funnel.preranker is None
