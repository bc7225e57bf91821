"""fit_funnel is the one way to train: switches honoured, Recommender.fit is the same
function, skipped inputs reported, and a request context that adds nothing changes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.errors import DataError
from funnelrec.pipeline import RequestContext, fit_funnel
from funnelrec.pipeline.recommender import Recommender

FAST = [
    "recall.channels.two_tower.train.epochs=1",
    "rank.train.loop.epochs=1",
    "rank.fusion.trials=3",
    "rank.train.health=false",
    "guards.enabled=false",  # these tests check the plumbing; guards: test_guards.py
]


@pytest.fixture(scope="module")
def sim() -> Dataset:
    data = simulate(SimulatorConfig.for_interactions(15_000, seed=2))
    return Dataset.build(data.interactions, data.items, data.users)


def test_rank_switch_is_honoured(sim: Dataset) -> None:
    config = load_config(overrides=[*FAST, "rank.enabled=false"])
    funnel, report = fit_funnel(config, sim, np.random.default_rng(0))
    assert funnel.ranker is None and report.rank is None
    config = load_config(overrides=FAST)
    funnel, report = fit_funnel(config, sim, np.random.default_rng(0))
    assert funnel.ranker is not None and report.rank is not None
    assert "fit.rank" in report.timings_s and "rank.samples" in report.timings_s


def test_recommender_fit_is_fit_funnel(sim: Dataset) -> None:
    config = load_config(overrides=FAST)
    funnel, _ = fit_funnel(config, sim, np.random.default_rng(0))
    rec = Recommender.fit(sim, config, rng=np.random.default_rng(0))
    users = sim.user_vocab.ids.head(5).to_list()
    a, b = rec.recommend(users, k=10), funnel.recommend(users, k=10)
    # Same seed, same function: the same lists; scores equal up to float reduction order.
    assert a.select("user_id", "item_id", "rank", "source").equals(
        b.select("user_id", "item_id", "rank", "source")
    )
    assert np.allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-4, equal_nan=True)
    assert rec.fit_report is not None and rec.fit_report.rank is not None


def test_missing_input_is_skipped_and_reported() -> None:
    log = pl.DataFrame(
        {
            "user_id": np.repeat(np.arange(30), 5),
            "item_id": np.arange(150) % 23,
            "timestamp": np.arange(150) * 60,
        }
    )
    config = load_config(overrides=["rank.enabled=false", *FAST[:1]])
    rec = Recommender.fit(Dataset.from_frame(log), config)
    assert rec.fit_report is not None
    assert "content" in rec.fit_report.skipped  # no items table: nothing to embed
    top = rec.recommend([0, "someone-new"], k=5)
    assert top.group_by("user_id").len()["len"].to_list() == [5, 5]


def test_empty_context_changes_nothing(sim: Dataset) -> None:
    rec = Recommender.fit(sim, load_config(overrides=FAST))
    queries = rec.queries(sim.user_vocab.ids.head(8), rec.as_of)
    plain = rec.run(queries, k=10)
    with_context = rec.run(queries, k=10, context=RequestContext())
    assert plain.final.equals(with_context.final)


def test_context_without_ranker_serves_the_merge_order(sim: Dataset) -> None:
    rec = Recommender.fit(sim, load_config(overrides=[*FAST, "rerank.method=rules"]))
    queries = rec.queries(sim.user_vocab.ids.head(4), rec.as_of)
    out = rec.run(queries, k=10, context=RequestContext(use_ranker=False))
    assert out.scored is None
    assert (out.final["merged_rank"] >= 1).all()


def test_from_frame_takes_pandas_and_polars_alike() -> None:
    frame = {"user_id": [1, 2, 2], "item_id": ["a", "b", "a"], "timestamp": [5, 6, 7]}
    a = Dataset.from_frame(pd.DataFrame(frame))
    b = Dataset.from_frame(pl.DataFrame(frame))
    assert a.interactions.equals(b.interactions)
    assert a.interactions["event"].to_list() == ["click"] * 3  # the file loader's defaults


def test_from_frame_names_a_missing_column() -> None:
    with pytest.raises(DataError, match="timestamp"):
        Dataset.from_frame(pd.DataFrame({"user_id": [1], "item_id": [2]}))


def test_too_little_data_for_a_ranker_skips_it_with_the_reason() -> None:
    """A log whose ranking window holds no action: the funnel serves the merge order."""
    log = pl.DataFrame(
        {
            "user_id": [1, 2, 1],
            "item_id": [7, 8, 8],
            "timestamp": [1, 2, 100],
            "event": ["click", "click", "impression"],
        }
    )
    config = load_config(overrides=FAST[:1])
    rec = Recommender.fit(Dataset.from_frame(log), config)
    assert rec.ranker is None and rec.fit_report is not None
    assert rec.fit_report.rank_skipped is not None
    assert rec.recommend([1], k=2).height > 0
