"""The closed loop: served lists come from the arms' funnels, reactions from the truth, the
log grows and the funnels are refitted; a better funnel wins; bad setups are one error."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatedData
from funnelrec.errors import ConfigError
from funnelrec.experiment.environment import (
    OUTCOME_SCHEMA,
    Environment,
    EnvironmentConfig,
    day_events,
    respond,
)
from funnelrec.experiment.runner import single_channel_funnel, two_arm_plan
from funnelrec.pipeline.recommender import Recommender

ARMS = {"control": single_channel_funnel("popular"), "treatment": single_channel_funnel("itemcf")}


def run(world: SimulatedData, **env: object) -> tuple[Environment, pl.DataFrame, list[str]]:
    fitted: list[str] = []

    def fit(data: Dataset, arm: str) -> Recommender:
        fitted.append(arm)
        return Recommender.fit(data, ARMS[arm])

    environment = Environment(world, EnvironmentConfig(**env))  # type: ignore[arg-type]
    return environment, environment.run(two_arm_plan(), ARMS, fit), fitted


def test_days_are_served_by_each_arm_and_refitted_on_the_growing_log(world) -> None:
    env, outcomes, fitted = run(world, days=3, seed=1)
    assert outcomes.schema == OUTCOME_SCHEMA
    assert sorted(outcomes["day"].unique().to_list()) == [0, 1, 2]
    assert fitted.count("control") == fitted.count("treatment") == 3  # start + 2 refits
    assert env.log.height > world.interactions.height
    new = env.log.filter(pl.col("timestamp") > world.interactions["timestamp"].max())
    assert set(new["event"].unique().to_list()) == {"impression", "click"}
    clicks = new.filter(pl.col("event") == "click")
    assert clicks["play_duration"].is_not_null().all() and (clicks["play_duration"] > 0).all()
    # each user stays in one arm; the split is near half
    assert outcomes.group_by("user_id").agg(pl.col("arm").n_unique())["arm"].max() == 1
    share = (
        outcomes.filter(pl.col("arm") == "treatment")["user_id"].n_unique()
        / outcomes["user_id"].n_unique()
    )
    assert 0.4 < share < 0.6
    # same seed, same run
    _, again, _ = run(world, days=3, seed=1)
    assert again.equals(outcomes)


def test_the_better_funnel_gets_more_clicks_and_a_planted_lift_shows(world) -> None:
    _, outcomes, _ = run(world, days=3, seed=2, planted_lift={"control": 1.5})
    per_arm = outcomes.group_by("arm").agg(pl.col("clicks").mean()).sort("arm")
    assert per_arm["clicks"].to_list()[1] > 0  # treatment clicks at all
    _, plain, _ = run(world, days=3, seed=2)
    lifted = outcomes.filter(pl.col("arm") == "control")["clicks"].mean()
    base = plain.filter(pl.col("arm") == "control")["clicks"].mean()
    assert lifted > base


def test_responses_follow_the_truth(world) -> None:
    truth = world.watch
    assert truth is not None
    rng = np.random.default_rng(0)
    users = np.arange(200, dtype=np.int64)
    items = np.tile(np.arange(10, dtype=np.int64), (200, 1))
    items[:, -2:] = -1  # padding is never clicked
    answer = respond(truth, users, items, rng)
    assert not answer.clicked[:, -2:].any() and answer.returns.shape == (200,)
    assert (answer.watch_s[answer.clicked] > 0).all()
    assert (answer.watch_s[~answer.clicked] == 0).all()
    never = respond(truth, users, items, rng, lift=0.0)
    assert not never.clicked.any()
    events = day_events(answer, now=1_000)
    assert events.filter(pl.col("event") == "impression").height == 200 * 8
    assert events.filter(pl.col("event") == "click").height == int(answer.clicked.sum())


def test_a_world_without_watch_truth_or_a_wrong_plan_is_a_config_error(world) -> None:
    from dataclasses import replace

    with pytest.raises(ConfigError, match="watch ground truth"):
        Environment(replace(world, watch=None), EnvironmentConfig())
    env = Environment(world, EnvironmentConfig(days=1))
    with pytest.raises(ConfigError, match="arms"):
        env.run(two_arm_plan(), {"a": 1, "b": 2}, lambda data, arm: Recommender.fit(data))


def test_fatigue_lowers_clicks_on_items_shown_before(world) -> None:
    """A popularity funnel shows each user nearly the same list every day: with fatigue its
    later days get fewer clicks than without, and the counts of earlier showings add up."""
    env, bored, _ = run(world, days=4, seed=3, fatigue=0.5)
    _, fresh, _ = run(world, days=4, seed=3)
    late = pl.col("day") >= 2
    popular = (pl.col("arm") == "control") & late
    assert bored.filter(popular)["clicks"].mean() < fresh.filter(popular)["clicks"].mean()
    day, arm, answer = env.served[-1]
    assert day == 3 and arm in ARMS
    shown_before = env.times_shown(answer.users, answer.items)
    assert shown_before.max() <= 4 and shown_before[answer.items < 0].sum() == 0
    assert (answer.chance <= 1.0).all() and answer.chance.shape == answer.items.shape
