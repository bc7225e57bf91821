"""Duration objectives (rank/duration.py) through the one labeller and the Samples table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.errors import ConfigError
from funnelrec.rank.duration import expected_watch_time, exposure_plays
from funnelrec.rank.labels import (
    DURATION_TASKS,
    TASK_CATALOGUE,
    duration_tasks_for,
    label_and_weigh_exposures,
    label_exposures,
)
from funnelrec.rank.samples import SampleConfig, impression_samples

T = 1_000
# user 0 sees items 0..4 at T; plays: item 0 fully (10 of 10 s), item 1 skipped (1 of 20 s),
# item 2 half (30 of 60 s), item 3 twice (5 s, then 40 of 40 s: the longest counts), item 4 none.
EXPOSURES = pl.DataFrame({"user_idx": [0] * 5, "item_idx": [0, 1, 2, 3, 4], "timestamp": [T] * 5})
EVENTS = pl.DataFrame(
    {
        "user_idx": [0, 0, 0, 0, 0],
        "item_idx": [0, 1, 2, 3, 3],
        "timestamp": [T + 5, T + 5, T + 5, T + 5, T + 60],
        "event": ["watch", "watch", "watch", "watch", "watch"],
        "play_duration": [10.0, 1.0, 30.0, 5.0, 40.0],
        "video_duration": [10.0, 20.0, 60.0, 40.0, 40.0],
    }
)


def labels(*names: str) -> dict[str, np.ndarray]:
    return label_exposures(EXPOSURES, EVENTS, {n: DURATION_TASKS[n] for n in names})


def test_complete_and_skip() -> None:
    out = labels("complete", "skip")
    assert out["complete"].tolist() == [1, 0, 0, 1, 0]  # >= 90% of the video
    assert out["skip"].tolist() == [0, 1, 0, 0, 0]  # played < 3 s


def test_watch_time_is_weighted_by_seconds_and_skips_are_negatives() -> None:
    tasks = {"watch_time": DURATION_TASKS["watch_time"]}
    out, weights = label_and_weigh_exposures(EXPOSURES, EVENTS, tasks)
    assert out["watch_time"].tolist() == [1, 0, 1, 1, 0]
    assert weights["watch_time"].tolist() == [10.0, 1.0, 30.0, 40.0, 1.0]


def test_debiased_compares_plays_of_similar_length() -> None:
    # one bucket per length: every play is alone in its bucket, so none beats the median
    # except by the tie rule (cdf 0.5 is not > 0.5)
    assert labels("debiased_watch")["debiased_watch"].tolist() == [0, 0, 0, 0, 0]
    n = 40
    exp = pl.DataFrame({"user_idx": np.arange(n), "item_idx": [0] * n, "timestamp": [T] * n})
    play = np.arange(n, dtype=float) + 1  # one video, plays of 1..40 s
    ev = pl.DataFrame(
        {
            "user_idx": np.arange(n),
            "item_idx": [0] * n,
            "timestamp": [T + 1] * n,
            "event": ["click"] * n,
            "play_duration": play,
            "video_duration": [60.0] * n,
        }
    )
    out = label_exposures(exp, ev, {"d": DURATION_TASKS["debiased_watch"]})["d"]
    assert out.tolist() == (play > 20).astype(float).tolist()


def test_exposure_plays_are_the_longest_in_window() -> None:
    play, video = exposure_plays(EXPOSURES, EVENTS, DURATION_TASKS["watch_time"])
    assert play.tolist() == [10.0, 1.0, 30.0, 40.0, 0.0]
    assert video[:4].tolist() == [10.0, 20.0, 60.0, 40.0] and np.isnan(video[4])


def test_missing_columns_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs the interactions' play_duration"):
        labels_without = EVENTS.drop("play_duration")
        label_exposures(EXPOSURES, labels_without, {"w": DURATION_TASKS["watch_time"]})


def test_event_tasks_unchanged_beside_duration_tasks() -> None:
    ev = EVENTS.with_columns(pl.lit("click").alias("event"))
    tasks = {"click": TASK_CATALOGUE["click"], "complete": DURATION_TASKS["complete"]}
    out = label_exposures(EXPOSURES, ev, tasks)
    assert out["click"].tolist() == [1, 1, 1, 1, 0]
    assert out["complete"].tolist() == [1, 0, 0, 1, 0]


def test_samples_carry_the_weight_column() -> None:
    log = pl.concat(
        [EXPOSURES.with_columns(pl.lit("impression").alias("event")), EVENTS],
        how="diagonal_relaxed",
    )
    cfg = SampleConfig(tasks={"watch_time": DURATION_TASKS["watch_time"]})
    samples = impression_samples(log, cfg)
    assert samples["weight_watch_time"].to_list() == [10.0, 1.0, 30.0, 40.0, 1.0]


def test_duration_tasks_for() -> None:
    assert list(duration_tasks_for(EVENTS)) == list(DURATION_TASKS)
    assert duration_tasks_for(EVENTS.drop("video_duration")) == {}
    assert duration_tasks_for(EVENTS.with_columns(pl.lit("order").alias("event"))) == {}


def test_expected_watch_time_is_the_odds() -> None:
    assert expected_watch_time(np.array([0.0, 0.75])).tolist() == [0.0, 3.0]
