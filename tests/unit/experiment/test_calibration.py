"""The statistics on the environment's own traffic: AA at alpha, coverage, SRM, peeking, and
interleaving needing fewer users than an A/B test."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.experiment.calibration import calibrate, design_sample_sizes, interleaving_vs_ab
from funnelrec.experiment.environment import Environment, EnvironmentConfig, click_chance
from funnelrec.experiment.runner import single_channel_funnel, two_arm_plan
from funnelrec.pipeline.recommender import Recommender

ARMS = {"control": single_channel_funnel("popular"), "treatment": single_channel_funnel("itemcf")}


def test_calibration_on_the_environment(world) -> None:
    env = Environment(world, EnvironmentConfig(days=4, daily_active=0.6, seed=5))
    env.run(two_arm_plan(), ARMS, lambda data, arm: Recommender.fit(data, ARMS[arm]))
    pre = np.zeros(world.users.height)
    counts = env.pre_clicks()
    pre[counts["user_id"].to_numpy() - 1] = counts["pre_clicks"].to_numpy()
    cal = calibrate(env, pre, reps=300, lift=1.3)
    assert 0.02 <= cal.aa_false_positive_rate <= 0.08
    assert 0.90 <= cal.coverage <= 0.98
    assert cal.peeking_msprt_rate <= 0.05 < cal.peeking_naive_rate
    assert cal.srm_flag_rate_fair <= 0.01
    assert abs(cal.cuped_variance_ratio - cal.cuped_predicted_ratio) < 0.02
    ab, interleaving, share = interleaving_vs_ab(env, "control", "treatment")
    assert ab != 0 and interleaving != 0 and 0 <= share <= 1  # the two funnels are close here
    assert env.pre_clicks().schema == pl.Schema({"user_id": pl.Int64, "pre_clicks": pl.Float64})


def test_interleaving_needs_fewer_users_for_a_known_better_list(world) -> None:
    """The truth's 10 best items per user against its 6th-15th best: known better, close;
    users return 1-14 days. Interleaving compares both lists on the same user."""
    truth = world.watch
    users = np.arange(world.users.height, dtype=np.int64)
    items = np.arange(world.items.height, dtype=np.int64)
    chance = click_chance(truth, np.repeat(users, items.size), np.tile(items, users.size)[:, None])
    order = np.argsort(-chance.reshape(users.size, items.size), axis=1)
    rng = np.random.default_rng(7)
    days = rng.integers(1, 15, users.size)
    ab, interleaving, share = design_sample_sizes(
        truth, users, days, order[:, 5:15], order[:, :10], rng
    )
    assert share > 0.6
    assert 0 < interleaving < ab / 2
