"""``funnelrec experiment``: two funnel configurations, a simulated population, N days.

The simulator (with its watch-time ground truth) provides the history and the users; each arm
is a funnel configuration (the defaults, a TOML file, ``--set`` overrides per arm) fitted with
the public ``Recommender.fit`` and refitted on the accumulated log every day; half the users
(hash-assigned) see each arm. The outcome table, the analysis and the HTML report are written
to ``out``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from funnelrec.abtest.assignment import ExperimentPlan
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.config.loading import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.watch_config import WatchConfig
from funnelrec.experiment.analysis import ExperimentAnalysis, analyse
from funnelrec.experiment.environment import Environment, EnvironmentConfig
from funnelrec.experiment.report import write_experiment_report
from funnelrec.pipeline.recommender import Recommender

CONTROL, TREATMENT = "control", "treatment"


def two_arm_plan(name: str = "experiment") -> ExperimentPlan:
    """Every user in one experiment, half per arm."""
    return ExperimentPlan.model_validate(
        {
            "layers": [
                {
                    "name": "funnel",
                    "experiments": [
                        {"name": name, "buckets": [0, 1000], "arms": {CONTROL: 1, TREATMENT: 1}}
                    ],
                }
            ]
        }
    )


def run_simulated_experiment(
    out: Path,
    arms: dict[str, ExperimentConfig],
    *,
    interactions: int = 60_000,
    environment: EnvironmentConfig | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> ExperimentAnalysis:
    """Simulate, run the days, analyse and write ``out/{outcomes.parquet, analysis.json,
    report.html}``.

    Args:
        out: output folder (created).
        arms: ``{"control": config, "treatment": config}``.
        interactions: simulated history before the experiment (rows).
        environment: days, list length, activity (default :class:`EnvironmentConfig`).
        seed: the simulation's and the environment's seed.
        log: progress messages.
    """
    env_config = environment or EnvironmentConfig(seed=seed)
    start = time.perf_counter()
    sim = SimulatorConfig.for_interactions(interactions, seed=seed)
    data = simulate(sim.model_copy(update={"watch": WatchConfig(enabled=True)}))
    log(f"simulated {data.interactions.height:,} rows, {data.users.height:,} users")
    env = Environment(data, env_config)

    def fit(dataset: Dataset, arm: str) -> Recommender:
        config = arms[arm]
        return Recommender.fit(dataset, config, rng=np.random.default_rng(config.seed))

    outcomes = env.run(two_arm_plan(), arms, fit)
    log(f"ran {env_config.days} days in {time.perf_counter() - start:.0f} s")
    analysis = analyse(outcomes, env.pre_clicks(), {CONTROL: 1.0, TREATMENT: 1.0}, CONTROL)
    out.mkdir(parents=True, exist_ok=True)
    outcomes.write_parquet(out / "outcomes.parquet")
    setup = {
        "interactions": interactions,
        "seed": seed,
        "environment": env_config.model_dump(),
        "users": int(data.users.height),
        "rows_served": int(outcomes.height),
        "days_observed": int(outcomes["day"].n_unique()),
    }
    write_experiment_report(out, analysis, setup)
    return analysis


def single_channel_funnel(kind: str) -> ExperimentConfig:
    """A funnel of one recall channel of ``kind`` (its defaults) and no ranker: refits in
    seconds, so a many-day experiment or a calibration run stays cheap.

    Example:
        >>> list(single_channel_funnel("itemcf").recall.channels)
        ['itemcf']
    """
    return ExperimentConfig.model_validate(
        {
            "recall": {"tune": [], "channels": {kind: {"kind": kind}}, "merge": {"quotas": {}}},
            "rank": {"enabled": False},
        }
    )


def arm_configs(
    config_path: Path | None, control: list[str], treatment: list[str]
) -> dict[str, ExperimentConfig]:
    """Each arm's configuration: the file (or defaults) with the arm's overrides."""
    return {
        CONTROL: load_config(config_path, overrides=control),
        TREATMENT: load_config(config_path, overrides=treatment),
    }


def outcome_summary(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Per arm and day: users served, clicks and watch per user, next-day return."""
    return (
        outcomes.group_by("arm", "day")
        .agg(
            pl.len().alias("users"),
            pl.col("clicks").mean().alias("clicks_per_user"),
            pl.col("watch_s").mean().alias("watch_s_per_user"),
            pl.col("returned").mean().alias("return_rate"),
        )
        .sort("arm", "day")
    )


__all__ = [
    "CONTROL",
    "TREATMENT",
    "arm_configs",
    "outcome_summary",
    "run_simulated_experiment",
    "single_channel_funnel",
    "two_arm_plan",
]
