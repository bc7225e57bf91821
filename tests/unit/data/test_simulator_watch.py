"""The simulator's watch-time and retention model (data/simulator/watch.py, retention.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.retention import (
    expected_return,
    return_probability,
    thin_by_retention,
)
from funnelrec.data.simulator.watch_config import RetentionConfig, WatchConfig

BASE = SimulatorConfig.for_interactions(20_000, seed=4)
WATCH = BASE.model_copy(update={"watch": WatchConfig(enabled=True)})


@pytest.fixture(scope="module")
def watched():
    return simulate(WATCH)


def test_off_by_default_adds_nothing() -> None:
    data = simulate(BASE)
    assert data.watch is None
    assert "play_duration" not in data.interactions.columns


def test_watch_keeps_the_other_rows(watched) -> None:
    plain = simulate(BASE).interactions
    rows = watched.interactions.filter(pl.col("event") != "like").select(plain.columns)
    assert rows.equals(plain)  # plays and likes come from streams of their own


def test_plays_on_clicks_durations_everywhere(watched) -> None:
    inter = watched.interactions
    clicks = inter.filter(pl.col("event") == "click")
    assert clicks["play_duration"].null_count() == 0
    assert inter.filter(pl.col("event") != "click")["play_duration"].null_count() == (
        inter.height - clicks.height
    )
    assert inter["video_duration"].null_count() == 0
    assert (clicks["play_duration"] <= clicks["video_duration"]).all()
    assert inter.filter(pl.col("event") == "like").height > 0


def test_plays_follow_satisfaction(watched) -> None:
    clicks = watched.interactions.filter(pl.col("event") == "click")
    truth = watched.watch
    fraction = (clicks["play_duration"] / clicks["video_duration"]).to_numpy()
    mean = truth.mean_fraction(clicks["user_id"].to_numpy() - 1, clicks["item_id"].to_numpy() - 1)
    assert np.corrcoef(fraction, mean)[0, 1] > 0.4


def test_disliked_list_lowers_next_day_return(watched) -> None:
    """The acceptance test: a list of disliked items lowers the next-day return."""
    truth = watched.watch
    users = np.arange(50)
    items = np.arange(truth.duration.shape[0])
    grid = truth.mean_fraction(users[:, None], items[None, :])  # [U, I]
    order = np.argsort(-grid, axis=1)
    liked, disliked = order[:, :10], order[:, -10:]
    p_liked = expected_return(truth, users, liked)
    p_disliked = expected_return(truth, users, disliked)
    assert (p_disliked < p_liked).all()
    base = truth.config.retention.base_return
    assert p_disliked.mean() < base < p_liked.mean()


def test_return_probability_is_monotone() -> None:
    p = return_probability(np.array([-10.0, -1.0, 0.0, 1.0, 10.0]), RetentionConfig())
    assert np.all(np.diff(p) > 0)
    assert p[2] == pytest.approx(0.6)


def test_thinning_drops_days_after_bad_ones() -> None:
    """Users who skipped a list of ten on day 0 come back on day 1 less often than users who
    watched theirs through."""
    n, start, day = 2_000, 1_000_000, 86_400
    user = np.repeat(np.arange(1, n + 1), 11)  # ten plays on day 0, one row on day 1
    first_day = np.tile(np.arange(11) < 10, n)
    fraction = np.where(user <= n // 2, 0.05, 0.95)  # first half: a disliked list
    frame = pl.DataFrame(
        {
            "user_id": user,
            "timestamp": np.where(first_day, start + 100, start + day + 100),
            "session_id": user * 2 + ~first_day,
            "play_duration": pl.Series(np.where(first_day, fraction * 10.0, np.nan)),
            "video_duration": np.full(user.shape[0], 10.0),
        }
    ).with_columns(pl.col("play_duration").fill_nan(None))
    kept = thin_by_retention(frame, RetentionConfig(enabled=True), start, seed=0)
    day1 = kept.filter(pl.col("timestamp") > start + day)
    unhappy = (day1["user_id"] <= n // 2).sum() / (n // 2)
    happy = (day1["user_id"] > n // 2).sum() / (n // 2)
    assert unhappy < 0.3 < 0.9 < happy
    assert kept.filter(pl.col("timestamp") < start + day).height == 10 * n  # day 0 untouched


def test_retention_thins_the_simulated_log() -> None:
    cfg = WATCH.model_copy(
        update={"watch": WatchConfig(enabled=True, retention=RetentionConfig(enabled=True))}
    )
    assert 0 < simulate(cfg).interactions.height < simulate(WATCH).interactions.height


def test_retention_needs_watch() -> None:
    with pytest.raises(ValidationError, match="needs watch.enabled"):
        WatchConfig(retention=RetentionConfig(enabled=True))
