"""Duration tasks named in rank.samples.tasks (pipeline/rank_samples.py::sample_config)."""

from __future__ import annotations

import polars as pl
import pytest

from funnelrec.errors import ConfigError
from funnelrec.pipeline.rank_samples import sample_config
from funnelrec.rank.config import RankConfig, RankSamplesConfig

LOG = pl.DataFrame(
    {
        "event": ["impression", "click"],
        "play_duration": [None, 12.0],
        "video_duration": [30.0, 30.0],
    }
)


def rank(*tasks: str) -> RankConfig:
    return RankConfig(samples=RankSamplesConfig(tasks=tasks))


def test_named_duration_tasks_are_labelled() -> None:
    cfg = sample_config(rank("click", "watch_time", "complete"), LOG, "impressions")
    assert list(cfg.tasks) == ["click", "watch_time", "complete"]
    assert cfg.tasks["watch_time"].duration is not None


def test_default_tasks_stay_event_tasks() -> None:
    cfg = sample_config(RankConfig(), LOG, "impressions")
    assert list(cfg.tasks) == ["click"]


def test_recall_source_keeps_the_duration_target() -> None:
    cfg = sample_config(rank("watch_time"), LOG, "recall")
    assert cfg.tasks["watch_time"].window_s is None
    assert cfg.tasks["watch_time"].duration is not None


def test_watch_time_without_durations_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\['watch_time'\] need the interactions' play_d"):
        sample_config(rank("click", "watch_time"), LOG.drop("play_duration"), "impressions")
