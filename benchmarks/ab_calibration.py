"""The A/B toolkit calibrated on the closed-loop environment (issue 16's acceptance).

Simulates a population (with the watch ground truth), runs ``--days`` days in which half the
users are served a popularity funnel and half an ItemCF funnel (both refitted every day on the
accumulated log), then, on that traffic:

* re-randomises the served users ``--reps`` times (new salt, clicks redrawn from the truth):
  AA false-positive rate at alpha 5%, coverage of a planted x``--lift`` effect on clicks per
  user, the 52/48 split flagged by the sample-ratio check (and fair splits flagged), daily
  peeking with the naive test vs the mSPRT, CUPED's variance shrink vs ``1 - rho^2``;
* replays every served user (with their number of served days) on both funnels' lists, and
  on a known-better pair built from the truth (each user's 10 likeliest-clicked items against
  their 6th-15th): the users an A/B test and team-draft interleaving need at 80% power;
* analyses the experiment itself (the decision the report would give).

    .venv/bin/python benchmarks/ab_calibration.py [--interactions 1000000] [--days 14]
        [--reps 200] [--lift 1.05]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import render, write_json
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.watch_config import WatchConfig
from funnelrec.experiment.analysis import analyse
from funnelrec.experiment.calibration import (
    Traffic,
    calibrate,
    design_sample_sizes,
    interleaving_vs_ab,
)
from funnelrec.experiment.environment import Environment, EnvironmentConfig, click_chance
from funnelrec.experiment.runner import single_channel_funnel, two_arm_plan
from funnelrec.pipeline.recommender import Recommender


def truth_pair_sizes(env: Environment, users: np.ndarray, seed: int) -> tuple[int, int, float]:
    """A known-better pair built from the truth: each served user's 10 likeliest-clicked items
    against their 6th-15th, shown on the days the user was served in the run."""
    truth = env.truth
    served, days = np.unique(Traffic.of(env).user, return_counts=True)
    keep = np.isin(served, users)
    served, days = served[keep], days[keep]
    items = np.arange(truth.duration.shape[0], dtype=np.int64)
    order = np.empty((served.size, 15), dtype=np.int64)
    for start in range(0, served.size, 512):  # [users, items] chances, a block at a time
        block = served[start : start + 512]
        chance = click_chance(
            truth, np.repeat(block, items.size), np.tile(items, block.size)[:, None]
        )
        order[start : start + 512] = np.argsort(-chance.reshape(block.size, -1), axis=1)[:, :15]
    rng = np.random.default_rng([seed, 0x7A])
    return design_sample_sizes(truth, served, days, order[:, 5:15], order[:, :10], rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--lift", type=float, default=1.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="ab_calibration")
    args = parser.parse_args()

    start = time.perf_counter()
    sim = SimulatorConfig.for_interactions(args.interactions, seed=args.seed)
    data = simulate(sim.model_copy(update={"watch": WatchConfig(enabled=True)}))
    arms = {
        "control": single_channel_funnel("popular"),
        "treatment": single_channel_funnel("itemcf"),
    }
    env = Environment(data, EnvironmentConfig(days=args.days, seed=args.seed))
    outcomes = env.run(two_arm_plan(), arms, lambda ds, arm: Recommender.fit(ds, arms[arm]))
    ran_s = time.perf_counter() - start
    counts = env.pre_clicks()
    pre = np.zeros(data.users.height)
    pre[counts["user_id"].to_numpy() - 1] = counts["pre_clicks"].to_numpy()
    cal = calibrate(env, pre, reps=args.reps, lift=args.lift, seed=args.seed)
    ab_users, il_users, share = interleaving_vs_ab(env, "control", "treatment", seed=args.seed)
    close = truth_pair_sizes(env, outcomes["user_id"].unique().to_numpy() - 1, args.seed)
    result = analyse(outcomes, counts, {"control": 1.0, "treatment": 1.0}, "control")
    served = int(outcomes["user_id"].n_unique())
    rows = [
        ["AA false-positive rate (alpha 5%)", cal.aa_false_positive_rate, "[0.03, 0.07]"],
        [f"coverage of a planted x{args.lift} effect", cal.coverage, "[0.93, 0.97]"],
        ["52/48 split flagged by SRM", cal.srm_flag_rate_52_48, "1"],
        ["fair split flagged by SRM", cal.srm_flag_rate_fair, "<= 0.001"],
        ["daily peeking, naive test: false positives", cal.peeking_naive_rate, "> 0.05"],
        ["daily peeking, mSPRT: false positives", cal.peeking_msprt_rate, "<= 0.05"],
        ["CUPED variance ratio, measured", cal.cuped_variance_ratio, ""],
        ["CUPED variance ratio, 1 - rho^2", cal.cuped_predicted_ratio, ""],
        ["users for 80% power: A/B (both arms)", ab_users, ""],
        ["users for 80% power: interleaving", il_users, ""],
        ["interleaving: ItemCF's share of preferences", share, ""],
        ["truth's top 10 vs its 6th-15th: A/B users", close[0], ""],
        ["truth's top 10 vs its 6th-15th: interleaving users", close[1], ""],
        ["truth's top 10: share of preferences", close[2], ""],
    ]
    render(
        f"A/B calibration on the environment: {args.days} days, {served:,} users served, "
        f"{args.reps} re-randomised experiments per check ({ran_s:.0f} s to run the days)",
        ["check", "measured", "target"],
        rows,
    )
    effects = {name: e.__dict__ for name, e in result.effects.items()}
    print(f"the experiment itself: {result.decision} ({result.reason})")
    write_json(
        args.name,
        {
            "args": vars(args),
            "users_served": served,
            "run_s": ran_s,
            "calibration": cal.__dict__,
            "ab_users_80": ab_users,
            "interleaving_users_80": il_users,
            "interleaving_share_itemcf": share,
            "truth_pair": {
                "ab_users_80": close[0],
                "interleaving_users_80": close[1],
                "share_top10": close[2],
            },
            "decision": result.decision,
            "effects": effects,
            "srm": result.srm.__dict__,
        },
    )


if __name__ == "__main__":
    main()
