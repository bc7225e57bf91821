"""Long-term periodic interests in the simulator: off changes nothing, on plants periodicity
that the last 50 events miss and the full history holds."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from funnelrec.data.simulator import (
    LongTermInterestConfig,
    SimulatedData,
    SimulatorConfig,
    burst_windows,
    simulate,
)
from funnelrec.data.simulator.periodic import PERIODIC_SCHEMA
from funnelrec.data.simulator.periodic_stats import (
    burst_probes,
    category_events,
    history_probes,
    in_burst_share,
    oracle_hits,
    return_shares,
)

DAY = 86_400
# sha256 of simulate(SimulatorConfig.for_interactions(20_000, seed=7)).interactions, column by
# column (frame_sha256 below), taken before long-term interests existed: the default config
# must keep producing exactly this log.
PINNED_20K_SEED7 = "b32ff35ae80705c7c06f8d055f8cd8daa100bd6868610e20fc19c85290ca64fe"


def frame_sha256(df: pl.DataFrame) -> str:
    """A hash of a frame's names and values that does not depend on the polars version."""
    h = hashlib.sha256()
    for name in df.columns:
        col = df[name]
        h.update(name.encode())
        if col.dtype == pl.String:
            h.update("\x00".join(col.to_list()).encode())
        else:
            h.update(col.to_numpy().tobytes())
    return h.hexdigest()


def long_config(share: float = 0.3, seed: int = 0, **long_term: float) -> SimulatorConfig:
    """300 users over 180 days, ~200 positive events each: long enough for bursts to recur."""
    base = SimulatorConfig.for_interactions(600_000, seed=seed).model_dump()
    base.update(
        n_users=300,
        span_days=180.0,
        emit_impressions=False,
        long_term={"share_of_users": share, **long_term},
    )
    return SimulatorConfig.model_validate(base)


@pytest.fixture(scope="module")
def config() -> SimulatorConfig:
    return long_config()


@pytest.fixture(scope="module")
def data(config: SimulatorConfig) -> SimulatedData:
    return simulate(config)


@pytest.fixture(scope="module")
def events(data: SimulatedData) -> pl.DataFrame:
    return category_events(data)


@pytest.fixture(scope="module")
def windows(data: SimulatedData, config: SimulatorConfig) -> pl.DataFrame:
    return burst_windows(data.periodic_interests, config.start_timestamp, config.end_timestamp)


# ---------------------------------------------------------------- off: nothing changes


def test_default_log_matches_the_pinned_hash() -> None:
    data = simulate(SimulatorConfig.for_interactions(20_000, seed=7))
    assert frame_sha256(data.interactions) == PINNED_20K_SEED7
    assert data.periodic_interests.height == 0
    assert data.periodic_interests.schema == PERIODIC_SCHEMA


def test_disabled_block_is_bit_identical_to_the_default() -> None:
    default = SimulatorConfig.for_interactions(20_000, seed=3)
    off = default.model_copy(
        update={
            "long_term": LongTermInterestConfig(
                share_of_users=0.0, min_period_days=20, burst_share=0.5, off_burst_weight=1.0
            )
        }
    )
    a, b = simulate(default), simulate(off)
    assert a.interactions.equals(b.interactions)
    assert a.items.equals(b.items)
    assert a.users.equals(b.users)


def test_only_planted_users_change(config: SimulatorConfig, data: SimulatedData) -> None:
    off = simulate(config.model_copy(update={"long_term": LongTermInterestConfig()}))
    assert data.items.equals(off.items)
    assert data.users.equals(off.users)
    planted = data.periodic_interests["user_id"].unique().implode()
    rest_on = data.interactions.filter(~pl.col("user_id").is_in(planted))
    rest_off = off.interactions.filter(~pl.col("user_id").is_in(planted))
    assert rest_on.equals(rest_off)
    assert not data.interactions.equals(off.interactions)


# ---------------------------------------------------------------- ground truth


def test_ground_truth_table(data: SimulatedData, config: SimulatorConfig) -> None:
    gt = data.periodic_interests
    lt = config.long_term
    assert gt.schema == PERIODIC_SCHEMA
    active = data.interactions["user_id"].n_unique()
    n_users = gt["user_id"].n_unique()
    assert abs(n_users - lt.share_of_users * active) <= 2
    per_user = gt.group_by("user_id").len()["len"]
    assert per_user.min() >= lt.min_categories and per_user.max() <= lt.max_categories
    assert not gt.select("user_id", "category").is_duplicated().any()
    assert gt["period_s"].is_between(lt.min_period_days * DAY, lt.max_period_days * DAY).all()
    assert gt["burst_s"].is_between(lt.min_burst_days * DAY, lt.max_burst_days * DAY).all()
    assert ((gt["phase_s"] >= 0) & (gt["phase_s"] < gt["period_s"])).all()
    assert (gt["burst_origin"] == config.start_timestamp + gt["phase_s"]).all()
    assert gt["category"].is_in(data.items["category"].unique().implode()).all()


def test_burst_windows_follow_the_period(
    data: SimulatedData, windows: pl.DataFrame, config: SimulatorConfig
) -> None:
    assert (windows["burst_end"] > config.start_timestamp).all()
    assert (windows["burst_start"] < config.end_timestamp).all()
    steps = (
        windows.with_columns(pl.col("burst_start").diff().over("user_id", "category").alias("step"))
        .drop_nulls("step")
        .join(data.periodic_interests, on=["user_id", "category"])
    )
    assert steps.height > 0
    assert (steps["step"] == steps["period_s"]).all()
    assert (steps["burst_end"] - steps["burst_start"] == steps["burst_s"]).all()
    # every pair has every burst of the span: span / period of them, give or take one
    n = (
        windows.group_by("user_id", "category")
        .len()
        .join(data.periodic_interests, on=["user_id", "category"])
    )
    expected = config.span_days * DAY / n["period_s"]
    assert ((n["len"] - expected).abs() <= 2).all()


