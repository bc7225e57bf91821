"""The analysis of one experiment's outcome table: metrics, checks, daily looks, decision.

Per user over the experiment (the unit of randomisation): clicks, impressions, watch seconds
and the share of their days after which they came back. The primary metric is clicks per
user, CUPED-adjusted by the user's clicks in the pre-period log; CTR is a ratio metric (delta
method); next-day return is the guardrail a change must not hurt. The sample-ratio check runs
first: with a mismatch no effect is trusted and the decision is to stop. The daily looks
carry both the naive fixed-horizon p-value and the mSPRT's always-valid one, so a peeking
reader sees which to trust.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from funnelrec.abtest.novelty import Trend, effect_trend
from funnelrec.abtest.sequential import always_valid_p_values
from funnelrec.abtest.stats import (
    Effect,
    SampleRatio,
    cuped,
    mean_effect,
    ratio_effect,
    sample_ratio,
)


@dataclass(frozen=True)
class ExperimentAnalysis:
    """What :func:`analyse` found (see the module docstring)."""

    control: str
    treatment: str
    users: dict[str, int]
    srm: SampleRatio
    effects: dict[str, Effect]
    cuped_variance_ratio: float
    daily: pl.DataFrame
    novelty: Trend | None
    decision: str
    reason: str


def per_user(outcomes: pl.DataFrame, pre_clicks: pl.DataFrame) -> pl.DataFrame:
    """One row per user in the experiment: arm, totals and pre-period clicks (0 if none)."""
    totals = outcomes.group_by("user_id", "arm").agg(
        pl.col("clicks").sum(),
        pl.col("impressions").sum(),
        pl.col("watch_s").sum(),
        pl.col("returned").cast(pl.Float64).mean().alias("return_rate"),
        pl.len().alias("days"),
    )
    return (
        totals.join(pre_clicks, on="user_id", how="left")
        .with_columns(pl.col("pre_clicks").fill_null(0).cast(pl.Float64))
        .sort("user_id")
    )


def analyse(
    outcomes: pl.DataFrame,
    pre_clicks: pl.DataFrame,
    arms: dict[str, float],
    control: str,
    alpha: float = 0.05,
    mde: float = 0.05,
) -> ExperimentAnalysis:
    """Analyse an outcome table (:mod:`~funnelrec.experiment.environment`).

    Args:
        outcomes: ``day, user_id, arm, impressions, clicks, watch_s, returned`` rows.
        pre_clicks: ``user_id, pre_clicks`` from before the experiment (CUPED's covariate).
        arms: the configured arm weights (two arms: ``control`` and the treatment).
        control: the control arm's name.
        alpha: test level.
        mde: the relative effect the sequential test is tuned to (its ``tau``).
    """
    if len(arms) != 2 or control not in arms:
        raise ValueError(f"need two arms including the control '{control}', got {sorted(arms)}")
    treatment = next(a for a in arms if a != control)
    users = per_user(outcomes, pre_clicks)
    counts = {arm: int((users["arm"] == arm).sum()) for arm in arms}
    srm = sample_ratio([counts[control], counts[treatment]], [arms[control], arms[treatment]])
    c, t = users.filter(pl.col("arm") == control), users.filter(pl.col("arm") == treatment)
    adjusted = cuped(users["clicks"].to_numpy(), users["pre_clicks"].to_numpy())
    in_t = (users["arm"] == treatment).to_numpy()
    effects = {
        "clicks_per_user": mean_effect(c["clicks"], t["clicks"], alpha),
        "clicks_per_user_cuped": mean_effect(adjusted[~in_t], adjusted[in_t], alpha),
        "ctr": ratio_effect(
            (c["clicks"], c["impressions"]), (t["clicks"], t["impressions"]), alpha
        ),
        "watch_s_per_user": mean_effect(c["watch_s"], t["watch_s"], alpha),
        "next_day_return": mean_effect(c["return_rate"], t["return_rate"], alpha),
    }
    ratio = float(adjusted.var() / max(users["clicks"].to_numpy().var(), 1e-300))
    daily = daily_looks(outcomes, control, treatment, mde, alpha)
    novelty = _novelty(outcomes, treatment)
    decision, reason = decide(srm, effects)
    return ExperimentAnalysis(
        control, treatment, counts, srm, effects, ratio, daily, novelty, decision, reason
    )


def daily_looks(
    outcomes: pl.DataFrame, control: str, treatment: str, mde: float, alpha: float
) -> pl.DataFrame:
    """Clicks per user up to each day: the effect, the naive p-value and the always-valid
    one (mSPRT with ``tau = mde x`` the control's mean)."""
    looks: list[Effect] = []
    days = sorted(outcomes["day"].unique().to_list())
    for day in days:
        upto = (
            outcomes.filter(pl.col("day") <= day)
            .group_by("user_id", "arm")
            .agg(pl.col("clicks").sum())
        )
        a = upto.filter(pl.col("arm") == control)["clicks"]
        b = upto.filter(pl.col("arm") == treatment)["clicks"]
        looks.append(mean_effect(a, b, alpha))
    tau = max(mde * abs(looks[-1].control), 1e-9)
    valid = always_valid_p_values(looks, tau)
    return pl.DataFrame(
        {
            "day": days,
            "diff": [e.diff for e in looks],
            "low": [e.low for e in looks],
            "high": [e.high for e in looks],
            "naive_p": [e.p_value for e in looks],
            "always_valid_p": valid,
        }
    )


def _novelty(outcomes: pl.DataFrame, treatment: str) -> Trend | None:
    """Clicks per user-day by day since the user's first served day (None: < 3 days)."""
    first = pl.col("day") - pl.col("day").min().over("user_id")
    rows = outcomes.with_columns(first.alias("exposure_day"))
    try:
        return effect_trend(
            rows["exposure_day"].to_numpy(),
            (rows["arm"] == treatment).to_numpy(),
            rows["clicks"].to_numpy().astype(np.float64),
        )
    except ValueError:
        return None


def decide(srm: SampleRatio, effects: dict[str, Effect]) -> tuple[str, str]:
    """``ship`` / ``keep control`` / ``no decision`` / ``stop``, with the reason."""
    if srm.mismatch:
        return "stop", f"sample-ratio mismatch (p = {srm.p_value:.2g}): fix the assignment first"
    primary, guard = effects["clicks_per_user_cuped"], effects["next_day_return"]
    if guard.significant() and guard.diff < 0:
        return "keep control", "next-day return fell significantly (guardrail)"
    if primary.significant():
        if primary.diff > 0:
            return "ship", "clicks per user (CUPED) rose significantly; return not hurt"
        return "keep control", "clicks per user (CUPED) fell significantly"
    return "no decision", "no significant change in clicks per user (CUPED)"


__all__ = ["ExperimentAnalysis", "analyse", "daily_looks", "decide", "per_user"]