def test_same_seed_same_plant_other_seed_differs() -> None:
    small = long_config(seed=5).model_copy(update={"target_interactions": 60_000})
    a, b = simulate(small), simulate(small)
    assert a.interactions.equals(b.interactions)
    assert a.periodic_interests.equals(b.periodic_interests)
    c = simulate(small.model_copy(update={"seed": 6}))
    assert not a.periodic_interests.equals(c.periodic_interests)


# ---------------------------------------------------------------- on: periodicity is there


def test_planted_events_concentrate_in_bursts(
    data: SimulatedData, events: pl.DataFrame, windows: pl.DataFrame
) -> None:
    gt = data.periodic_interests
    coverage = float((gt["burst_s"] / gt["period_s"]).mean())
    share = in_burst_share(events, windows)
    assert coverage < 0.2
    assert share > 0.9, (share, coverage)


def test_planted_categories_return_after_long_gaps(
    data: SimulatedData, events: pl.DataFrame
) -> None:
    shares = return_shares(events, data.periodic_interests, gap_s=14 * DAY)
    assert shares["planted"] > 2 * shares["other_users"], shares
    assert shares["planted"] > 2 * shares["planted_users_other"], shares


def test_last_50_events_miss_what_the_full_history_holds(
    events: pl.DataFrame, windows: pl.DataFrame, config: SimulatorConfig
) -> None:
    """At the start of a burst the user engages with, the planted category is often absent
    from the last 50 events but present among older ones: signal only a long sequence has."""
    probes = history_probes(
        events, burst_probes(windows, config.start_timestamp, config.end_timestamp), last_n=50
    )
    engaged = probes.filter(pl.col("engaged") & (pl.col("n_before") > 50))
    assert engaged.height > 100
    missed = (~engaged["cat_in_last_n"] & engaged["cat_in_history"]).mean()
    assert missed is not None and missed > 0.3, missed
    assert engaged["cat_in_history"].mean() > 0.8  # most bursts recur


def test_planted_category_predicts_the_next_event(
    events: pl.DataFrame, windows: pl.DataFrame, config: SimulatorConfig
) -> None:
    probes = history_probes(
        events, burst_probes(windows, config.start_timestamp, config.end_timestamp)
    ).filter(pl.col("target").is_not_null())
    oracle = oracle_hits(probes, windows)
    assert oracle.height == probes.height
    assert (oracle["oracle_size"] >= 1).all()  # the probe's own burst is live at its start
    hit, in_last = oracle["oracle_hit"].mean(), probes["target_in_last_n"].mean()
    assert hit is not None and in_last is not None
    assert hit > 0.6 > in_last, (hit, in_last)
    assert probes["target_in_history"].mean() > in_last + 0.2


def test_probe_row_on_a_hand_made_log() -> None:
    events = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2],
            "timestamp": [10, 20, 30, 40, 5],
            "category": ["a", "b", "b", "a", "b"],
        }
    )
    probes = pl.DataFrame(
        {"user_id": [1, 2, 3], "at": [30, 6, 0], "until": [50, 7, 9], "category": ["a", "b", None]}
    )
    out = history_probes(events, probes, last_n=1)
    assert out["n_before"].to_list() == [2, 1, 0]
    assert out["target"].to_list() == ["b", None, None]
    assert out["engaged"].to_list() == [True, False, False]
    assert out["cat_in_last_n"].to_list() == [False, True, False]
    assert out["cat_in_history"].to_list() == [True, True, False]
    assert out["history_top1"].to_list() == ["a", "b", None]


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_categories": 3, "max_categories": 2}, "min_categories=3 must be <="),
        ({"min_period_days": 30, "max_period_days": 20}, "min_period_days=30 must be <="),
        ({"min_burst_days": 4, "max_burst_days": 3}, "min_burst_days=4 must be <="),
        ({"min_period_days": 5, "max_burst_days": 5}, "must be shorter than min_period_days"),
        ({"share_of_users": 1.5}, "less than or equal to 1"),
        ({"burst_share": 1.0}, "less than 1"),
        ({"max_categories": 5}, "less than or equal to 4"),
    ],
)
def test_invalid_long_term_config_is_rejected_clearly(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LongTermInterestConfig(**fields)


def test_long_term_config_is_frozen_strict_and_checked_against_categories() -> None:
    lt = LongTermInterestConfig(share_of_users=0.1)
    with pytest.raises(ValidationError):
        lt.share_of_users = 0.2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        LongTermInterestConfig(period_days=3)  # type: ignore[call-arg]
    base = SimulatorConfig.for_interactions(20_000).model_dump()
    base.update(n_categories=3, long_term={"share_of_users": 0.1, "max_categories": 3})
    with pytest.raises(ValidationError, match="main interest is never periodic"):
        SimulatorConfig.model_validate(base)
    base["long_term"]["share_of_users"] = 0.0  # off: no constraint
    SimulatorConfig.model_validate(base)
    assert not SimulatorConfig().long_term.enabled
    assert np.isclose(SimulatorConfig().long_term.burst_share, 0.8)
